package filters

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func testCatalog() *Catalog {
	return NewCatalog([]Field{
		{Entity: "Opportunity", Name: "Name", Kind: cdc.KindString, SalesforceType: "Text"},
		{Entity: "Opportunity", Name: "StageName", Kind: cdc.KindString, SalesforceType: "DynamicEnum"},
		{Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency"},
		{Entity: "Opportunity", Name: "ExpectedRevenue", Kind: cdc.KindNumber, SalesforceType: "Currency"},
		{Entity: "Opportunity", Name: "IsClosed", Kind: cdc.KindBool, SalesforceType: "Boolean"},
		{Entity: "Opportunity", Name: "CloseDate", Kind: cdc.KindDate, SalesforceType: "DateOnly"},
		{Entity: "Opportunity", Name: "LastStageChangeDate", Kind: cdc.KindDateTime, SalesforceType: "DateTime"},
		{Entity: "Opportunity", Name: "NextStep", Kind: cdc.KindString, SalesforceType: "Text"},
		{Entity: "Opportunity", Name: "Region__c", Kind: cdc.KindString, SalesforceType: "DynamicEnum"},
		{Entity: "Opportunity", Name: "Seats__c", Kind: cdc.KindNumber, SalesforceType: "Integer"},
		{Entity: "OpportunityContactRole", Name: "Role", Kind: cdc.KindString, SalesforceType: "DynamicEnum"},
	})
}

const me = "003A"

// person holds two live opportunities (A: open, big, EMEA, me as primary
// Decision Maker; B: closed won, small, APAC, me as non-primary Evaluator
// and as primary blank role), a deleted one (C) and a pending one (D), and
// some activity.
func testPerson() *Person {
	a := &Opportunity{ID: "006A", Known: true, Fields: map[string]cdc.Value{
		"Name": cdc.String("Acme - Widgets"), "StageName": cdc.String("Negotiation/Review"),
		"Amount": cdc.Number(50000), "ExpectedRevenue": cdc.Number(40000), "IsClosed": cdc.Bool(false),
		"CloseDate": {Kind: cdc.KindDate, Str: "2026-12-15"}, "Region__c": cdc.String("EMEA"),
		"LastStageChangeDate": {Kind: cdc.KindDateTime, Str: "2026-11-27T10:00:00.000Z"},
		"NextStep":            cdc.String(""),
	}, Roles: []Role{
		{ID: "00KA1", ContactID: me, Role: "Decision Maker", IsPrimary: true},
		{ID: "00KA2", ContactID: "003B", Role: "Evaluator"},
	}}
	b := &Opportunity{ID: "006B", Known: true, Fields: map[string]cdc.Value{
		"Name": cdc.String("Globex - Gadgets"), "StageName": cdc.String("Closed Won"),
		"Amount": cdc.Number(1000), "IsClosed": cdc.Bool(true), "Seats__c": cdc.Number(25),
		"CloseDate": {Kind: cdc.KindDate, Str: "2026-06-01"}, "Region__c": cdc.String("APAC"),
	}, Roles: []Role{
		{ID: "00KB1", ContactID: me, Role: "Evaluator", IsPrimary: false},
		{ID: "00KB2", ContactID: me, Role: "", IsPrimary: true},
	}}
	c := &Opportunity{ID: "006C", Known: true, Deleted: true, Fields: map[string]cdc.Value{
		"Amount": cdc.Number(999999), "StageName": cdc.String("Prospecting"), "Region__c": cdc.String("NA"),
	}, Roles: []Role{{ID: "00KC1", ContactID: me, Role: "Champion"}}}
	d := &Opportunity{ID: "006D", Roles: []Role{{ID: "00KD1", ContactID: me, Role: "Champion", Pending: true}}}
	gone := &Opportunity{ID: "006E", Known: true, Fields: map[string]cdc.Value{"StageName": cdc.String("Prospecting"), "Amount": cdc.Number(7)}}
	day := int64(86_400_000)
	at := now.UnixMilli()
	return &Person{
		ID:            me,
		Opportunities: []*Opportunity{a, b, c, d},
		Activity: []Activity{
			{Kind: cdc.TriggerAdded, OpportunityID: "006A", RoleID: "00KA1", Role: "Decision Maker", IsPrimary: true, At: at - 40*day},
			{Kind: cdc.TriggerAdded, OpportunityID: "006B", RoleID: "00KB1", Role: "Evaluator", At: at - 2*day},
			{Kind: cdc.TriggerAdded, OpportunityID: "006B", RoleID: "00KB2", Role: "", IsPrimary: true, At: at - 1*day},
			{Kind: cdc.TriggerRemoved, OpportunityID: "006E", RoleID: "00KE1", Role: "Champion", At: at - 3*day},
			{Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "StageName", Old: cdc.String("Negotiation/Review"), New: cdc.String("Closed Won"), At: at - 5*day},
			{Kind: cdc.TriggerUpdated, OpportunityID: "006A", Field: "Amount", Old: cdc.Number(40000), New: cdc.Number(50000), At: at - 10*day},
		},
		Lookup: func(id string) (*Opportunity, bool) {
			if id == "006E" {
				return gone, true
			}
			return nil, false
		},
	}
}

func TestMatch(t *testing.T) {
	cat := testCatalog()
	tests := []struct {
		name  string
		query string
		want  bool
	}{
		// has_opportunity and every operator.
		{"has any", `{"filters":[{"filter":"has_opportunity"}]}`, true},
		{"has not any", `{"filters":[{"filter":"has_opportunity","not":true}]}`, false},
		{"is string ignores case", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":"closed won"}]}]}`, true},
		{"is list", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":["Prospecting","closed WON"]}]}]}`, true},
		{"is on deleted opp does not count", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":"Prospecting"}]}]}`, false},
		{"is_not value", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is_not","value":"Closed Won"}]}]}`, true},
		{"is_not list", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is_not","value":["Closed Won","negotiation/review"]}]}]}`, false},
		{"contains", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Name","op":"contains","value":"WIDGET"}]}]}`, true},
		{"contains none", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Name","op":"contains","value":"Initech"}]}]}`, false},
		{"not_contains", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Name","op":"not_contains","value":"acme"}]}]}`, true},
		{"starts_with", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Name","op":"starts_with","value":"glob"}]}]}`, true},
		{"starts_with none", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Name","op":"starts_with","value":"gadgets"}]}]}`, false},
		{"gt", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gt","value":49999}]}]}`, true},
		{"gt none", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gt","value":50000}]}]}`, false},
		{"gte", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gte","value":50000}]}]}`, true},
		{"lt", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"lt","value":1000}]}]}`, false},
		{"lte", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"lte","value":1000}]}]}`, true},
		{"between", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"between","value":[900,1100]}]}]}`, true},
		{"between none", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"between","value":[1001,49999]}]}]}`, false},
		{"is_not number", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is_not","value":50000},{"field":"Region__c","op":"is","value":"APAC"}]}]}`, true},
		{"is_not number list", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is_not","value":[50000,1000]}]}]}`, false},
		{"is_not boolean", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is_not","value":false},{"field":"Region__c","op":"is","value":"EMEA"}]}]}`, false},
		{"is number", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is","value":1000}]}]}`, true},
		{"is boolean", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":true}]}]}`, true},
		{"is_empty", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Seats__c","op":"is_empty"},{"field":"Region__c","op":"is","value":"EMEA"}]}]}`, true},
		{"is_empty empty string", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"NextStep","op":"is_empty"},{"field":"Amount","op":"is","value":50000}]}]}`, true},
		{"is_not_empty", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Seats__c","op":"is_not_empty"},{"field":"Region__c","op":"is","value":"EMEA"}]}]}`, false},
		{"before date", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"before","value":"2026-06-02"}]}]}`, true},
		{"before date strict", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"before","value":"2026-06-01"}]}]}`, false},
		{"after date", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"after","value":"2026-12-14"}]}]}`, true},
		{"gte date", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"gte","value":"2026-12-16"}]}]}`, false},
		{"between dates", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"between","value":["2026-12-01","2026-12-31"]}]}]}`, true},
		{"after datetime", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"LastStageChangeDate","op":"after","value":"2026-11-27T09:59:59Z"}]}]}`, true},
		{"datetime vs date value", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"LastStageChangeDate","op":"before","value":"2026-11-27"}]}]}`, false},
		{"in_past", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"LastStageChangeDate","op":"in_past","value":"48h"}]}]}`, true},
		{"in_past too short", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"LastStageChangeDate","op":"in_past","value":"24h"}]}]}`, false},
		{"in_past future date", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"in_past","value":"8760h"}]}]}`, true},
		{"custom field", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Seats__c","op":"gte","value":20}]}]}`, true},
		{"Id", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Id","op":"is","value":"006b"}]}]}`, true},
		// The same-opportunity rule.
		{"same opp: both on A", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":false},{"field":"Amount","op":"gte","value":5000}]}]}`, true},
		{"same opp: split across A and B", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":true},{"field":"Amount","op":"gte","value":5000}]}]}`, false},
		{"same opp: custom split", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Region__c","op":"is","value":"EMEA"},{"field":"Seats__c","op":"gt","value":0}]}]}`, false},
		// Role and IsPrimary on the same role.
		{"role", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Role","op":"is","value":"decision maker"}]}]}`, true},
		{"role of another person", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Role","op":"is","value":"Evaluator"},{"field":"Region__c","op":"is","value":"EMEA"}]}]}`, false},
		{"role of deleted opp", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Role","op":"is","value":"Champion"}]}]}`, false},
		{"role and primary same role", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Role","op":"is","value":"Evaluator"},{"field":"IsPrimary","op":"is","value":true}]}]}`, false},
		{"role empty and primary", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Role","op":"is_empty"},{"field":"IsPrimary","op":"is","value":true},{"field":"StageName","op":"is","value":"Closed Won"}]}]}`, true},
		{"primary decision maker open", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsPrimary","op":"is","value":true},{"field":"IsClosed","op":"is","value":false}]}]}`, true},
		// Aggregates: count 3 (A, B, pending D; not deleted C), amount 51000, expected 40000.
		{"count is", `{"filters":[{"filter":"number_of_opportunities","op":"is","value":3}]}`, true},
		{"count gte", `{"filters":[{"filter":"number_of_opportunities","op":"gte","value":4}]}`, false},
		{"count not", `{"filters":[{"filter":"number_of_opportunities","op":"lt","value":2,"not":true}]}`, true},
		{"count is_not", `{"filters":[{"filter":"number_of_opportunities","op":"is_not","value":[1,2]}]}`, true},
		{"amount between", `{"filters":[{"filter":"total_opportunity_amount","op":"between","value":[51000,51000]}]}`, true},
		{"amount lte", `{"filters":[{"filter":"total_opportunity_amount","op":"lte","value":50999}]}`, false},
		{"expected gt", `{"filters":[{"filter":"total_expected_revenue","op":"gt","value":39999.5}]}`, true},
		{"expected lt", `{"filters":[{"filter":"total_expected_revenue","op":"lt","value":40000}]}`, false},
		// Activity filters, windows and min_times.
		{"added", `{"filters":[{"filter":"was_added_to_opportunity"}]}`, true},
		{"added within", `{"filters":[{"filter":"was_added_to_opportunity","within":"36h"}]}`, true},
		{"added within min_times", `{"filters":[{"filter":"was_added_to_opportunity","within":"72h","min_times":2}]}`, true},
		{"added within min_times too many", `{"filters":[{"filter":"was_added_to_opportunity","within":"72h","min_times":3}]}`, false},
		{"added role within", `{"filters":[{"filter":"was_added_to_opportunity","within":"720h","constraints":[{"field":"Role","op":"is","value":"Decision Maker"}]}]}`, false},
		{"added role ever", `{"filters":[{"filter":"was_added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Decision Maker"}]}]}`, true},
		{"added since until", `{"filters":[{"filter":"was_added_to_opportunity","since":"2026-10-01T00:00:00Z","until":"2026-10-31T00:00:00Z"}]}`, true},
		{"added since until empty", `{"filters":[{"filter":"was_added_to_opportunity","since":"2026-11-01T00:00:00Z","until":"2026-11-25T00:00:00Z"}]}`, false},
		{"added primary with opp field", `{"filters":[{"filter":"was_added_to_opportunity","constraints":[{"field":"IsPrimary","op":"is","value":true},{"field":"StageName","op":"is","value":"Closed Won"}]}]}`, true},
		{"added primary split", `{"filters":[{"filter":"was_added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Evaluator"},{"field":"IsPrimary","op":"is","value":true}]}]}`, false},
		{"removed", `{"filters":[{"filter":"was_removed_from_opportunity","within":"720h"}]}`, true},
		{"removed not", `{"filters":[{"filter":"was_removed_from_opportunity","within":"48h","not":true}]}`, true},
		{"removed with looked-up opp field", `{"filters":[{"filter":"was_removed_from_opportunity","constraints":[{"field":"StageName","op":"is","value":"Prospecting"}]}]}`, true},
		{"removed role", `{"filters":[{"filter":"was_removed_from_opportunity","constraints":[{"field":"Role","op":"is","value":"Evaluator"}]}]}`, false},
		{"updated field", `{"filters":[{"filter":"opportunity_updated","field":"StageName","within":"720h"}]}`, true},
		{"updated new_value", `{"filters":[{"filter":"opportunity_updated","field":"StageName","constraints":[{"field":"new_value","op":"is","value":"Closed Won"}]}]}`, true},
		{"updated old_value", `{"filters":[{"filter":"opportunity_updated","field":"StageName","constraints":[{"field":"old_value","op":"is","value":"Closed Won"}]}]}`, false},
		{"updated amount grew", `{"filters":[{"filter":"opportunity_updated","field":"Amount","constraints":[{"field":"old_value","op":"lt","value":45000},{"field":"new_value","op":"gte","value":45000}]}]}`, true},
		{"updated within too short", `{"filters":[{"filter":"opportunity_updated","field":"Amount","within":"24h"}]}`, false},
		{"updated any field min_times", `{"filters":[{"filter":"opportunity_updated","min_times":2}]}`, true},
		{"updated with opp field", `{"filters":[{"filter":"opportunity_updated","field":"StageName","constraints":[{"field":"Region__c","op":"is","value":"APAC"}]}]}`, true},
		{"updated with role", `{"filters":[{"filter":"opportunity_updated","field":"Amount","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"IsPrimary","op":"is","value":true}]}]}`, true},
		{"updated with wrong role", `{"filters":[{"filter":"opportunity_updated","field":"Amount","constraints":[{"field":"Role","op":"is","value":"Evaluator"}]}]}`, false},
		// match all / any.
		{"all", `{"filters":[{"filter":"has_opportunity"},{"filter":"number_of_opportunities","op":"gt","value":5}]}`, false},
		{"any", `{"match":"any","filters":[{"filter":"has_opportunity"},{"filter":"number_of_opportunities","op":"gt","value":5}]}`, true},
		{"any none", `{"match":"any","filters":[{"filter":"has_opportunity","not":true},{"filter":"number_of_opportunities","op":"gt","value":5}]}`, false},
		{"no filters all", `{"filters":[]}`, true},
		{"no filters any", `{"match":"any"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse([]byte(tt.query), cat, now)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := q.Match(testPerson()); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
			if got := q.Match(compactPerson(testPerson())); got != tt.want {
				t.Errorf("Match on compact opportunities = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchNobody(t *testing.T) {
	q, err := Parse([]byte(`{"filters":[{"filter":"has_opportunity","not":true},{"filter":"number_of_opportunities","op":"is","value":0},{"filter":"was_added_to_opportunity","not":true}]}`), testCatalog(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Match(&Person{ID: "003Z"}) {
		t.Error("a person with nothing should match the negations")
	}
}

func TestParseErrors(t *testing.T) {
	cat := testCatalog()
	tests := []struct{ name, query, want string }{
		{"not json", `{`, `body: not a JSON object`},
		{"array", `[]`, `body: not a JSON object`},
		{"unknown top key", `{"filter":[]}`, `body: unknown key "filter"`},
		{"match", `{"match":"some"}`, `match: "some" is not "all" or "any"`},
		{"limit zero", `{"limit":0}`, `limit: 0 is not an integer from 1 to 10000`},
		{"limit too big", `{"limit":10001}`, `limit: 10001 is not an integer from 1 to 10000`},
		{"limit fraction", `{"limit":1.5}`, `limit: 1.5 is not an integer from 1 to 10000`},
		{"cursor", `{"cursor":"!!"}`, `cursor: not a cursor issued by this API`},
		{"cursor type", `{"cursor":1}`, `cursor: 1 is not a string`},
		{"filters type", `{"filters":{}}`, `filters: {} is not a list`},
		{"filter not object", `{"filters":[1]}`, `filters[0]: not a JSON object`},
		{"missing filter", `{"filters":[{}]}`, `filters[0]: missing "filter"`},
		{"unknown filter", `{"filters":[{"filter":"has_opp"}]}`, `filters[0]: unknown filter "has_opp"`},
		{"unknown key", `{"filters":[{"filter":"has_opportunity","within":"1h"}]}`, `filters[0]: unknown key "within" (filter has_opportunity)`},
		{"not type", `{"filters":[{"filter":"has_opportunity","not":"yes"}]}`, `filters[0].not: "yes" is not a boolean`},
		{"unknown field", `{"filters":[{"filter":"has_opportunity"},{"filter":"has_opportunity","constraints":[{"field":"Amout","op":"gt","value":1}]}]}`, `filters[1].constraints[0]: unknown field "Amout"`},
		{"hidden field", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Description","op":"is","value":"secret plans"}]}]}`, `filters[0].constraints[0]: unknown field "Description"`},
		{"agg op", `{"filters":[{},{},{"filter":"number_of_opportunities","op":"gtx","value":1}]}`, `filters[0]: missing "filter"`},
		{"agg bad op", `{"filters":[{"filter":"has_opportunity"},{"filter":"has_opportunity"},{"filter":"number_of_opportunities","op":"gtx","value":1}]}`, `filters[2].op: "gtx" is not an operator`},
		{"agg op not applicable", `{"filters":[{"filter":"total_opportunity_amount","op":"contains","value":1}]}`, `filters[0].op: "contains" does not apply to total_opportunity_amount`},
		{"agg missing op", `{"filters":[{"filter":"total_expected_revenue","value":1}]}`, `filters[0].op: missing`},
		{"agg value", `{"filters":[{"filter":"number_of_opportunities","op":"gt","value":"two"}]}`, `filters[0].value: "two" is not a number for number_of_opportunities`},
		{"agg between", `{"filters":[{"filter":"number_of_opportunities","op":"between","value":[1]}]}`, `filters[0].value: [1] is not [low, high]`},
		{"constraint op", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gtx","value":1}]}]}`, `filters[0].constraints[0].op: "gtx" is not an operator`},
		{"constraint value number", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gt","value":1},{"field":"Amount","op":"gte","value":"abc"}]}]}`, `filters[0].constraints[1].value: "abc" is not a number for Amount (Currency)`},
		{"constraint value bool", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":"no"}]}]}`, `filters[0].constraints[0].value: "no" is not a boolean for IsClosed (Boolean)`},
		{"constraint value date", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"before","value":"12/01/2026"}]}]}`, `filters[0].constraints[0].value: "12/01/2026" is not a date (YYYY-MM-DD) for CloseDate (DateOnly)`},
		{"constraint value datetime", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"LastStageChangeDate","op":"after","value":"yesterday"}]}]}`, `filters[0].constraints[0].value: "yesterday" is not an RFC 3339 time for LastStageChangeDate (DateTime)`},
		{"constraint value string", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":{"a":1}}]}]}`, `filters[0].constraints[0].value: {"a":1} is not a string for StageName (DynamicEnum)`},
		{"contains on number", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"contains","value":"5"}]}]}`, `filters[0].constraints[0].op: "contains" does not apply to Amount (Currency)`},
		{"gt on string", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Name","op":"gt","value":"a"}]}]}`, `filters[0].constraints[0].op: "gt" does not apply to Name (Text)`},
		{"in_past on number", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"in_past","value":"1h"}]}]}`, `filters[0].constraints[0].op: "in_past" does not apply to Amount (Currency)`},
		{"in_past duration", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"in_past","value":"30d"}]}]}`, `filters[0].constraints[0].value: "30d" is not a positive duration (e.g. "720h")`},
		{"between shape", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"between","value":5}]}]}`, `filters[0].constraints[0].value: 5 is not [low, high]`},
		{"between item", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"between","value":[1,"x"]}]}]}`, `filters[0].constraints[0].value: "x" is not a number for Amount (Currency)`},
		{"is_empty with value", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is_empty","value":1}]}]}`, `filters[0].constraints[0].value: "is_empty" takes no value`},
		{"missing value", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is"}]}]}`, `filters[0].constraints[0].value: missing (operator "is" needs one)`},
		{"empty list", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is_not","value":[]}]}]}`, `filters[0].constraints[0].value: [] is not a non-empty list`},
		{"constraint key", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is","value":1,"values":2}]}]}`, `filters[0].constraints[0]: unknown key "values"`},
		{"constraints type", `{"filters":[{"filter":"has_opportunity","constraints":{}}]}`, `filters[0].constraints: {} is not a list`},
		{"role type", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsPrimary","op":"is","value":1}]}]}`, `filters[0].constraints[0].value: 1 is not a boolean for IsPrimary (boolean)`},
		{"within", `{"filters":[{"filter":"was_added_to_opportunity","within":"a month"}]}`, `filters[0].within: "a month" is not a positive duration (e.g. "720h")`},
		{"within negative", `{"filters":[{"filter":"was_added_to_opportunity","within":"-1h"}]}`, `filters[0].within: "-1h" is not a positive duration (e.g. "720h")`},
		{"within and since", `{"filters":[{"filter":"was_added_to_opportunity","within":"1h","since":"2026-01-01T00:00:00Z"}]}`, `filters[0]: "within" and "since" cannot be combined`},
		{"since", `{"filters":[{"filter":"was_removed_from_opportunity","since":"2026-01-01"}]}`, `filters[0].since: "2026-01-01" is not an RFC 3339 time`},
		{"until", `{"filters":[{"filter":"was_removed_from_opportunity","until":5}]}`, `filters[0].until: 5 is not an RFC 3339 time`},
		{"window order", `{"filters":[{"filter":"opportunity_updated","since":"2026-02-01T00:00:00Z","until":"2026-01-01T00:00:00Z"}]}`, `filters[0]: the window ends before it starts`},
		{"min_times", `{"filters":[{"filter":"was_added_to_opportunity","min_times":0}]}`, `filters[0].min_times: 0 is not a whole number of at least 1`},
		{"updated field", `{"filters":[{"filter":"opportunity_updated","field":"Stage"}]}`, `filters[0].field: unknown field "Stage"`},
		{"new_value without field", `{"filters":[{"filter":"opportunity_updated","constraints":[{"field":"new_value","op":"is","value":"x"}]}]}`, `filters[0].constraints[0]: "new_value" needs the filter's "field"`},
		{"old_value elsewhere", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"old_value","op":"is","value":"x"}]}]}`, `filters[0].constraints[0]: "old_value" applies only to opportunity_updated`},
		{"new_value typed", `{"filters":[{"filter":"opportunity_updated","field":"Amount","constraints":[{"field":"new_value","op":"gt","value":"big"}]}]}`, `filters[0].constraints[0].value: "big" is not a number for new_value (Currency)`},
		{"long value shortened", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"is","value":"` + strings.Repeat("x", 100) + `"}]}]}`, `filters[0].constraints[0].value: "` + strings.Repeat("x", 63) + `… is not a number for Amount (Currency)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.query), cat, now)
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.query)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	q, err := Parse([]byte(`{"filters":[{"filter":"was_added_to_opportunity","within":"720h"}],"cursor":"`+EncodeCursor("003X")+`"}`), testCatalog(), now)
	if err != nil {
		t.Fatal(err)
	}
	if q.Any || q.Limit != DefaultLimit || q.After != "003X" {
		t.Errorf("query = %+v", q)
	}
	f := q.Filters[0]
	if f.MinTimes != 1 || f.Since != now.Add(-720*time.Hour).UnixMilli() || f.Until <= now.UnixMilli() {
		t.Errorf("window = %d..%d min %d", f.Since, f.Until, f.MinTimes)
	}
	since, _, ok := q.ActivityWindow()
	if !ok || since != f.Since || !q.NeedsActivity() {
		t.Errorf("ActivityWindow = %d, %v", since, ok)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, id := range []string{"003A", "0035e00000AbCdEFGH", "x/y+z"} {
		got, err := DecodeCursor(EncodeCursor(id))
		if err != nil || got != id {
			t.Errorf("DecodeCursor(EncodeCursor(%q)) = %q, %v", id, got, err)
		}
	}
	if _, err := DecodeCursor("cDo"); err == nil { // "p:" with no id
		t.Error("an empty cursor id was accepted")
	}
}

func TestTotalsOf(t *testing.T) {
	got := TotalsOf(me, testPerson().Opportunities)
	want := Totals{Count: 3, Amount: 51000, Expected: 40000}
	if got != want {
		t.Errorf("TotalsOf = %+v, want %+v", got, want)
	}
	if got := TotalsOf("003B", testPerson().Opportunities); got.Count != 1 || got.Amount != 50000 {
		t.Errorf("TotalsOf(003B) = %+v", got)
	}
}

// compactPerson compacts every opportunity the person can reach.
func compactPerson(p *Person) *Person {
	for _, o := range p.Opportunities {
		o.Compact()
	}
	lookup := p.Lookup
	p.Lookup = func(id string) (*Opportunity, bool) {
		o, ok := lookup(id)
		if ok {
			o.Compact()
		}
		return o, ok
	}
	return p
}

func TestCompactKeepsValues(t *testing.T) {
	o := testPerson().Opportunities[0]
	want := map[string]cdc.Value{}
	for k, v := range o.Fields {
		want[k] = v
	}
	o.Compact()
	if o.Fields != nil {
		t.Error("Compact kept the map")
	}
	got := o.FieldMap()
	for k, v := range want {
		if v.IsNull() {
			continue
		}
		if got[k] != v || o.Value(k) != v {
			t.Errorf("%s = %v / %v, want %v", k, got[k], o.Value(k), v)
		}
	}
	if !o.Value("NoSuchField__c").IsNull() {
		t.Error("an unknown field is not null")
	}
}

// Compact rows keep every value exactly: numbers, booleans, texts of every
// kind (shared or inline, empty, long), and rows over 64 KiB.
func TestCompactRowValues(t *testing.T) {
	long := strings.Repeat("x", 70_000)
	tests := []struct {
		name   string
		fields map[string]cdc.Value
	}{
		{"numbers", map[string]cdc.Value{"Amount": cdc.Number(-1.25), "Seats__c": cdc.Number(0), "Probability": cdc.Number(1e300)}},
		{"integers", map[string]cdc.Value{"Amount": cdc.Number(205000), "Seats__c": cdc.Number(-7), "Probability": cdc.Number(math.Copysign(0, -1)),
			"ExpectedRevenue": cdc.Number(1 << 53), "N1": cdc.Number(1<<53 - 1), "N2": cdc.Number(-(1<<53 - 1)), "N3": cdc.Number(math.MaxInt64)}},
		{"booleans", map[string]cdc.Value{"IsClosed": cdc.Bool(true), "IsWon": cdc.Bool(false)}},
		{"texts", map[string]cdc.Value{"StageName": cdc.String("Closed Won"), "NextStep": cdc.String(""),
			"CloseDate": {Kind: cdc.KindDate, Str: "2026-12-15"}, "LastStageChangeDate": {Kind: cdc.KindDateTime, Str: "2026-11-27T10:00:00.000Z"},
			"Description": cdc.String(strings.Repeat("long text ", 20))}},
		{"a row over 64 KiB", map[string]cdc.Value{"Description": cdc.String(long), "Amount": cdc.Number(5), "Name": cdc.String("Acme")}},
		{"nulls", map[string]cdc.Value{"Amount": cdc.Null, "Name": cdc.String("n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &Opportunity{ID: "006000000000001AAA", Known: true, Fields: map[string]cdc.Value{}}
			for k, v := range tt.fields {
				o.Fields[k] = v
			}
			o.Compact()
			if o.ID != "006000000000001AAA" {
				t.Errorf("ID = %q", o.ID)
			}
			for k, v := range tt.fields {
				if got := o.Value(k); got != v {
					t.Errorf("%s = %+v, want %+v", k, got, v)
				}
			}
		})
	}
	// More distinct short values than a column shares: the rest are kept
	// in their rows.
	var opps []*Opportunity
	for i := range 3 * sharedMax {
		o := &Opportunity{ID: fmt.Sprint(i), Known: true, Fields: map[string]cdc.Value{"Region__c": cdc.String(fmt.Sprintf("region %d", i))}}
		o.Compact()
		opps = append(opps, o)
	}
	for i, o := range opps {
		if got := o.Value("Region__c").Str; got != fmt.Sprintf("region %d", i) {
			t.Fatalf("opportunity %d: Region__c = %q", i, got)
		}
	}
	// Date-times past the shared ones: milliseconds when they read back
	// exactly, else the text.
	stamp := func(i int) cdc.Value {
		switch i % 3 {
		case 0:
			return cdc.DateTimeFromMillis(1_790_000_000_000 + int64(i))
		case 1:
			return cdc.Value{Kind: cdc.KindDateTime, Str: fmt.Sprintf("2026-11-27T10:00:%02dZ", i%60)}
		}
		return cdc.Value{Kind: cdc.KindDateTime, Str: "1969-12-31T23:59:59.999Z"}
	}
	opps = nil
	for i := range 3 * sharedMax {
		o := &Opportunity{ID: fmt.Sprint(i), Known: true, Fields: map[string]cdc.Value{"LastModifiedDate": stamp(i)}}
		o.Compact()
		opps = append(opps, o)
	}
	for i, o := range opps {
		if got := o.Value("LastModifiedDate"); got != stamp(i) {
			t.Fatalf("opportunity %d: LastModifiedDate = %+v, want %+v", i, got, stamp(i))
		}
	}
}

// Compact rows keep the roles: contacts, names (shared or long), flags.
func TestCompactRowRoles(t *testing.T) {
	long := strings.Repeat("Executive Sponsor ", 10)
	roles := []Role{
		{ID: "00KA", ContactID: "003A", Role: "Decision Maker", IsPrimary: true},
		{ID: "00KB", ContactID: "003B", Role: long},
		{ID: "00KC", ContactID: "003A", Role: "", Pending: true},
	}
	o := &Opportunity{ID: "006A", Known: true, Fields: map[string]cdc.Value{"Amount": cdc.Number(1)}, Roles: append([]Role(nil), roles...)}
	o.Compact()
	if o.Roles != nil || o.RoleCount() != 3 {
		t.Fatalf("Roles = %v, RoleCount = %d", o.Roles, o.RoleCount())
	}
	for _, p := range []string{"003A", "003B", "003Z"} {
		var want []Role
		for _, r := range roles {
			if r.ContactID == p {
				r.ID = "" // not kept
				want = append(want, r)
			}
		}
		if got := PersonRoles(o, p); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("PersonRoles(%s) = %+v, want %+v", p, got, want)
		}
	}
	if got := fmt.Sprint(o.AppendContacts(nil)); got != "[003A 003B]" {
		t.Errorf("AppendContacts = %s", got)
	}
	empty := &Opportunity{ID: "006B"}
	empty.Compact()
	if empty.RoleCount() != 0 || len(empty.AppendContacts(nil)) != 0 {
		t.Error("an opportunity without roles has some once compact")
	}
}
