package replica

import (
	"encoding/json"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

func TestEncodeFieldRoundTrip(t *testing.T) {
	ver := cdc.Version{CommitTimestamp: 1764347041123, CommitNumber: 42, SequenceNumber: 3}
	for _, v := range []cdc.Value{cdc.Null, cdc.String("a|b"), cdc.Number(5), cdc.DateFromDays(7)} {
		gotVer, got, err := DecodeField(EncodeField(ver, v))
		if err != nil || got != v || gotVer != ver {
			t.Errorf("round trip of %+v = %v %+v %v", v, gotVer, got, err)
		}
	}
	for _, bad := range []string{"", "no-version", "1.2|x1", "x|s\"a\""} {
		if _, _, err := DecodeField(bad); err == nil {
			t.Errorf("DecodeField(%q) accepted", bad)
		}
	}
}

func TestEncodeValueRoundTrip(t *testing.T) {
	for _, v := range []cdc.Value{cdc.String("x"), cdc.Number(-1.25), cdc.Bool(true), cdc.DateFromDays(1), cdc.DateTimeFromMillis(1)} {
		got, err := DecodeValue(EncodeValue(v))
		if err != nil || got != v {
			t.Errorf("round trip of %+v = %+v, %v", v, got, err)
		}
	}
	for _, bad := range []string{"", "x1", "n{", "s"} {
		if _, err := DecodeValue(bad); err == nil {
			t.Errorf("DecodeValue(%q) accepted", bad)
		}
	}
}

func TestActivityJSONMatchesTheActivityType(t *testing.T) {
	for _, tr := range []triggers.Trigger{
		{Kind: cdc.TriggerAdded, EventID: "e1", OpportunityID: "006A", ContactRoleID: "00KA", Role: "Decision <Maker>", IsPrimary: true, Reason: "contact_role_created"},
		{Kind: cdc.TriggerRemoved, EventID: "e2", OpportunityID: "006A", ContactRoleID: "00KB", Reason: "opportunity_deleted"},
		{Kind: cdc.TriggerUpdated, EventID: "e3", OpportunityID: "006A", Field: "Amount", Old: cdc.Null, New: cdc.Number(5)},
	} {
		a := ActivityEntry{EventID: tr.EventID, Kind: tr.Kind, Opp: tr.OpportunityID, At: 42}
		if tr.Kind == cdc.TriggerUpdated {
			a.Field, a.Old, a.New = tr.Field, json.RawMessage(tr.Old.JSON()), json.RawMessage(tr.New.JSON())
		} else {
			a.RoleID, a.Role, a.IsPrimary, a.Reason = tr.ContactRoleID, tr.Role, tr.IsPrimary, tr.Reason
		}
		want, _ := json.Marshal(a)
		if got := ActivityJSON(tr, 42); got != string(want) {
			t.Errorf("activityJSON = %s\nwant          %s", got, want)
		}
	}
}

func TestStreamIDLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"1-0", "2-0", true}, {"2-0", "1-0", false}, {"10-0", "9-5", false},
		{"5-2", "5-10", true}, {"5-10", "5-2", false}, {"5-1", "5-1", false}, {"0-0", "1-1", true},
	} {
		if got := StreamIDLess(c.a, c.b); got != c.want {
			t.Errorf("StreamIDLess(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
