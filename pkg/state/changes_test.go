package state

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
)

// Each changes entry lists, in "acts", the people whose activity log its
// call wrote and the oldest time it wrote for each (the in-memory view
// re-reads exactly those logs from then on), including a contact no group
// names any more.
func TestChangesEntriesListPeopleWithActivity(t *testing.T) {
	tests := []struct {
		name string
		evs  func() []*cdc.Event
		want string
	}{
		{"an opportunity without roles", func() []*cdc.Event {
			return []*cdc.Event{oppEv(cdc.Create, "006A", "Amount", 10)}
		}, ""},
		{"a role moved to another contact", func() []*cdc.Event {
			return []*cdc.Event{
				oppEv(cdc.Create, "006A", "Amount", 10),
				ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A"),
				ocrEv(cdc.Update, "00KA", "ContactId", "003B"),
			}
		}, "003A 003B"},
		{"an update seen by two holders", func() []*cdc.Event {
			return []*cdc.Event{
				oppEv(cdc.Create, "006A", "Amount", 10),
				ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A"),
				ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003C"),
				oppEv(cdc.Update, "006A", "Amount", 20),
			}
		}, "003A 003C"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.apply(tt.evs()...)
			var people []string
			for _, e := range f.entries(replica.StreamChanges) {
				acts, ok := e["acts"]
				if !ok {
					t.Fatalf("changes entry %v has no acts", e)
				}
				for _, item := range strings.Fields(acts) {
					p, at, ok := strings.Cut(item, "@")
					if n, err := strconv.ParseInt(at, 10, 64); !ok || err != nil || n < 1_764_000_000_000 {
						t.Errorf("acts item %q: want <person>@<oldest time written>", item)
					}
					if !slices.Contains(people, p) {
						people = append(people, p)
					}
				}
			}
			sort.Strings(people)
			if got := strings.Join(people, " "); got != tt.want {
				t.Errorf("acts = %q, want %q", got, tt.want)
			}
		})
	}
}
