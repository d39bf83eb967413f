package synth

import (
	"context"
	"encoding/binary"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/schemas"
)

const (
	opp1     = "0068c00000AbCdEAAV"
	opp2     = "0068c00000AbCdFAAV"
	opp3     = "0068c00000AbCdGAAV"
	contact1 = "0038c00000XyZ01AAA"
	contact2 = "0038c00000XyZ02AAA"
	role1    = "00K8c00000Rl001AAA"
	role2    = "00K8c00000Rl002AAA"
)

// sampleChanges covers every change type; nested fields only for Pub/Sub
// schemas (the connector schema has none).
func sampleChanges(shape Shape) []Change {
	s := NewScript(testStart)
	create := []cdc.Field{
		F("AccountId", cdc.String("0018c00000AcC01AAA")),
		F("Name", cdc.String("Acme Corp - Platform Licenses")),
		F("Amount", cdc.Number(48000.5)),
		F("CloseDate", cdc.Value{Kind: cdc.KindDate, Str: "2026-03-31"}),
		F("NextStep", cdc.String("Send proposal")),
		F("IsPrivate", cdc.Bool(false)),
		F("ContactId", cdc.String(contact1)),
		F("Region__c", cdc.String("EMEA")),
		F("Partner_Score__c", cdc.Number(72.5)),
	}
	create = append(create, Stages[0].Fields()...)
	if shape == ShapePubSub {
		create = append(create, F("Billing_Address__c.City", cdc.String("Berlin")), F("Seats__c", cdc.Number(40)))
	}
	out := []Change{
		s.OpportunityCreated(opp1, create...),
		s.StageChanged(opp1, "Closed Won"),
		s.OpportunityUpdated(opp1, F("NextStep", cdc.Null), F("Amount", cdc.Number(12500))),
	}
	if shape == ShapePubSub {
		out = append(out, s.OpportunityUpdated(opp1, F("Billing_Address__c.City", cdc.String("Paris")), F("Billing_Address__c.Street", cdc.Null)))
	}
	out = append(out,
		s.ContactRoleAdded(role1, opp1, contact1, ""),
		s.ContactRoleAdded(role2, opp1, contact2, "Economic Buyer"),
		s.ContactChanged(role2, contact1),
		s.RoleChanged(role2, ""),
		s.ContactRoleRemoved(role2),
		s.ContactRoleUndeleted(role2),
		s.OpportunityDeleted(opp1),
		s.OpportunityUndeleted(opp1),
		s.Gap(cdc.EntityOpportunity, opp1, opp1),
		s.OpportunityCreated(opp2, Stages[2].Fields()...),
		s.OpportunityCreated(opp3, Stages[2].Fields()...),
		s.OpportunitiesUpdated([]string{opp2, opp3}, Stages[3].Fields()...),
	)
	return out
}

func nonNullChanged(fields []cdc.Field) map[string]cdc.Value {
	m := map[string]cdc.Value{}
	for _, f := range fields {
		if f.Changed && !f.Value.IsNull() {
			m[f.Name] = f.Value
		}
	}
	return m
}

func changed(fields []cdc.Field) map[string]cdc.Value {
	m := map[string]cdc.Value{}
	for _, f := range fields {
		if f.Changed {
			m[f.Name] = f.Value
		}
	}
	return m
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	reg := NewRegistry()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	ctx := context.Background()

	for _, framing := range []Framing{FramingPubSub, FramingConfluent} {
		for _, shape := range []Shape{ShapePubSub, ShapeConnector} {
			t.Run(framing.String()+"/"+shape.String(), func(t *testing.T) {
				cfg := EncoderConfig{Framing: framing, Shape: shape, SchemaHeader: "x-schema"}
				dcfg := decode.Config{SchemaHeader: "x-schema"}
				if framing == FramingConfluent {
					cfg.Registry = &RegistryClient{URL: srv.URL}
					dcfg.RegistryURL = srv.URL
				}
				enc, err := NewEncoder(cfg)
				if err != nil {
					t.Fatal(err)
				}
				dec, err := decode.New(dcfg, decode.NewMapSource(enc.Schemas()))
				if err != nil {
					t.Fatal(err)
				}
				for _, ch := range sampleChanges(shape) {
					t.Run(string(ch.Type)+"/"+ch.Entity, func(t *testing.T) {
						msg, err := enc.Encode(ctx, ch)
						if err != nil {
							t.Fatal(err)
						}
						if got := string(msg.Key); got != ch.Key() || got == "" {
							t.Errorf("key = %q, want the opportunity id %q", got, ch.Key())
						}
						_, hasHeader := msg.HeaderValue("x-schema")
						if hasHeader != (framing == FramingPubSub) {
							t.Errorf("schema header present = %v with %s framing", hasHeader, framing)
						}
						if framing == FramingConfluent && (msg.Value[0] != 0 || binary.BigEndian.Uint32(msg.Value[1:5]) == 0) {
							t.Errorf("no Confluent wire-format prefix: % x", msg.Value[:5])
						}
						ev, err := dec.Decode(ctx, &msg)
						if err != nil {
							t.Fatalf("decode: %v", err)
						}
						if ev.Entity != ch.Entity || ev.ChangeType != ch.Type || !reflect.DeepEqual(ev.RecordIDs, ch.RecordIDs) {
							t.Errorf("decoded %s %s %v, want %s %s %v", ev.Entity, ev.ChangeType, ev.RecordIDs, ch.Entity, ch.Type, ch.RecordIDs)
						}
						if ev.Version != ch.Version || ev.Header != ch.Header {
							t.Errorf("decoded version %v header %+v, want %v %+v", ev.Version, ev.Header, ch.Version, ch.Header)
						}
						want, got := changed(ch.Fields), changed(ev.Fields)
						if ch.Type != cdc.Update {
							// Pub/Sub bodies of CREATE/UNDELETE carry every field, nulls included.
							want, got = nonNullChanged(ch.Fields), nonNullChanged(ev.Fields)
						}
						if !reflect.DeepEqual(got, want) {
							t.Errorf("decoded fields\n got %v\nwant %v", got, want)
						}
						for _, f := range ev.Fields {
							if !f.Changed && ch.Type == cdc.Update {
								t.Errorf("unchanged field %s carried a value", f.Name)
							}
						}
					})
				}
			})
		}
	}
}

// headerOf decodes a Pub/Sub-framed message with goavro and returns its
// ChangeEventHeader, independently of pkg/decode.
func headerOf(t *testing.T, schema string, msg cdc.Message) map[string]any {
	t.Helper()
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	native, rest, err := codec.NativeFromBinary(msg.Value)
	if err != nil || len(rest) != 0 {
		t.Fatalf("goavro decode: %v (%d bytes left)", err, len(rest))
	}
	return native.(map[string]any)["ChangeEventHeader"].(map[string]any)
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestBitmaps(t *testing.T) {
	schema := schemas.PubSub(cdc.EntityOpportunity)
	enc, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewScript(testStart)
	s.OpportunityCreated(opp1, append(Stages[0].Fields(), F("Billing_Address__c.Street", cdc.String("1 Market St")))...)
	tests := []struct {
		name                string
		ch                  Change
		wantChanged, wantNu []string
	}{
		{"documented stage vector", s.StageChanged(opp1, "Closed Won"), []string{"0x0503C0A0"}, []string{}},
		{"nested change and null", s.OpportunityUpdated(opp1, F("Billing_Address__c.City", cdc.String("Paris")), F("Billing_Address__c.Street", cdc.Null)),
			[]string{"0x01000000", "35-0x03"}, []string{"35-0x01"}},
		{"nulled top-level field", s.OpportunityUpdated(opp1, F("NextStep", cdc.Null)), []string{"0x01001000"}, []string{"0x1000"}},
		{"custom field", s.OpportunityUpdated(opp1, F("Partner_Score__c", cdc.Number(3))), []string{"0x0101000000"}, []string{}},
		{"create lists nothing", s.OpportunityCreated(opp2, Stages[1].Fields()...), []string{}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := enc.Encode(context.Background(), tt.ch)
			if err != nil {
				t.Fatal(err)
			}
			h := headerOf(t, schema, msg)
			if got := strs(h["changedFields"]); strings.Join(got, ",") != strings.Join(tt.wantChanged, ",") {
				t.Errorf("changedFields = %q, want %q", got, tt.wantChanged)
			}
			if got := strs(h["nulledFields"]); strings.Join(got, ",") != strings.Join(tt.wantNu, ",") {
				t.Errorf("nulledFields = %q, want %q", got, tt.wantNu)
			}
		})
	}

	got, err := Bitmap(schema, "StageName", "Probability", "IsClosed", "IsWon", "ForecastCategory", "ForecastCategoryName", "LastModifiedDate", "LastStageChangeDate")
	if err != nil || len(got) != 1 || got[0] != "0x0503C0A0" {
		t.Errorf("Bitmap = %q, %v; want [0x0503C0A0]", got, err)
	}
}

func TestConnectorHeaderNames(t *testing.T) {
	enc, err := NewEncoder(EncoderConfig{Shape: ShapeConnector})
	if err != nil {
		t.Fatal(err)
	}
	s := NewScript(testStart)
	s.OpportunityCreated(opp1, Stages[0].Fields()...)
	msg, err := enc.Encode(context.Background(), s.StageChanged(opp1, "Qualification"))
	if err != nil {
		t.Fatal(err)
	}
	codec, _ := goavro.NewCodec(schemas.Connector(cdc.EntityOpportunity))
	native, _, err := codec.NativeFromBinary(msg.Value)
	if err != nil {
		t.Fatal(err)
	}
	rec := native.(map[string]any)
	hdr := rec["ChangeEventHeader"].(map[string]any)["io.confluent.salesforce.ChangeEventHeader"].(map[string]any)
	// Prospecting → Qualification keeps Probability and the forecast fields.
	want := []string{"StageName", "LastStageChangeDate", "LastModifiedDate"}
	if got := strs(hdr["changedFields"]); !reflect.DeepEqual(got, want) {
		t.Errorf("changedFields = %q, want %q", got, want)
	}
	if rec["Id"] != opp1 || rec["_ObjectType"].(map[string]any)["string"] != "OpportunityChangeEvent" {
		t.Errorf("connector bookkeeping fields: Id=%v _ObjectType=%v", rec["Id"], rec["_ObjectType"])
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := NewEncoder(EncoderConfig{Framing: FramingConfluent}); err == nil {
		t.Error("Confluent framing without a registry: want an error")
	}
	if _, err := NewEncoder(EncoderConfig{Schemas: map[string]string{"Opportunity": "{"}}); err == nil {
		t.Error("bad schema: want an error")
	}
	enc, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewScript(testStart)
	tests := []struct {
		name string
		ch   Change
	}{
		{"unknown field", s.OpportunityUpdated(opp1, F("NoSuchField__c", cdc.String("x")))},
		{"wrong kind", s.OpportunityUpdated(opp1, F("Amount", cdc.String("lots")))},
		{"compound field without child", s.OpportunityUpdated(opp1, F("Billing_Address__c", cdc.String("x")))},
		{"bad date", s.OpportunityUpdated(opp1, F("CloseDate", cdc.Value{Kind: cdc.KindDate, Str: "31/03/2026"}))},
		{"unknown entity", Change{Entity: "Account", Type: cdc.Create, RecordIDs: []string{"001"}}},
		{"no record ids", Change{Entity: cdc.EntityOpportunity, Type: cdc.Delete}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := enc.Encode(context.Background(), tt.ch); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestConfluentRegistryFailure(t *testing.T) {
	reg := NewRegistry()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	enc, err := NewEncoder(EncoderConfig{Framing: FramingConfluent, Registry: &RegistryClient{URL: srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	ch := NewScript(testStart).OpportunityDeleted(opp1)
	reg.FailNext(1, 503)
	if _, err := enc.Encode(context.Background(), ch); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Encode with a failing registry: err = %v, want a 503 error", err)
	}
	msg, err := enc.Encode(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	id := int(binary.BigEndian.Uint32(msg.Value[1:5]))
	if s, ok := reg.Schema(id); !ok || s != schemas.PubSub(cdc.EntityOpportunity) {
		t.Errorf("registry id %d does not hold the writer schema", id)
	}
	before := reg.Requests()
	if _, err := enc.Encode(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if reg.Requests() != before {
		t.Error("the registry id was not cached")
	}
}

func BenchmarkEncodeStageUpdate(b *testing.B) {
	enc, err := NewEncoder(EncoderConfig{})
	if err != nil {
		b.Fatal(err)
	}
	s := NewScript(testStart)
	s.OpportunityCreated(opp1, Stages[0].Fields()...)
	ch := s.StageChanged(opp1, "Closed Won")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Encode(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
}
