package api

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/filters"
)

// untouchable is a Queries that fails the test when a record is read.
type untouchable struct {
	fakeRecords
	t *testing.T
}

func (u untouchable) Opportunity(_ context.Context, id string) (*filters.Opportunity, bool, error) {
	u.t.Errorf("Opportunity read with id %.40q", id)
	return nil, false, nil
}

func (u untouchable) PersonOpportunities(_ context.Context, id string) ([]*filters.Opportunity, bool, error) {
	u.t.Errorf("PersonOpportunities read with id %.40q", id)
	return nil, false, nil
}

// badIDs are ids no Salesforce record has, among them those that reached
// Redis keys before ids were checked.
var badIDs = map[string]string{
	"roles suffix":  "0068c000000iyJbAAI:roles",
	"hash tag":      "006{other}000000AA",
	"closing brace": "0068c000000iyJ}AAI",
	"glob":          "0068c000000iyJ*AAI",
	"crlf":          "0068c000000iyJbAAI\r\n",
	"dot dot slash": "../../etc/passwd",
	"long":          strings.Repeat("0", 100_000),
	"not utf-8":     "0068c000000iyJ\xff\xfeAI",
	"short":         "006A",
	"empty-ish":     " ",
}

// An id that is not a Salesforce id is answered 404 ("never seen", as
// CONTRACT §5 says) before anything is read.
func TestInvalidIDsAreNotFoundWithoutReading(t *testing.T) {
	s, _ := newServer(t, untouchable{t: t}, Config{}, nil)
	for name, id := range badIDs {
		for _, route := range []struct{ path, want string }{
			{"/v1/opportunities/%s", "opportunity not found"},
			{"/v1/people/%s/opportunities", "person not found"},
			{"/people/%s", "person not found"},
		} {
			t.Run(name+route.path, func(t *testing.T) {
				path := strings.Replace(route.path, "%s", url.PathEscape(id), 1)
				r := do(t, s.Handler(), "GET", path, "")
				if r.code != 404 || errorText(t, r) != route.want {
					t.Fatalf("GET %.60s = %d %.200s, want 404 %q", path, r.code, r.body, route.want)
				}
			})
		}
	}
}
