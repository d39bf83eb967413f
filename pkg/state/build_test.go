package state

import (
	"encoding/json"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

func TestSnapshotJSONMatchesEncodingJSON(t *testing.T) {
	m := map[string]cdc.Value{
		"Name":                    cdc.String(`Acme "Big" <deal> & co — ünïcode`),
		"Amount":                  cdc.Number(12500.5),
		"IsWon":                   cdc.Bool(false),
		"CloseDate":               cdc.DateFromDays(20818),
		"LastModifiedDate":        cdc.DateTimeFromMillis(1764347041123),
		"Billing_Address__c.City": cdc.String("São Paulo"),
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshotJSON(m); got != string(want) {
		t.Fatalf("snapshotJSON =\n%s\nencoding/json =\n%s", got, want)
	}
	if got := snapshotJSON(map[string]cdc.Value{}); got != "{}" {
		t.Fatalf("empty snapshot = %s", got)
	}
}

func TestEncodeValueRoundTrip(t *testing.T) {
	for _, v := range []cdc.Value{cdc.String("x"), cdc.Number(-1.25), cdc.Bool(true), cdc.DateFromDays(1), cdc.DateTimeFromMillis(1)} {
		got, err := decodeValue(encodeValue(v))
		if err != nil || got != v {
			t.Errorf("round trip of %+v = %+v, %v", v, got, err)
		}
	}
	for _, bad := range []string{"", "x1", "n{", "s"} {
		if _, err := decodeValue(bad); err == nil {
			t.Errorf("decodeValue(%q) accepted", bad)
		}
	}
}

func TestActivityJSONMatchesTheActivityType(t *testing.T) {
	for _, tr := range []triggers.Trigger{
		{Kind: cdc.TriggerAdded, EventID: "e1", OpportunityID: "006A", ContactRoleID: "00KA", Role: "Decision <Maker>", IsPrimary: true, Reason: "contact_role_created"},
		{Kind: cdc.TriggerRemoved, EventID: "e2", OpportunityID: "006A", ContactRoleID: "00KB", Reason: "opportunity_deleted"},
		{Kind: cdc.TriggerUpdated, EventID: "e3", OpportunityID: "006A", Field: "Amount", Old: cdc.Null, New: cdc.Number(5)},
	} {
		a := activity{EventID: tr.EventID, Kind: tr.Kind, Opp: tr.OpportunityID, At: 42}
		if tr.Kind == cdc.TriggerUpdated {
			a.Field, a.Old, a.New = tr.Field, json.RawMessage(tr.Old.JSON()), json.RawMessage(tr.New.JSON())
		} else {
			a.RoleID, a.Role, a.IsPrimary, a.Reason = tr.ContactRoleID, tr.Role, tr.IsPrimary, tr.Reason
		}
		want, _ := json.Marshal(a)
		if got := activityJSON(tr, 42); got != string(want) {
			t.Errorf("activityJSON = %s\nwant          %s", got, want)
		}
	}
	roles := []triggers.RoleRef{{ContactRoleID: "00KA", Role: "R&D", IsPrimary: true}, {ContactRoleID: "00KB"}}
	want, _ := json.Marshal(roles)
	if got := rolesJSON(roles); got != string(want) {
		t.Errorf("rolesJSON = %s, want %s", got, want)
	}
	if got := rolesJSON(nil); got != "[]" {
		t.Errorf("rolesJSON(nil) = %s", got)
	}
}

func TestEncodeFieldRoundTrip(t *testing.T) {
	ver := cdc.Version{CommitTimestamp: 1764347041123, CommitNumber: 42, SequenceNumber: 3}
	for _, v := range []cdc.Value{cdc.Null, cdc.String("a|b"), cdc.Number(5), cdc.DateFromDays(7)} {
		gotVer, got, err := decodeField(encodeField(ver, v))
		if err != nil || got != v || gotVer != ver {
			t.Errorf("round trip of %+v = %v %+v %v", v, gotVer, got, err)
		}
	}
	for _, bad := range []string{"", "no-version", "1.2|x1", "x|s\"a\""} {
		if _, _, err := decodeField(bad); err == nil {
			t.Errorf("decodeField(%q) accepted", bad)
		}
	}
}
