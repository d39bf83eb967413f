package decode

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

func newDecoder(t testing.TB, cfg Config, m map[string]string) *Decoder {
	t.Helper()
	d, err := New(cfg, NewMapSource(m))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func allSchemas() map[string]string {
	return map[string]string{
		schemas.ID(oppSchema): oppSchema,
		schemas.ID(ocrSchema): ocrSchema,
		"registry:1":          oppSchema,
		"registry:2":          oppConnSchema,
		"registry:3":          ocrConnSchema,
		"registry:4":          ocrSchema,
		"not-a-change-event":  `{"type":"record","name":"Thing","fields":[{"name":"a","type":"string"}]}`,
		"invalid":             `{"type":"record","name":"Broken","fields":[{"name":"a","type":"nosuchtype"}]}`,
		"header-not-at-zero":  `{"type":"record","name":"XChangeEvent","fields":[{"name":"a","type":"string"},{"name":"ChangeEventHeader","type":{"type":"record","name":"H","fields":[{"name":"changeType","type":"string"},{"name":"recordIds","type":{"type":"array","items":"string"}},{"name":"commitTimestamp","type":"long"}]}}]}`,
		"header-wrong-types":  `{"type":"record","name":"XChangeEvent","fields":[{"name":"ChangeEventHeader","type":{"type":"record","name":"H","fields":[{"name":"changeType","type":"string"},{"name":"recordIds","type":"string"},{"name":"commitTimestamp","type":"long"}]}}]}`,
		"registry:99":         `"string"`,
		"dotted-field":        `{"type":"record","name":"XChangeEvent","fields":[{"name":"ChangeEventHeader","type":{"type":"record","name":"H","fields":[{"name":"changeType","type":"string"},{"name":"recordIds","type":{"type":"array","items":"string"}},{"name":"commitTimestamp","type":"long"}]}},{"name":"a.b","type":"string"}]}`,
	}
}

func fieldMap(ev *cdc.Event) map[string]cdc.Field {
	m := map[string]cdc.Field{}
	for _, f := range ev.Fields {
		m[f.Name] = f
	}
	return m
}

// TestDecodeGolden decodes a few full events and compares them with golden
// files (go test ./pkg/decode -run Golden -update rewrites them).
func TestDecodeGolden(t *testing.T) {
	d := newDecoder(t, Config{HiddenFields: []string{"Opportunity.Description"}}, allSchemas())
	oppID := schemas.ID(oppSchema)
	upd := fullOpportunity()
	for k := range upd {
		upd[k] = nil
	}
	upd["StageName"] = "Closed Won"
	upd["Probability"] = 100.0
	upd["IsClosed"] = true
	upd["IsWon"] = true
	upd["ForecastCategory"] = "Closed"
	upd["ForecastCategoryName"] = "Closed"
	upd["LastModifiedDate"] = commitTS
	upd["LastStageChangeDate"] = commitTS
	upd["AccountId"] = "001000000000001AAA" // enriched: non-null, not changed
	upd["Billing_Address__c"] = map[string]any{"City": "Shelbyville"}

	connUpd := map[string]any{"StageName": "Negotiation/Review", "Amount": 99.5,
		"LastModifiedDate": time.UnixMilli(commitTS), "CloseDate": time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name string
		msg  *cdc.Message
	}{
		{"pubsub_create", pubsubMsg(oppID, pubsubPayload(t, oppSchema,
			hdr{entity: "Opportunity", ct: "CREATE", ids: []string{"006000000000001AAA"}}, fullOpportunity()))},
		{"pubsub_update", pubsubMsg(oppID, pubsubPayload(t, oppSchema,
			hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"},
				changed: []string{"0x0503C0A0", "35-0x02", "0x1000"}, nulled: []string{"0x1000"}}, upd))},
		{"connector_update", wireMsg(2, connectorPayload(t, oppConnSchema,
			hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"},
				changed: []string{"StageName", "Amount", "LastModifiedDate", "CloseDate", "NextStep"}}, connUpd))},
		{"ocr_create", pubsubMsg(schemas.ID(ocrSchema), pubsubPayload(t, ocrSchema,
			hdr{entity: "OpportunityContactRole", ct: "CREATE", ids: []string{"00K000000000001AAA"}},
			map[string]any{"OpportunityId": "006000000000001AAA", "ContactId": "003000000000001AAA", "Role": nil,
				"CreatedDate": commitTS, "CreatedById": "005000000000001AAA", "LastModifiedDate": commitTS, "LastModifiedById": "005000000000001AAA"}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			golden(t, tt.name, ev)
		})
	}
}

func TestDecodeSemantics(t *testing.T) {
	d := newDecoder(t, Config{}, allSchemas())
	oppID := schemas.ID(oppSchema)
	only := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	type want struct {
		entity  string
		ct      cdc.ChangeType
		ids     []string
		changed []string             // ev.ChangedFields(), in order
		values  map[string]cdc.Value // selected field values
		absent  []string             // fields that must not be in Fields
		enrich  []string             // fields present with Changed=false
		nFields int                  // -1: don't check
	}
	tests := []struct {
		name string
		msg  *cdc.Message
		want want
	}{
		{
			name: "pubsub create has every data field",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "CREATE", ids: []string{"006000000000001AAA"}}, fullOpportunity())),
			want: want{entity: "Opportunity", ct: cdc.Create, ids: []string{"006000000000001AAA"}, nFields: 38,
				values: map[string]cdc.Value{
					"CloseDate": cdc.String("2026-12-31"), "CreatedDate": {Kind: cdc.KindDateTime, Str: "2025-11-28T16:40:41.123Z"},
					"Amount": cdc.Number(125000.5), "IsPrivate": cdc.Bool(false), "Seats__c": cdc.Number(500),
					"Product_Lines__c": cdc.String("Core;Analytics"), "ExpectedRevenue": cdc.Null,
					"Billing_Address__c.City": cdc.String("Springfield"), "Billing_Address__c.PostalCode": cdc.Null,
				}},
		},
		{
			name: "pubsub update documented bitmap vector",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x0503C0A0"}},
				only("StageName", "Closed Won", "Probability", 100.0, "IsClosed", true, "IsWon", true, "ForecastCategory", "Closed",
					"ForecastCategoryName", "Closed", "LastModifiedDate", commitTS, "LastStageChangeDate", commitTS))),
			want: want{entity: "Opportunity", ct: cdc.Update, nFields: 8, changed: []string{"StageName", "Probability", "IsClosed", "IsWon",
				"ForecastCategory", "ForecastCategoryName", "LastModifiedDate", "LastStageChangeDate"}},
		},
		{
			name: "pubsub update nulled via nulledFields and changed null",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				// bit 12 NextStep (nulled list), bit 6 Amount (changed, value null), bit 24 LastModifiedDate
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"},
					changed: []string{"0x1001040"}, nulled: []string{"0x1000"}},
				only("LastModifiedDate", commitTS, "Name", "enriched"))),
			want: want{ct: cdc.Update, nFields: 4, changed: []string{"Amount", "NextStep", "LastModifiedDate"},
				values: map[string]cdc.Value{"Amount": cdc.Null, "NextStep": cdc.Null}, enrich: []string{"Name"}},
		},
		{
			name: "pubsub update nested bitmap only",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"35-0x09"}},
				only("Billing_Address__c", map[string]any{"Street": "2 Side St", "City": "Unchanged City"}))),
			want: want{ct: cdc.Update, nFields: 3, changed: []string{"Billing_Address__c.Street", "Billing_Address__c.Country"},
				values: map[string]cdc.Value{"Billing_Address__c.Street": cdc.String("2 Side St"), "Billing_Address__c.Country": cdc.Null},
				enrich: []string{"Billing_Address__c.City"}},
		},
		{
			name: "diff fields are left out",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1000010"}, diff: []string{"0x10"}},
				only("Description", "@@ -1 +1 @@", "LastModifiedDate", commitTS))),
			want: want{ct: cdc.Update, nFields: 1, changed: []string{"LastModifiedDate"}, absent: []string{"Description"}},
		},
		{
			name: "multiple record ids and wildcard kept in order",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000002AAA", "006000000000001AAA", "006*"}, changed: []string{"0x1000000"}},
				only("LastModifiedDate", commitTS))),
			want: want{ct: cdc.Update, ids: []string{"006000000000002AAA", "006000000000001AAA", "006*"}, nFields: 1, changed: []string{"LastModifiedDate"}},
		},
		{
			name: "delete has no fields",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "DELETE", ids: []string{"006000000000001AAA"}}, nil)),
			want: want{ct: cdc.Delete, nFields: 0},
		},
		{
			name: "undelete carries the record",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UNDELETE", ids: []string{"006000000000001AAA"}}, fullOpportunity())),
			want: want{ct: cdc.Undelete, nFields: 38},
		},
		{
			name: "gap update has no fields",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "GAP_UPDATE", ids: []string{"006000000000001AAA"}}, nil)),
			want: want{ct: cdc.GapUpdate, nFields: 0},
		},
		{
			name: "gap overflow keeps the overflow id",
			msg: pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "GAP_OVERFLOW", ids: []string{cdc.OverflowRecordID}}, nil)),
			want: want{ct: cdc.GapOverflow, ids: []string{cdc.OverflowRecordID}, nFields: 0},
		},
		{
			name: "wire format with pubsub shape",
			msg: wireMsg(1, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1000020"}},
				only("StageName", "Qualification", "LastModifiedDate", commitTS))),
			want: want{ct: cdc.Update, nFields: 2, changed: []string{"StageName", "LastModifiedDate"}},
		},
		{
			name: "connector create has the non-null fields",
			msg: wireMsg(2, connectorPayload(t, oppConnSchema,
				hdr{entity: "Opportunity", ct: "CREATE", ids: []string{"006000000000001AAA"}},
				only("Name", "Big deal", "Amount", 10.0, "CloseDate", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "CreatedDate", time.UnixMilli(commitTS)))),
			want: want{ct: cdc.Create, nFields: 4, changed: []string{"Name", "Amount", "CloseDate", "CreatedDate"},
				values: map[string]cdc.Value{"CloseDate": {Kind: cdc.KindDate, Str: "2026-03-01"}, "CreatedDate": {Kind: cdc.KindDateTime, Str: "2025-11-28T16:40:41.123Z"}}},
		},
		{
			name: "connector update: changed names, nulled and enriched",
			msg: wireMsg(2, connectorPayload(t, oppConnSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"Amount", "NextStep", "LastModifiedDate"}},
				only("Amount", 5.0, "LastModifiedDate", time.UnixMilli(commitTS), "Region__c", "APAC"))),
			want: want{ct: cdc.Update, nFields: 4, changed: []string{"Amount", "NextStep", "LastModifiedDate"},
				values: map[string]cdc.Value{"NextStep": cdc.Null}, enrich: []string{"Region__c"}},
		},
		{
			name: "connector update without changedFields: non-null fields changed",
			msg: wireMsg(3, connectorPayload(t, ocrConnSchema,
				hdr{entity: "OpportunityContactRole", ct: "UPDATE", ids: []string{"00K000000000001AAA"}},
				only("Role", "Decision Maker"))),
			want: want{entity: "OpportunityContactRole", ct: cdc.Update, nFields: 1, changed: []string{"Role"}},
		},
		{
			name: "connector id used when recordIds is empty",
			msg: func() *cdc.Message {
				p := newEnc(t, ocrConnSchema).record(t, map[string]any{
					"Id": "00K000000000009AAA", "ChangeEventHeader": map[string]any{"io.confluent.salesforce.ChangeEventHeader": hdr{entity: "", ct: "DELETE"}.connNative()},
					"_ObjectType": map[string]any{"string": "OpportunityContactRoleChangeEvent"},
				}, nil)
				return wireMsg(3, p)
			}(),
			want: want{entity: "OpportunityContactRole", ct: cdc.Delete, ids: []string{"00K000000000009AAA"}, nFields: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			w := tt.want
			if w.entity != "" && ev.Entity != w.entity {
				t.Errorf("Entity = %q, want %q", ev.Entity, w.entity)
			}
			if ev.ChangeType != w.ct {
				t.Errorf("ChangeType = %s, want %s", ev.ChangeType, w.ct)
			}
			if w.ids != nil && !reflect.DeepEqual(ev.RecordIDs, w.ids) {
				t.Errorf("RecordIDs = %v, want %v", ev.RecordIDs, w.ids)
			}
			if want := (cdc.Version{CommitTimestamp: commitTS, CommitNumber: commitNum, SequenceNumber: 3}); ev.Version != want {
				t.Errorf("Version = %v, want %v", ev.Version, want)
			}
			if w.nFields >= 0 && len(ev.Fields) != w.nFields {
				t.Errorf("len(Fields) = %d, want %d: %v", len(ev.Fields), w.nFields, ev.Fields)
			}
			if w.changed != nil && !reflect.DeepEqual(ev.ChangedFields(), w.changed) {
				t.Errorf("ChangedFields = %v, want %v", ev.ChangedFields(), w.changed)
			}
			fm := fieldMap(ev)
			for name, v := range w.values {
				if f, ok := fm[name]; !ok || f.Value != v {
					if v.Kind == cdc.KindString && f.Value.Kind == cdc.KindDate && f.Value.Str == v.Str {
						continue
					}
					t.Errorf("%s = %+v (present %v), want %+v", name, f.Value, ok, v)
				}
			}
			for _, name := range w.absent {
				if _, ok := fm[name]; ok {
					t.Errorf("%s must not be in Fields", name)
				}
			}
			for _, name := range w.enrich {
				if f, ok := fm[name]; !ok || f.Changed {
					t.Errorf("%s should be an enriched field (present, unchanged): %+v", name, f)
				}
			}
			for _, f := range ev.Fields {
				if !f.Changed && f.Value.IsNull() {
					t.Errorf("null unchanged field %s reported", f.Name)
				}
			}
			if len(ev.Schema) == 0 {
				t.Error("Schema is empty")
			}
		})
	}
}

func TestHiddenFields(t *testing.T) {
	d := newDecoder(t, Config{HiddenFields: []string{"Opportunity.Description", "Opportunity.Billing_Address__c", "OpportunityContactRole.Role"}}, allSchemas())
	ev, err := d.Decode(context.Background(), pubsubMsg(schemas.ID(oppSchema), pubsubPayload(t, oppSchema,
		hdr{entity: "Opportunity", ct: "CREATE", ids: []string{"006000000000001AAA"}}, fullOpportunity())))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Description", "Billing_Address__c.Street", "Billing_Address__c.City"} {
		if _, ok := ev.Field(name); ok {
			t.Errorf("hidden field %s in Fields", name)
		}
		if ev.HasSchemaField(name) {
			t.Errorf("hidden field %s in Schema", name)
		}
	}
	if _, ok := ev.Field("Name"); !ok {
		t.Error("visible field Name missing")
	}
	// An update naming only a hidden field yields no field at all.
	ev, err = d.Decode(context.Background(), pubsubMsg(schemas.ID(oppSchema), pubsubPayload(t, oppSchema,
		hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x10"}},
		map[string]any{"Description": "new secret"})))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Fields) != 0 {
		t.Errorf("Fields = %v, want none", ev.Fields)
	}
	// Other entities keep their own rules: OCR Role hidden, ContactId kept.
	ev, err = d.Decode(context.Background(), pubsubMsg(schemas.ID(ocrSchema), pubsubPayload(t, ocrSchema,
		hdr{entity: "OpportunityContactRole", ct: "CREATE", ids: []string{"00K000000000001AAA"}},
		map[string]any{"ContactId": "003000000000001AAA", "Role": "Buyer"})))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Field("Role"); ok || ev.HasSchemaField("Role") {
		t.Error("OCR Role should be hidden")
	}
	if _, ok := ev.Field("ContactId"); !ok {
		t.Error("OCR ContactId missing")
	}
}

func TestDecodeErrors(t *testing.T) {
	big := Config{MaxMessageBytes: 64}
	oppID := schemas.ID(oppSchema)
	good := pubsubPayload(t, oppSchema, hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1000000"}},
		map[string]any{"LastModifiedDate": commitTS})
	hostile := append([]byte{}, good[:0]...)
	// entityName "" then recordIds with a block count of 2^31-1.
	hostile = append(hostile, 0x00, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F)
	tests := []struct {
		name      string
		cfg       Config
		msg       *cdc.Message
		reason    string
		retryable bool
		mention   string // the message must name this
	}{
		{"empty value", Config{}, &cdc.Message{}, cdc.ReasonUnknownFraming, false, ""},
		{"wrong magic byte", Config{}, &cdc.Message{Value: []byte{1, 0, 0, 0, 1, 2}}, cdc.ReasonUnknownFraming, false, ""},
		{"too short for wire format", Config{}, &cdc.Message{Value: []byte{0, 0, 0, 1}}, cdc.ReasonUnknownFraming, false, ""},
		{"json value", Config{}, &cdc.Message{Value: []byte(`{"a":1}`)}, cdc.ReasonUnknownFraming, false, ""},
		{"too large", big, pubsubMsg(oppID, make([]byte, 65)), cdc.ReasonTooLarge, false, ""},
		{"unknown pubsub schema id", Config{}, pubsubMsg("nosuchid", good), cdc.ReasonSchemaNotFound, false, "nosuchid"},
		{"path in schema id", Config{}, pubsubMsg("../../etc/passwd", good), cdc.ReasonSchemaNotFound, false, ""},
		{"empty schema header", Config{}, pubsubMsg("", good), cdc.ReasonSchemaNotFound, false, ""},
		{"unknown registry id", Config{}, wireMsg(12345, good), cdc.ReasonSchemaNotFound, false, "registry:12345"},
		{"invalid schema", Config{}, pubsubMsg("invalid", good), cdc.ReasonSchemaInvalid, false, "invalid"},
		{"non-record schema", Config{}, wireMsg(99, good), cdc.ReasonNotAChangeEvent, false, ""},
		{"no change event header", Config{}, pubsubMsg("not-a-change-event", []byte{2, 'a'}), cdc.ReasonNotAChangeEvent, false, "ChangeEventHeader"},
		{"header not at field 0", Config{}, pubsubMsg("header-not-at-zero", good), cdc.ReasonNotAChangeEvent, false, ""},
		{"header with wrong types", Config{}, pubsubMsg("header-wrong-types", good), cdc.ReasonNotAChangeEvent, false, "recordIds"},
		{"truncated avro", Config{}, pubsubMsg(oppID, good[:len(good)/2]), cdc.ReasonMalformedAvro, false, ""},
		{"trailing bytes", Config{}, pubsubMsg(oppID, append(append([]byte{}, good...), 0, 0)), cdc.ReasonMalformedAvro, false, "left"},
		{"garbage", Config{}, pubsubMsg(oppID, []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01garbage")), cdc.ReasonMalformedAvro, false, ""},
		{"hostile array count", Config{}, pubsubMsg(oppID, hostile), cdc.ReasonMalformedAvro, false, "recordIds"},
		{"bit past the schema", Config{}, pubsubMsg(oppID, pubsubPayload(t, oppSchema,
			hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1000000000000"}}, nil)),
			cdc.ReasonBadBitmap, false, "bit 48"},
		{"nested position not a record", Config{}, pubsubMsg(oppID, pubsubPayload(t, oppSchema,
			hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"5-0x01"}}, nil)),
			cdc.ReasonBadBitmap, false, "position 5"},
		{"bad hex", Config{}, pubsubMsg(oppID, pubsubPayload(t, oppSchema,
			hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, nulled: []string{"0xG1"}}, nil)),
			cdc.ReasonBadBitmap, false, "nulledFields"},
		{"unknown change type", Config{}, wireMsg(3, connectorPayload(t, ocrConnSchema,
			hdr{entity: "OpportunityContactRole", ct: "MERGE", ids: []string{"00K000000000001AAA"}}, nil)),
			cdc.ReasonNotAChangeEvent, false, "change type"},
		{"no record id", Config{}, pubsubMsg(oppID, pubsubPayload(t, oppSchema,
			hdr{entity: "Opportunity", ct: "DELETE"}, nil)), cdc.ReasonBadEvent, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDecoder(t, tt.cfg, allSchemas())
			ev, err := d.Decode(context.Background(), tt.msg)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", ev)
			}
			var ce *cdc.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *cdc.Error", err)
			}
			if ce.Reason != tt.reason || cdc.IsRetryable(err) != tt.retryable {
				t.Errorf("reason %s retryable %v, want %s %v (%v)", ce.Reason, cdc.IsRetryable(err), tt.reason, tt.retryable, err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// TestErrorsCarryNoValues checks that error texts never quote field values.
func TestErrorsCarryNoValues(t *testing.T) {
	d := newDecoder(t, Config{}, allSchemas())
	const secret = "TOPSECRETVALUE"
	p := pubsubPayload(t, oppSchema, hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x10", "0x" + strings.Repeat("F", 20)}},
		map[string]any{"Description": secret, "Name": secret})
	for _, v := range [][]byte{p, p[:len(p)-3], append(append([]byte{}, p...), secret...)} {
		_, err := d.Decode(context.Background(), pubsubMsg(schemas.ID(oppSchema), v))
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks a value: %v", err)
		}
	}
}

// TestSchemaEvolution: a custom field added in Salesforce arrives with a new
// schema id and flows through; messages of the old schema still decode.
func TestSchemaEvolution(t *testing.T) {
	evolved, err := schemas.WithCustomField(oppSchema, "Churn_Risk__c", "double", "Data:Percent:00N000000000009")
	if err != nil {
		t.Fatal(err)
	}
	oldID, newID := schemas.ID(oppSchema), schemas.ID(evolved)
	d := newDecoder(t, Config{}, map[string]string{oldID: oppSchema, newID: evolved})
	// Churn_Risk__c is field 36: bit 36 plus LastModifiedDate (24).
	newMsg := pubsubMsg(newID, pubsubPayload(t, evolved,
		hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1001000000"}},
		map[string]any{"Churn_Risk__c": 42.5, "LastModifiedDate": commitTS}))
	oldMsg := pubsubMsg(oldID, pubsubPayload(t, oppSchema,
		hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1000000"}},
		map[string]any{"LastModifiedDate": commitTS}))
	for i := 0; i < 2; i++ {
		ev, err := d.Decode(context.Background(), newMsg)
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := ev.Field("Churn_Risk__c"); !ok || !f.Changed || f.Value != cdc.Number(42.5) {
			t.Errorf("new custom field = %+v, %v", f, ok)
		}
		if !ev.HasSchemaField("Churn_Risk__c") {
			t.Error("new custom field missing from Schema")
		}
		ev, err = d.Decode(context.Background(), oldMsg)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ev.ChangedFields(), []string{"LastModifiedDate"}) || ev.HasSchemaField("Churn_Risk__c") {
			t.Errorf("old schema event: %v", ev.ChangedFields())
		}
	}
	// The old-schema bitmap for bit 36 is past the old schema.
	_, err = d.Decode(context.Background(), pubsubMsg(oldID, pubsubPayload(t, oppSchema,
		hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"0x1001000000"}}, nil)))
	if cdc.ReasonOf(err) != cdc.ReasonBadBitmap {
		t.Errorf("bit 36 on the old schema: %v, want bad_bitmap", err)
	}
	if got := d.SchemasCached(); got != 2 {
		t.Errorf("SchemasCached = %d, want 2", got)
	}
}

func TestSchemaDir(t *testing.T) {
	dir := t.TempDir()
	if err := schemas.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{SchemaDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := d.Decode(context.Background(), pubsubMsg(schemas.ID(ocrSchema), pubsubPayload(t, ocrSchema,
		hdr{entity: "OpportunityContactRole", ct: "DELETE", ids: []string{"00K000000000001AAA"}}, nil)))
	if err != nil || ev.ChangeType != cdc.Delete || ev.SchemaID != schemas.ID(ocrSchema) {
		t.Fatalf("Decode = %+v, %v", ev, err)
	}
	_, err = d.Decode(context.Background(), pubsubMsg("AAAAAAAAAAAAAAAAAAAAAA", nil))
	if cdc.ReasonOf(err) != cdc.ReasonSchemaNotFound || cdc.IsRetryable(err) {
		t.Errorf("missing file: %v, want permanent schema_not_found", err)
	}
	if _, err := New(Config{SchemaDir: dir + "/nope"}); err == nil {
		t.Error("New with a missing schema dir should fail")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"registry", Config{RegistryURL: "https://sr.example:8081", RegistryUsername: "u", RegistryPassword: "p"}, ""},
		{"bad registry url", Config{RegistryURL: "ftp://x"}, "schema_registry.url"},
		{"auth without url", Config{RegistryUsername: "u"}, "username"},
		{"bad hidden field", Config{HiddenFields: []string{"Description"}}, "hidden_fields"},
		{"negative size", Config{MaxMessageBytes: -1}, "max message"},
		{"negative timeout", Config{RegistryTimeout: -time.Second}, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConcurrentDecode(t *testing.T) {
	d := newDecoder(t, Config{}, allSchemas())
	msgs := []*cdc.Message{
		pubsubMsg(schemas.ID(oppSchema), pubsubPayload(t, oppSchema, hdr{entity: "Opportunity", ct: "CREATE", ids: []string{"006000000000001AAA"}}, fullOpportunity())),
		wireMsg(2, connectorPayload(t, oppConnSchema, hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{"006000000000001AAA"}, changed: []string{"Name"}}, map[string]any{"Name": "x"})),
		wireMsg(4, pubsubPayload(t, ocrSchema, hdr{entity: "OpportunityContactRole", ct: "DELETE", ids: []string{"00K000000000001AAA"}}, nil)),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, err := d.Decode(context.Background(), msgs[i%len(msgs)]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d.SchemasCached() != 3 {
		t.Errorf("SchemasCached = %d, want 3", d.SchemasCached())
	}
}
