package decode

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

// FuzzDecode feeds arbitrary framing + Avro bytes to a Decoder that knows
// the shipped schemas. The value's first byte picks the framing; decoding
// must either succeed with a sane event or fail with a *cdc.Error.
func FuzzDecode(f *testing.F) {
	oppID := schemas.ID(oppSchema)
	f.Add(byte(0), pubsubPayload(f, oppSchema, hdr{entity: "Opportunity", ct: "CREATE", ids: []string{"006000000000001AAA"}}, fullOpportunity()))
	f.Add(byte(0), pubsubPayload(f, oppSchema, hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"},
		changed: []string{"0x0503C0A0", "35-0x02"}, nulled: []string{"0x1000"}}, map[string]any{"StageName": "Closed Won", "Billing_Address__c": map[string]any{"City": "X"}}))
	f.Add(byte(1), wireMsg(1, pubsubPayload(f, ocrSchema, hdr{entity: "OpportunityContactRole", ct: "DELETE", ids: []string{"00K000000000001AAA"}}, nil)).Value)
	f.Add(byte(1), wireMsg(2, connectorPayload(f, oppConnSchema, hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"},
		changed: []string{"Amount"}}, map[string]any{"Amount": 5.0})).Value)
	f.Add(byte(1), []byte{0, 0, 0, 0, 9, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F})
	f.Add(byte(2), []byte("garbage"))
	// Issue 14: ids and entity names that must not reach a key or a label
	// (more in testdata/fuzz/FuzzDecode), and a switchable compound field.
	f.Add(byte(0), pubsubPayload(f, oppSchema, hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{badIDs["huge"]}, changed: []string{"0x1000000"}},
		map[string]any{"LastModifiedDate": commitTS}))
	f.Add(byte(1), wireMsg(5, switchablePayload(f, "UPDATE", []string{"1-0x06"}, nil, map[string]any{"FirstName": "Ada"})).Value)
	d, err := New(Config{}, NewMapSource(map[string]string{
		oppID:        oppSchema,
		"registry:1": ocrSchema,
		"registry:2": oppConnSchema,
		"registry:3": ocrConnSchema,
		"registry:4": oppSchema,
		"registry:5": switchableSchema,
	}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, framing byte, value []byte) {
		m := &cdc.Message{Value: value}
		if framing%2 == 0 {
			m.Headers = []cdc.Header{{Key: DefaultSchemaHeader, Value: []byte(oppID)}}
		}
		ev, err := d.Decode(context.Background(), m)
		if err != nil {
			var ce *cdc.Error
			if !errors.As(err, &ce) || ce.Reason == "" {
				t.Fatalf("error %v is not a *cdc.Error with a reason", err)
			}
			return
		}
		if ev.Entity == "" || len(ev.RecordIDs) == 0 || ev.ChangeType == "" {
			t.Fatalf("incomplete event: %+v", ev)
		}
		if !cdc.ValidEntityName(ev.Entity) {
			t.Fatalf("entity %s is not an API name", cdc.QuoteInput(ev.Entity))
		}
		if err := cdc.CheckIDs(ev); err != nil {
			t.Fatalf("decoded an event with a bad id: %v", err)
		}
		for _, fl := range ev.Fields {
			if !fl.Changed && fl.Value.IsNull() {
				t.Fatalf("null unchanged field %s", fl.Name)
			}
			if !ev.HasSchemaField(fl.Name) {
				t.Fatalf("field %s not in schema", fl.Name)
			}
		}
	})
}

// FuzzBitmap expands arbitrary field lists against the Opportunity schema
// and a schema with a switchable compound field: no panics, only
// bad_bitmap errors, names always from the schema.
func FuzzBitmap(f *testing.F) {
	for _, seed := range []string{"0x0503C0A0", "35-0x0A", "0x", "0xZZ", "1-0x1", "Amount", "0X800000000", "999999999999-0x1", "0x" + strings.Repeat("0", 100) + "1",
		"1-0x06", "1-0x10", "2-0x1", "Name"} {
		f.Add(seed, "0x1000000")
	}
	var targets []*Schema
	known := map[*Schema]map[string]bool{}
	for _, text := range []string{oppSchema, switchableSchema} {
		s, err := ParseSchema(text)
		if err != nil {
			f.Fatal(err)
		}
		targets = append(targets, s)
		known[s] = map[string]bool{}
		for _, fi := range s.Fields() {
			known[s][fi.Name] = true
		}
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, s := range targets {
			names, err := s.ExpandBitmaps([]string{a, b})
			if err != nil {
				if cdc.ReasonOf(err) != cdc.ReasonBadBitmap {
					t.Fatalf("error %v is not bad_bitmap", err)
				}
				continue
			}
			seen := map[string]bool{}
			for _, n := range names {
				if !known[s][n] || seen[n] {
					t.Fatalf("name %q unknown or repeated", n)
				}
				seen[n] = true
			}
		}
	})
}

// FuzzParseSchema checks that schema texts never panic the compiler.
func FuzzParseSchema(f *testing.F) {
	f.Add(oppSchema)
	f.Add(ocrConnSchema)
	f.Add(`{"type":"record","name":"A","fields":[{"name":"a","type":{"type":"array","items":"A"}}]}`)
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSchema(text)
		if err != nil {
			if cdc.ReasonOf(err) == "internal" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		_ = s.Fields()
	})
}
