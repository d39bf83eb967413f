package campaigns

import (
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
)

func testOptions() Options {
	return Options{Catalog: filters.NewCatalog([]filters.Field{
		{Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency"},
		{Entity: "Opportunity", Name: "IsClosed", Kind: cdc.KindBool, SalesforceType: "Boolean"},
		{Entity: "Opportunity", Name: "IsWon", Kind: cdc.KindBool, SalesforceType: "Boolean"},
		{Entity: "Opportunity", Name: "StageName", Kind: cdc.KindString, SalesforceType: "Picklist"},
		{Entity: "Opportunity", Name: "LastModifiedDate", Kind: cdc.KindDateTime, SalesforceType: "DateTime"},
		{Entity: "Opportunity", Name: "Region__c", Kind: cdc.KindString, SalesforceType: "Picklist"},
	}), Ignored: []string{"LastModifiedDate"}}
}

// contractExample is the definition of CONTRACT §8.
const contractExample = `{"name": "Decision makers on big deals",
 "active": true,
 "triggers": [
   {"trigger": "added_to_opportunity",
    "constraints": [{"field": "Role", "op": "is", "value": "Decision Maker"},
                    {"field": "Amount", "op": "gte", "value": 50000},
                    {"field": "IsClosed", "op": "is", "value": false}]},
   {"trigger": "opportunity_updated", "field": "StageName",
    "constraints": [{"field": "new_value", "op": "is", "value": "Closed Won"}]}],
 "filters": [{"filter": "number_of_opportunities", "op": "gte", "value": 2}],
 "match": "all",
 "qualification": "once"}`

func TestParseContractExample(t *testing.T) {
	d, c, err := Parse("big-deals", []byte(contractExample), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Triggers) != 2 || c.Filters == nil || len(c.Filters.Filters) != 1 || c.Qualification.Rule != Once || !c.Active {
		t.Fatalf("compiled %+v", c)
	}
	want := `{"campaign_id":"big-deals","name":"Decision makers on big deals","active":true,` +
		`"triggers":[{"constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":50000},{"field":"IsClosed","op":"is","value":false}],"trigger":"added_to_opportunity"},` +
		`{"constraints":[{"field":"new_value","op":"is","value":"Closed Won"}],"field":"StageName","trigger":"opportunity_updated"}],` +
		`"filters":[{"filter":"number_of_opportunities","op":"gte","value":2}],"match":"all","qualification":"once"}`
	if got := d.Body(); got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}

func TestParseDefaultsAndCanonicalForm(t *testing.T) {
	a, c, err := Parse("x", []byte(`{"name":"n","triggers":[{"trigger":"removed_from_opportunity"}]}`), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if c.Filters != nil || c.Qualification.Rule != EveryTime || !c.Active {
		t.Fatalf("compiled %+v", c)
	}
	// The same definition spelled differently (defaults explicit, other key
	// order and spacing) renders to the same body.
	b, _, err := Parse("x", []byte(`{ "qualification":"every_time","match":"all", "active":true, "filters":[],
		"triggers":[{ "trigger" : "removed_from_opportunity"}], "name":"n", "version": 7, "updated_at": "x"}`), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if a.Body() != b.Body() {
		t.Fatalf("bodies differ:\n%s\n%s", a.Body(), b.Body())
	}
	if a.Body() != `{"campaign_id":"x","name":"n","active":true,"triggers":[{"trigger":"removed_from_opportunity"}],"filters":[],"match":"all","qualification":"every_time"}` {
		t.Fatalf("body %s", a.Body())
	}
	e, c2, err := Parse("x", []byte(`{"name":"n","triggers":[{"trigger":"removed_from_opportunity"}],
		"filters":[{"filter":"has_opportunity"},{"filter":"number_of_opportunities","op":"gt","value":1}],"logic":"1 or not 2","qualification":{"every":"720h"}}`), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if c2.Qualification != (Qualification{Rule: Every, Window: 720 * time.Hour}) || c2.Filters.Logic == nil {
		t.Fatalf("compiled %+v", c2)
	}
	if !strings.Contains(e.Body(), `"logic":"1 or not 2","qualification":{"every":"720h"}`) || strings.Contains(e.Body(), `"match"`) {
		t.Fatalf("body %s", e.Body())
	}
}

func TestParseErrors(t *testing.T) {
	trig := `"triggers":[{"trigger":"added_to_opportunity"}]`
	tests := []struct{ name, id, body, want string }{
		{"bad id", "a b", `{}`, `campaign_id: "a b" is not [A-Za-z0-9_-]{1,64}`},
		{"long id", strings.Repeat("a", 65), `{}`, `campaign_id: "` + strings.Repeat("a", 64) + `…" is not [A-Za-z0-9_-]{1,64}`},
		{"not an object", "x", `[]`, `body: not a JSON object`},
		{"unknown key", "x", `{"name":"n",` + trig + `,"qualifcation":"once"}`, `body: unknown key "qualifcation"`},
		{"id mismatch", "x", `{"campaign_id":"y","name":"n",` + trig + `}`, `campaign_id: "y" does not match the campaign id "x"`},
		{"no name", "x", `{` + trig + `}`, `name: missing`},
		{"empty name", "x", `{"name":" ",` + trig + `}`, `name: " " is not a non-empty string of at most 200 bytes`},
		{"active type", "x", `{"name":"n","active":"yes",` + trig + `}`, `active: "yes" is not a boolean`},
		{"no triggers", "x", `{"name":"n"}`, `triggers: 0 triggers, want 1 to 10`},
		{"too many triggers", "x", `{"name":"n","triggers":[` + strings.Repeat(`{"trigger":"added_to_opportunity"},`, 10) + `{"trigger":"added_to_opportunity"}]}`, `triggers: 11 triggers, want 1 to 10`},
		{"contract culprit", "x", `{"name":"n","triggers":[{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"gt","value":1},{"field":"Amout","op":"gt","value":1}]}]}`, `triggers[0].constraints[1]: unknown field "Amout"`},
		{"ignored field", "x", `{"name":"n","triggers":[{"trigger":"opportunity_updated","field":"LastModifiedDate"}]}`, `triggers[0].field: "LastModifiedDate" is in triggers.ignore_fields: it never gets an entry`},
		{"filter culprit", "x", `{"name":"n",` + trig + `,"filters":[{"filter":"has_opportunity","constraints":[{"field":"Stage","op":"is","value":1}]}]}`, `filters[0].constraints[0]: unknown field "Stage"`},
		{"match and logic", "x", `{"name":"n",` + trig + `,"filters":[{"filter":"has_opportunity"}],"match":"any","logic":"1"}`, `logic: cannot be combined with "match"`},
		{"logic position", "x", `{"name":"n",` + trig + `,"filters":[{"filter":"has_opportunity"}],"logic":"1 and )"}`, `logic: unexpected ")" at position 7 (want a filter number, not or "(")`},
		{"qualification word", "x", `{"name":"n",` + trig + `,"qualification":"twice"}`, `qualification: "twice" is not "every_time", "once" or {"every": duration}`},
		{"qualification every", "x", `{"name":"n",` + trig + `,"qualification":{"every":"a month"}}`, `qualification: every: "a month" is not a positive duration (e.g. "720h")`},
		{"qualification object", "x", `{"name":"n",` + trig + `,"qualification":{"each":"1h"}}`, `qualification: {"each":"1h"} is not "every_time", "once" or {"every": duration}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(tt.id, []byte(tt.body), testOptions())
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
			if iv, ok := err.(interface{ Invalid() bool }); !ok || !iv.Invalid() {
				t.Fatalf("%T is not marked invalid", err)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	yamlList := `
- campaign_id: big-deals
  name: Decision makers on big deals
  triggers:
    - trigger: added_to_opportunity
      constraints:
        - {field: Role, op: is, value: Decision Maker}
        - {field: Amount, op: gte, value: 50000}
  qualification: once
- campaign_id: won
  name: Won
  triggers:
    - trigger: opportunity_updated
      field: StageName
      constraints: [{field: new_value, op: is, value: Closed Won}]
  filters:
    - filter: total_opportunity_amount
      op: gt
      value: 10000
      constraints: [{field: IsWon, op: is, value: true}]
`
	defs, err := ParseFile([]byte(yamlList), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != 2 || defs[0].CampaignID != "big-deals" || defs[1].CampaignID != "won" {
		t.Fatalf("defs %+v", defs)
	}
	// The same definition as JSON renders to the same body.
	one, err := ParseFile([]byte(`{"campaign_id":"big-deals","name":"Decision makers on big deals","qualification":"once",
		"triggers":[{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":50000}]}]}`), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if one[0].Body() != defs[0].Body() {
		t.Fatalf("YAML and JSON differ:\n%s\n%s", defs[0].Body(), one[0].Body())
	}
	errs := []struct{ name, file, want string }{
		{"no id", `{"name":"n"}`, `[0].campaign_id: (missing) is not [A-Za-z0-9_-]{1,64}`},
		{"twice", `[{"campaign_id":"a","name":"n","triggers":[{"trigger":"added_to_opportunity"}]},{"campaign_id":"a"}]`, `[1].campaign_id: "a" appears twice`},
		{"culprit", "- campaign_id: a\n  name: n\n  triggers: [{trigger: added_to_opportunity, constraints: [{field: Amout, op: gt, value: 1}]}]\n", `[0] (a): triggers[0].constraints[0]: unknown field "Amout"`},
		{"unknown key", "- campaign_id: a\n  nme: n\n", `[0] (a): unknown key "nme"`},
		{"scalar", `42`, `file: want a definition or a list of definitions`},
		{"bad yaml", "a: [", `file: not YAML or JSON: yaml: line 1: did not find expected node content`},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tt.file), testOptions())
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
}

// FuzzParse feeds arbitrary bodies to Parse: no input may panic, every
// error is an *InvalidError, and what parses renders to a body that parses
// to the same body (applying it again changes nothing).
func FuzzParse(f *testing.F) {
	f.Add([]byte(contractExample))
	f.Add([]byte(`{"name":"x","triggers":[{"trigger":"removed_from_opportunity"}],"filters":[{"filter":"has_opportunity"}],"logic":"not 1","qualification":{"every":"1h"}}`))
	opts := testOptions()
	f.Fuzz(func(t *testing.T, body []byte) {
		d, _, err := Parse("fuzz", body, opts)
		if err != nil {
			if _, ok := err.(*InvalidError); !ok {
				t.Fatalf("%T %v", err, err)
			}
			return
		}
		again, _, err := Parse("fuzz", []byte(d.Body()), opts)
		if err != nil || again.Body() != d.Body() {
			t.Fatalf("body %s does not parse to itself: %v\n%s", d.Body(), err, again.Body())
		}
	})
}
