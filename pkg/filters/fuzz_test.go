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
