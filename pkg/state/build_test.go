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

func TestRolesJSON(t *testing.T) {
	roles := []triggers.RoleRef{{ContactRoleID: "00KA", Role: "R&D", IsPrimary: true}, {ContactRoleID: "00KB"}}
	want, _ := json.Marshal(roles)
	if got := rolesJSON(roles); got != string(want) {
		t.Errorf("rolesJSON = %s, want %s", got, want)
	}
	if got := rolesJSON(nil); got != "[]" {
		t.Errorf("rolesJSON(nil) = %s", got)
	}
}
