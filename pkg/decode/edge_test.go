package decode

import (
	"context"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

// badIDs are ids from the issue that must never reach a Redis key.
var badIDs = map[string]string{
	"key suffix":    "006000000000001AAA:roles",
	"open brace":    "{006000000000001A",
	"close brace":   "006000000000001A}",
	"star inside":   "006*00000000001AAA",
	"wildcard tail": "0060*",
	"cr lf":         "006000000000001\r\n",
	"path":          "../../0060000001",
	"huge":          strings.Repeat("006", 100_000/3),
	"invalid utf-8": "00600000000001\xff\xfe\xfd",
	"empty":         "",
}

// TestDecodeDeadLettersInvalidIDs: record ids, the connector Id and the
// id fields that become keys are checked at decode (invalid_id, naming the
// field, never echoing a long value).
func TestDecodeDeadLettersInvalidIDs(t *testing.T) {
	d := newDecoder(t, Config{}, allSchemas())
	oppID, ocrID := schemas.ID(oppSchema), schemas.ID(ocrSchema)
	const opp, contact, role = "006000000000001AAA", "003000000000001AAA", "00K000000000001AAA"
	type tc struct {
		name, mention string
		msg           *cdc.Message
	}
	var tests []tc
	for name, bad := range badIDs {
		tests = append(tests,
			tc{"record id " + name, "recordIds[1]", pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{opp, bad}, changed: []string{"0x1000000"}},
				map[string]any{"LastModifiedDate": commitTS}))},
			tc{"opportunity ContactId " + name, "ContactId", pubsubMsg(oppID, pubsubPayload(t, oppSchema,
				hdr{entity: "Opportunity", ct: "UPDATE", ids: []string{opp}, changed: []string{"0x1000000"}},
				map[string]any{"LastModifiedDate": commitTS, "ContactId": bad}))},
			tc{"role OpportunityId " + name, "OpportunityId", pubsubMsg(ocrID, pubsubPayload(t, ocrSchema,
				hdr{entity: "OpportunityContactRole", ct: "CREATE", ids: []string{role}},
				map[string]any{"OpportunityId": bad, "ContactId": contact}))},
			tc{"role ContactId " + name, "ContactId", pubsubMsg(ocrID, pubsubPayload(t, ocrSchema,
				hdr{entity: "OpportunityContactRole", ct: "UPDATE", ids: []string{role}, changed: []string{"0x4"}},
				map[string]any{"OpportunityId": opp, "ContactId": bad}))},
		)
		if bad != "" { // an empty connector Id means "use recordIds"
			tests = append(tests, tc{"connector Id " + name, "recordIds[0]", wireMsg(3, func() []byte {
				return newEnc(t, ocrConnSchema).record(t, map[string]any{
					"Id": bad, "ChangeEventHeader": map[string]any{"io.confluent.salesforce.ChangeEventHeader": hdr{ct: "DELETE"}.connNative()},
					"_ObjectType": map[string]any{"string": "OpportunityContactRoleChangeEvent"},
				}, nil)
			}())})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode(context.Background(), tt.msg)
			if err == nil {
				t.Fatalf("Decode succeeded: %v %v", ev.RecordIDs, ev.Fields)
			}
			if cdc.ReasonOf(err) != cdc.ReasonInvalidID || cdc.IsRetryable(err) {
				t.Fatalf("err = %v, want a permanent invalid_id", err)
			}
			if !strings.Contains(err.Error(), tt.mention) || len(err.Error()) > 300 {
				t.Fatalf("error %q should name %s and stay short", err, tt.mention)
			}
		})
	}
}

// TestDecodeEntityNamesAndSchemaIDs: entity names that are not Salesforce
// API names are not change events; other valid entities decode (the
// pipeline skips them); schema ids from the header are plain names.
func TestDecodeEntityNamesAndSchemaIDs(t *testing.T) {
	d := newDecoder(t, Config{}, allSchemas())
	oppID := schemas.ID(oppSchema)
	event := func(entity string) []byte {
		return pubsubPayload(t, oppSchema, hdr{entity: entity, ct: "DELETE", ids: []string{"006000000000001AAA"}}, nil)
	}
	tests := []struct {
		name    string
		msg     *cdc.Message
		reason  string // "" = decodes
		mention string
	}{
		{"other entity decodes", pubsubMsg(oppID, event("Account")), "", ""},
		{"namespaced custom object", pubsubMsg(oppID, event("ns__Invoice__c")), "", ""},
		{"invalid utf-8", pubsubMsg(oppID, event("Opportunity\xff")), cdc.ReasonNotAChangeEvent, `"Opportunity\xff"`},
		{"key characters", pubsubMsg(oppID, event("Opportunity}:x")), cdc.ReasonNotAChangeEvent, "entity name"},
		{"newline", pubsubMsg(oppID, event("Account\nlevel=error")), cdc.ReasonNotAChangeEvent, `\n`},
		{"leading digit", pubsubMsg(oppID, event("1Opportunity")), cdc.ReasonNotAChangeEvent, "entity name"},
		{"long", pubsubMsg(oppID, event(strings.Repeat("A", 5000))), cdc.ReasonNotAChangeEvent, "(5000 bytes)"},
		{"connector _ObjectType", wireMsg(3, newEnc(t, ocrConnSchema).record(t, map[string]any{
			"Id": "00K000000000001AAA", "ChangeEventHeader": map[string]any{"io.confluent.salesforce.ChangeEventHeader": hdr{ct: "DELETE"}.connNative()},
			"_ObjectType": map[string]any{"string": "Bad Entity\u00e9ChangeEvent"},
		}, nil)), cdc.ReasonNotAChangeEvent, "entity name"},
		{"schema id with newline", pubsubMsg(oppID+"\n", event("Opportunity")), cdc.ReasonSchemaNotFound, `\n`},
		{"schema id with slash", pubsubMsg("a/"+oppID, event("Opportunity")), cdc.ReasonSchemaNotFound, "not a schema id"},
		{"schema id of the registry namespace", pubsubMsg("registry:1", event("Opportunity")), cdc.ReasonSchemaNotFound, "not a schema id"},
		{"schema id too long", pubsubMsg(strings.Repeat("a", 256), event("Opportunity")), cdc.ReasonSchemaNotFound, "(256 bytes)"},
		{"schema with a dotted field name", pubsubMsg("dotted-field", event("Opportunity")), cdc.ReasonSchemaInvalid, `"a.b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode(context.Background(), tt.msg)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded: entity %q", ev.Entity)
			}
			if cdc.ReasonOf(err) != tt.reason || cdc.IsRetryable(err) || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("err = %v, want permanent %s naming %s", err, tt.reason, tt.mention)
			}
		})
	}
}

// switchableSchema has a switchable compound field, typed as Salesforce
// types Account.Name: a union of null, string and a record.
const switchableSchema = `{"type":"record","name":"AccountChangeEvent","namespace":"com.sforce.eventbus","fields":[
{"name":"ChangeEventHeader","type":{"type":"record","name":"ChangeEventHeader","fields":[
 {"name":"entityName","type":"string"},{"name":"recordIds","type":{"type":"array","items":"string"}},
 {"name":"changeType","type":"string"},{"name":"commitTimestamp","type":"long"},
 {"name":"nulledFields","type":{"type":"array","items":"string"}},{"name":"changedFields","type":{"type":"array","items":"string"}}]}},
{"name":"Name","type":["null","string",{"type":"record","name":"Switchable_PersonName","fields":[
 {"name":"Salutation","type":["null","string"],"default":null},{"name":"FirstName","type":["null","string"],"default":null},
 {"name":"LastName","type":["null","string"],"default":null},{"name":"MiddleName","type":["null","string"],"default":null}]}],
 "doc":"Data:Switchable_PersonName","default":null},
{"name":"Phone","type":["null","string"],"doc":"Data:Phone","default":null}]}`

// switchablePayload encodes an Account event whose Name is name: nil, a
// string, or a map of the person-name fields.
func switchablePayload(t testing.TB, ct string, changed, nulled []string, name any) []byte {
	t.Helper()
	codec, err := goavro.NewCodec(switchableSchema)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	switch n := name.(type) {
	case string:
		v = goavro.Union("string", n)
	case map[string]any:
		rec := map[string]any{"Salutation": nil, "FirstName": nil, "LastName": nil, "MiddleName": nil}
		for k, s := range n {
			rec[k] = goavro.Union("string", s)
		}
		v = goavro.Union("com.sforce.eventbus.Switchable_PersonName", rec)
	}
	b, err := codec.BinaryFromNative(nil, map[string]any{
		"ChangeEventHeader": map[string]any{"entityName": "Account", "recordIds": strs("001000000000001AAA"),
			"changeType": ct, "commitTimestamp": commitTS, "nulledFields": strs(nulled...), "changedFields": strs(changed...)},
		"Name": v, "Phone": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSwitchableCompoundField: a nested bitmap over a union with one record
// branch names the record's fields (Salesforce's reference decoders,
// EventParser.java and ChangeEventHeaderUtility.py, take the record branch
// of [null, T], [string, T] and [null, string, T]); the string branch's
// value is kept under the parent's name, the children null.
func TestSwitchableCompoundField(t *testing.T) {
	const id = "switchable"
	d := newDecoder(t, Config{}, map[string]string{id: switchableSchema})
	s := mustSchema(t, switchableSchema)
	var names []string
	for _, f := range s.Fields() {
		names = append(names, f.Name+" "+f.Kind.String())
	}
	if got, want := strings.Join(names, ", "), "Name string, Name.Salutation string, Name.FirstName string, Name.LastName string, Name.MiddleName string, Phone string"; got != want {
		t.Fatalf("fields = %s\nwant     %s", got, want)
	}
	person := map[string]any{"FirstName": "Ada", "LastName": "Lovelace"}
	tests := []struct {
		name string
		msg  []byte
		want string // name=value/changed, in order
	}{
		{"nested bitmap on the record branch", switchablePayload(t, "UPDATE", []string{"1-0x06"}, nil, person),
			`Name.FirstName="Ada"/true Name.LastName="Lovelace"/true`},
		{"nested bitmap with a nulled child", switchablePayload(t, "UPDATE", []string{"1-0x06", "1-0x08"}, []string{"1-0x08"}, person),
			`Name.FirstName="Ada"/true Name.LastName="Lovelace"/true Name.MiddleName=null/true`},
		{"top bit on the record branch", switchablePayload(t, "UPDATE", []string{"0x2"}, nil, person),
			`Name=null/true Name.Salutation=null/true Name.FirstName="Ada"/true Name.LastName="Lovelace"/true Name.MiddleName=null/true`},
		{"top bit on the string branch", switchablePayload(t, "UPDATE", []string{"0x2"}, nil, "Acme Corp"),
			`Name="Acme Corp"/true Name.Salutation=null/true Name.FirstName=null/true Name.LastName=null/true Name.MiddleName=null/true`},
		{"string branch unchanged is enriched", switchablePayload(t, "UPDATE", []string{"0x4"}, nil, "Acme Corp"),
			`Name="Acme Corp"/false Phone=null/true`},
		{"create on the string branch", switchablePayload(t, "CREATE", nil, nil, "Acme Corp"),
			`Name="Acme Corp"/true Name.Salutation=null/true Name.FirstName=null/true Name.LastName=null/true Name.MiddleName=null/true Phone=null/true`},
		{"create on the null branch", switchablePayload(t, "CREATE", nil, nil, nil),
			`Name=null/true Name.Salutation=null/true Name.FirstName=null/true Name.LastName=null/true Name.MiddleName=null/true Phone=null/true`},
		{"plain parent name", switchablePayload(t, "UPDATE", []string{"Name"}, nil, "Acme Corp"),
			`Name="Acme Corp"/true Name.Salutation=null/true Name.FirstName=null/true Name.LastName=null/true Name.MiddleName=null/true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode(context.Background(), pubsubMsg(id, tt.msg))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var got []string
			for _, f := range ev.Fields {
				got = append(got, f.Name+"="+f.Value.JSON()+"/"+map[bool]string{true: "true", false: "false"}[f.Changed])
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("fields = %s\nwant     %s", strings.Join(got, " "), tt.want)
			}
		})
	}
	// The bitmap rules on their own, and the errors they keep.
	for list, want := range map[string]string{
		"1-0x06": "Name.FirstName Name.LastName", "1-0x0F": "Name.Salutation Name.FirstName Name.LastName Name.MiddleName",
		"0x2": "Name Name.Salutation Name.FirstName Name.LastName Name.MiddleName", "0x4": "Phone",
		"1-0x10": "bad_bitmap", "2-0x01": "bad_bitmap",
	} {
		got, err := s.ExpandBitmaps([]string{list})
		if err != nil {
			if want != cdc.ReasonOf(err) {
				t.Errorf("%s: %v, want %s", list, err, want)
			}
			continue
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s = %v, want %s", list, got, want)
		}
	}
}
