package filters

import (
	"strings"
	"testing"
	"time"
)

func TestParseLogic(t *testing.T) {
	tests := []struct {
		name, expr string
		n          int
		want       string // the parenthesised form, or the error
	}{
		{"one", "1", 1, "1"},
		{"and binds tighter than or", "1 or 2 and 3", 3, "(1 or (2 and 3))"},
		{"not binds tighter than and", "not 1 and 2", 2, "(not 1 and 2)"},
		{"parentheses", "1 and (2 or not 3)", 3, "(1 and (2 or not 3))"},
		{"left to right", "1 and 2 and 3", 3, "((1 and 2) and 3)"},
		{"double not", "not not 1", 1, "not not 1"},
		{"case and spacing", "(1)AND(2)  Or NOT 3", 3, "((1 and 2) or not 3)"},
		{"repeated reference", "1 or (1 and 2)", 2, "(1 or (1 and 2))"},
		{"empty", "  ", 1, "logic: empty expression"},
		{"unbalanced open", "1 and (2 or 3", 3, `logic: unbalanced parentheses: "(" at position 7 is not closed`},
		{"unbalanced close", "1 and 2)", 2, `logic: unbalanced parentheses: ")" at position 8 closes nothing`},
		{"unreferenced", "1 and 3", 3, "logic: filter 2 is not referenced"},
		{"no such filter", "1 and 4", 3, `logic: filter 4 at position 7 does not exist (3 filters)`},
		{"zero", "0", 1, `logic: filter 0 at position 1 does not exist (1 filters)`},
		{"bad character", "1 & 2", 2, `logic: unexpected character '&' at position 3`},
		{"unknown word", "1 xor 2", 2, `logic: unknown word "xor" at position 3 (want a filter number, and, or, not, parentheses)`},
		{"dangling and", "1 and", 1, `logic: unexpected end at position 6 (want a filter number, not or "(")`},
		{"two numbers", "1 2", 2, `logic: unexpected "2" at position 3`},
		{"operator first", "and 1", 1, `logic: unexpected "and" at position 1 (want a filter number, not or "(")`},
		{"empty parentheses", "()", 1, `logic: unexpected ")" at position 2 (want a filter number, not or "(")`},
		{"missing close before number", "(1 2)", 2, `logic: unexpected "2" at position 4 (want ")")`},
		{"no filters", "1", 0, `logic: filter 1 at position 1 does not exist (0 filters)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLogic(tt.expr, tt.n)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = l.String()
			}
			if got != tt.want {
				t.Fatalf("ParseLogic(%q, %d) = %s, want %s", tt.expr, tt.n, got, tt.want)
			}
		})
	}
}

func TestParseLogicDeepNesting(t *testing.T) {
	expr := strings.Repeat("(", 2000) + "1" + strings.Repeat(")", 2000)
	if _, err := ParseLogic(expr, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseLogic(strings.Repeat("(", 5000), 1); err == nil || !strings.HasPrefix(err.Error(), "logic: 5000 characters") {
		t.Fatalf("err = %v", err)
	}
}

func TestLogicEval(t *testing.T) {
	l, err := ParseLogic("1 and (2 or not 3)", 3)
	if err != nil {
		t.Fatal(err)
	}
	for mask := 0; mask < 8; mask++ {
		f := func(i int) bool { return mask&(1<<i) != 0 }
		want := f(0) && (f(1) || !f(2))
		if got := l.Eval(f); got != want {
			t.Errorf("mask %03b: got %v, want %v", mask, got, want)
		}
	}
}

func TestQueryLogic(t *testing.T) {
	cat := testCatalog()
	// testPerson: an open 50,000 EMEA opportunity, a closed won APAC one; 2
	// live opportunities (plus one pending).
	emea := `{"filter":"has_opportunity","constraints":[{"field":"Region__c","op":"is","value":"EMEA"}]}`
	na := `{"filter":"has_opportunity","constraints":[{"field":"Region__c","op":"is","value":"NA"}]}`
	three := `{"filter":"number_of_opportunities","op":"gte","value":4}`
	tests := []struct {
		name, query string
		want        bool
	}{
		{"and or not", `{"filters":[` + emea + `,` + na + `,` + three + `],"logic":"1 and (2 or not 3)"}`, true},
		{"and fails", `{"filters":[` + emea + `,` + na + `,` + three + `],"logic":"1 and (2 or 3)"}`, false},
		{"or", `{"filters":[` + na + `,` + emea + `],"logic":"1 or 2"}`, true},
		{"not", `{"filters":[` + emea + `],"logic":"not 1"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse([]byte(tt.query), cat, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Match(testPerson()); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestQueryLogicErrors(t *testing.T) {
	cat := testCatalog()
	f := `{"filter":"has_opportunity"}`
	tests := []struct{ name, query, want string }{
		{"with match", `{"filters":[` + f + `],"match":"any","logic":"1"}`, `logic: cannot be combined with "match"`},
		{"not a string", `{"filters":[` + f + `],"logic":1}`, `logic: 1 is not a string`},
		{"unreferenced", `{"filters":[` + f + `,` + f + `],"logic":"2"}`, `logic: filter 1 is not referenced`},
		{"bad token", `{"filters":[` + f + `],"logic":"1 and"}`, `logic: unexpected end at position 6 (want a filter number, not or "(")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.query), cat, now)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestAggregateConstraints(t *testing.T) {
	cat := testCatalog()
	tests := []struct {
		name, filter string
		want         bool
	}{
		// Live: A (open, 50,000, ExpectedRevenue 40,000), B (won, 1,000);
		// C deleted, D pending.
		{"won revenue", `{"filter":"total_opportunity_amount","op":"is","value":1000,"constraints":[{"field":"IsClosed","op":"is","value":true}]}`, true},
		{"open pipeline", `{"filter":"total_opportunity_amount","op":"is","value":50000,"constraints":[{"field":"IsClosed","op":"is","value":false}]}`, true},
		{"open expected", `{"filter":"total_expected_revenue","op":"is","value":40000,"constraints":[{"field":"IsClosed","op":"is","value":false}]}`, true},
		{"count skips pending", `{"filter":"number_of_opportunities","op":"is","value":2,"constraints":[{"field":"Amount","op":"is_not","value":7}]}`, true},
		{"count without constraints counts pending", `{"filter":"number_of_opportunities","op":"is","value":3}`, true},
		{"role on the same role", `{"filter":"number_of_opportunities","op":"is","value":1,"constraints":[{"field":"Role","op":"is","value":"Evaluator"},{"field":"IsPrimary","op":"is","value":false}]}`, true},
		{"role never together", `{"filter":"number_of_opportunities","op":"is","value":0,"constraints":[{"field":"Role","op":"is","value":"Evaluator"},{"field":"IsPrimary","op":"is","value":true}]}`, true},
		{"not", `{"filter":"number_of_opportunities","not":true,"op":"gte","value":1,"constraints":[{"field":"Region__c","op":"is","value":"NA"}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse([]byte(`{"filters":[`+tt.filter+`]}`), cat, now)
			if err != nil {
				t.Fatal(err)
			}
			p := testPerson()
			if got := q.Match(p); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
			// Precomputed totals (the view's) must not bypass the constraints.
			tot := TotalsOf(p.ID, p.Opportunities)
			p.Totals = &tot
			if got := q.Match(p); got != tt.want {
				t.Fatalf("Match with Totals = %v, want %v", got, tt.want)
			}
		})
	}
	_, err := Parse([]byte(`{"filters":[{"filter":"number_of_opportunities","op":"gt","value":1,"constraints":[{"field":"new_value","op":"is","value":1}]}]}`), cat, now)
	if err == nil || err.Error() != `filters[0].constraints[0]: "new_value" applies only to opportunity_updated` {
		t.Fatalf("err = %v", err)
	}
}

func TestQueryAt(t *testing.T) {
	cat := testCatalog()
	// Added to 006B 2 and 1 days before now; LastStageChangeDate of 006A is
	// 26 hours before now.
	q, err := Parse([]byte(`{"filters":[
		{"filter":"was_added_to_opportunity","within":"36h","min_times":2},
		{"filter":"has_opportunity","constraints":[{"field":"LastStageChangeDate","op":"in_past","value":"27h"}]}]}`), cat, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		want [2]bool
	}{
		{"parse time", now, [2]bool{false, true}},
		{"a day earlier: both adds in the window", now.Add(-24 * time.Hour), [2]bool{true, true}},
		{"after both adds", now.Add(-12 * time.Hour), [2]bool{true, true}},
		{"window ends at the instant", now.Add(-30 * time.Hour), [2]bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := q.At(tt.at)
			for i, f := range a.Filters {
				if got := f.Match(testPerson()); got != tt.want[i] {
					t.Errorf("filter %d at %s: %v, want %v", i+1, tt.at, got, tt.want[i])
				}
			}
		})
	}
	if q.Filters[0].Until != maxMillis {
		t.Fatal("At changed the parsed query")
	}
}
