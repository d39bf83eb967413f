package filters

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bodies to Parse and evaluates what parses: no
// input may panic, and every error must name where it is.
// Seed corpus: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"between","value":[1,2]}]}]}`))
	f.Add([]byte(`{"match":"any","limit":5,"filters":[{"filter":"opportunity_updated","field":"StageName","within":"720h","constraints":[{"field":"new_value","op":"is","value":["a","b"]}]}]}`))
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := Parse(body, cat, now)
		if err != nil {
			if !strings.Contains(err.Error(), ": ") {
				t.Fatalf("error without a path: %v", err)
			}
			return
		}
		q.Match(testPerson())
		q.Match(&Person{ID: "003Z"})
	})
}

// FuzzParseLogic feeds arbitrary expressions to ParseLogic: no input may
// panic, every error starts with "logic", and what parses references every
// filter and evaluates.
func FuzzParseLogic(f *testing.F) {
	for _, s := range []string{"1 and (2 or not 3)", "((1))", "not not 2 or 1 and 3", "1 and", "(1 or 2", "4", ")("} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, expr string, n int) {
		n = max(0, min(n, 20))
		l, err := ParseLogic(expr, n)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "logic") {
				t.Fatalf("error not starting with logic: %v", err)
			}
			return
		}
		seen := map[int]bool{}
		l.Eval(func(i int) bool {
			if i < 0 || i >= n {
				t.Fatalf("filter %d of %d evaluated", i, n)
			}
			seen[i] = true
			return i%2 == 0
		})
		if _, err := ParseLogic(l.String(), n); err != nil {
			t.Fatalf("%q parsed, its rendering %q does not: %v", expr, l.String(), err)
		}
	})
}

// FuzzParseTrigger feeds arbitrary campaign triggers to ParseTrigger and
// matches what parses against an entry: no input may panic.
func FuzzParseTrigger(f *testing.F) {
	f.Add([]byte(`{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":1}]}`))
	f.Add([]byte(`{"trigger":"opportunity_updated","field":"Amount","constraints":[{"field":"new_value","op":"between","value":[1,2]}]}`))
	cat := testCatalog()
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := ParseTrigger(body, cat, TriggerOptions{})
		if err != nil {
			return
		}
		tr.Match(&Entry{Kind: tr.Kind, Field: tr.Field, Role: &Role{Role: "x"}, Roles: []Role{{Role: "y"}}})
		tr.Match(&Entry{Kind: tr.Kind, Opportunity: testPerson().Opportunities[0]})
	})
}
