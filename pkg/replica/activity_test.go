package replica

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// The fast path of DecodeActivity reads what encoding/json reads, and
// leaves everything else to it.
func TestDecodeActivityPlainMatchesJSON(t *testing.T) {
	texts := []string{
		ActivityJSON(triggers.Trigger{EventID: "e1", Kind: cdc.TriggerAdded, OpportunityID: "006A", ContactRoleID: "00KA",
			Role: "Decision Maker", IsPrimary: true, Reason: "role_created"}, 1_790_000_000_000),
		ActivityJSON(triggers.Trigger{EventID: "e2", Kind: cdc.TriggerRemoved, OpportunityID: "006A"}, 5),
		ActivityJSON(triggers.Trigger{EventID: "e3", Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "Amount",
			Old: cdc.Null, New: cdc.Number(-2.5)}, 7),
		ActivityJSON(triggers.Trigger{EventID: "e4", Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "StageName",
			Old: cdc.String(`say "hi"`), New: cdc.String("café")}, 8),
		ActivityJSON(triggers.Trigger{EventID: "e5", Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "IsWon",
			Old: cdc.Bool(false), New: cdc.Bool(true)}, 9),
		`{"id":"x","k":"added_to_opportunity","o":"006A","t":1,"extra":1}`,
		`{"id":"x","k":"added_to_opportunity","o":"006A","t":1.5}`,
		`{"id":"x","k":"added_to_opportunity","o":"006A","t":01}`,
		`{"id":"x", "t":1}`,
		`{"id":"x","t":1}trailing`,
		`{"id":"x","p":1,"t":1}`,
		`{}`, `{`, `[]`, `{"t":-0}`, `{"t":-1}`, `{"ov":nul,"t":1}`,
	}
	for _, text := range texts {
		var want Activity
		wantErr := json.Unmarshal([]byte(text), &want.ActivityEntry)
		if wantErr == nil && len(want.ActivityEntry.Old) > 0 {
			want.Old, wantErr = cdc.ParseJSON(string(want.ActivityEntry.Old), cdc.KindString)
		}
		if wantErr == nil && len(want.ActivityEntry.New) > 0 {
			want.New, wantErr = cdc.ParseJSON(string(want.ActivityEntry.New), cdc.KindString)
		}
		got, ok := decodePlainActivity(text)
		if ok && (wantErr != nil || !reflect.DeepEqual(got, want)) {
			t.Errorf("%s: fast path %+v, encoding/json %+v (%v)", text, got, want, wantErr)
		}
		full, err := DecodeActivity(text)
		if (err == nil) != (wantErr == nil) || (err == nil && !reflect.DeepEqual(full, want)) {
			t.Errorf("%s: DecodeActivity %+v, %v; encoding/json %+v, %v", text, full, err, want, wantErr)
		}
	}
	if _, ok := decodePlainActivity(texts[0]); !ok {
		t.Error("the fast path does not read what ActivityJSON writes")
	}
}

// The fast path of DecodeRole reads what encoding/json reads, and leaves
// everything else to it.
func TestDecodeRolePlainMatchesJSON(t *testing.T) {
	yes, no := true, false
	texts := []string{
		EncodeRole(&triggers.Role{ID: "00KA", OpportunityID: "006A", ContactID: "003A", Role: "Decision Maker", IsPrimary: &yes,
			Version: cdc.Version{CommitTimestamp: 1, CommitNumber: 2, SequenceNumber: 3}}),
		EncodeRole(&triggers.Role{ID: "00KB", OpportunityID: "006A", IsPrimary: &no, Deleted: true, Stale: true, Pending: true, Deadline: 1_790_000_000_000}),
		EncodeRole(&triggers.Role{ID: "00KC", OpportunityID: "006A", ContactID: "003C", Role: "Acheteur économique"}),
		EncodeRole(&triggers.Role{ID: "00KD", OpportunityID: "006A", Pending: true,
			PendingSource: &triggers.Source{Entity: "OpportunityContactRole", RecordID: "00KD", Reason: "x"}}),
		`{"o":"006A","p":null,"v":"1.2.3"}`, `{"o":"006A","dl":-5,"v":"1.2.3"}`, `{"o":"006A","dl":1.5,"v":"1.2.3"}`,
		`{"o":"006A","x":1,"v":"1.2.3"}`, `{"o":"006A","c":null,"v":"1.2.3"}`, `{"o":"006A","v":"1.2.3"} `, `{"o":"a\"b","v":"1.2.3"}`,
	}
	for _, text := range texts {
		var want storedRole
		wantErr := json.Unmarshal([]byte(text), &want)
		got, ok := decodePlainRole(text)
		if ok && (wantErr != nil || !reflect.DeepEqual(got, want)) {
			t.Errorf("%s: fast path %+v, encoding/json %+v (%v)", text, got, want, wantErr)
		}
	}
	if _, ok := decodePlainRole(texts[0]); !ok {
		t.Error("the fast path does not read what EncodeRole writes")
	}
}
