package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/filters"
)

// smallOrg is a small org fed through the real pipeline, with its view
// loaded.
func smallOrg(t *testing.T) *org {
	o := newOrg(t, synth.GenConfig{Seed: 99, Opportunities: 60, Contacts: 150, DeleteRate: 0.04})
	o.feed(900)
	o.runView()
	return o
}

// fixedIDs picks, deterministically from the truth, an opportunity with
// several live roles, a deleted opportunity and the person with the most
// opportunities.
func fixedIDs(t *testing.T, tr synth.Truth) (multi, deleted, person string) {
	live := map[string]int{}
	perPerson := map[string]int{}
	for _, r := range tr.ContactRoles {
		if r.Deleted {
			continue
		}
		if o, ok := tr.Opportunity(r.OpportunityID); ok && !o.Deleted {
			live[o.ID]++
			perPerson[r.ContactID]++
		}
	}
	for _, o := range tr.Opportunities {
		if multi == "" && live[o.ID] >= 2 {
			multi = o.ID
		}
		if deleted == "" && o.Deleted {
			deleted = o.ID
		}
	}
	var people []string
	for p := range perPerson {
		people = append(people, p)
	}
	sort.Slice(people, func(i, j int) bool {
		if perPerson[people[i]] != perPerson[people[j]] {
			return perPerson[people[i]] > perPerson[people[j]]
		}
		return people[i] < people[j]
	})
	if multi == "" || deleted == "" || len(people) == 0 {
		t.Fatalf("the generated org lacks fixtures: multi=%q deleted=%q people=%d", multi, deleted, len(people))
	}
	return multi, deleted, people[0]
}

func TestRecordsGolden(t *testing.T) {
	o := smallOrg(t)
	s, _ := newServer(t, o.view, Config{}, nil)
	multi, deleted, person := fixedIDs(t, o.gen.Truth())
	for _, tc := range []struct{ name, path string }{
		{"opportunity_multi.json", "/v1/opportunities/" + multi},
		{"opportunity_deleted.json", "/v1/opportunities/" + deleted},
		{"person.json", "/v1/people/" + person + "/opportunities"},
		{"constraints.json", "/v1/constraints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, s.Handler(), "GET", tc.path, "")
			if r.code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tc.path, r.code, r.body)
			}
			if strings.Contains(string(r.body), "Description") || strings.Contains(string(r.body), "Inbound interest") {
				t.Error("the hidden field Description reached the API")
			}
			testenv.Golden(t, tc.name, r.body)
		})
	}
	t.Run("deleted flag", func(t *testing.T) {
		var got struct {
			Deleted bool `json:"deleted"`
		}
		if err := json.Unmarshal(do(t, s.Handler(), "GET", "/v1/opportunities/"+deleted, "").body, &got); err != nil || !got.Deleted {
			t.Errorf("deleted opportunity: %+v, %v", got, err)
		}
	})
	t.Run("person totals match truth", func(t *testing.T) {
		ix := indexTruth(o.gen.Truth(), o.clock)
		c, a, e := ix.people[person].totals()
		var got struct {
			Count         int              `json:"number_of_opportunities"`
			Amount        float64          `json:"total_opportunity_amount"`
			Expected      float64          `json:"total_expected_revenue"`
			Currency      string           `json:"currency"`
			Opportunities []map[string]any `json:"opportunities"`
		}
		if err := json.Unmarshal(do(t, s.Handler(), "GET", "/v1/people/"+person+"/opportunities", "").body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Count != c || got.Amount != a || !near(got.Expected, e) || len(got.Opportunities) != c || got.Currency != "USD" {
			t.Errorf("person = %d %v %v (%d listed), truth %d %v %v", got.Count, got.Amount, got.Expected, len(got.Opportunities), c, a, e)
		}
	})
}

func near(a, b float64) bool { d := a - b; return d < 1e-6 && d > -1e-6 }

func TestErrors(t *testing.T) {
	o := smallOrg(t)
	s, _ := newServer(t, o.view, Config{MaxBodyBytes: 4096}, nil)
	h := s.Handler()
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"unknown opportunity", "GET", "/v1/opportunities/006000000000000AAA", "", 404, "opportunity not found"},
		{"unknown person", "GET", "/v1/people/003000000000000AAA/opportunities", "", 404, "person not found"},
		{"unknown person page", "GET", "/people/003000000000000AAA", "", 404, "person not found"},
		{"unknown route", "GET", "/v2/nothing", "", 404, "no such route"},
		{"bad json", "POST", "/v1/people/query", `{"filters":`, 400, "body: not a JSON object"},
		{"unknown filter", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opp"}]}`, 400, `filters[0]: unknown filter "has_opp"`},
		{"unknown field", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opportunity"},{"filter":"has_opportunity","constraints":[{"field":"Amout","op":"gt","value":1}]}]}`, 400, `filters[1].constraints[0]: unknown field "Amout"`},
		{"hidden field", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Description","op":"contains","value":"secret"}]}]}`, 400, `filters[0].constraints[0]: unknown field "Description"`},
		{"bad operator", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opportunity"},{"filter":"has_opportunity"},{"filter":"number_of_opportunities","op":"gtx","value":1}]}`, 400, `filters[2].op: "gtx" is not an operator`},
		{"bad value", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gt","value":1},{"field":"Amount","op":"lt","value":"abc"}]}]}`, 400, `filters[0].constraints[1].value: "abc" is not a number for Amount (Currency)`},
		{"custom field type", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Seats__c","op":"gt","value":"many"}]}]}`, 400, `filters[0].constraints[0].value: "many" is not a number for Seats__c (Integer)`},
		{"bad window", "POST", "/v1/people/query", `{"filters":[{"filter":"was_added_to_opportunity","within":"a while"}]}`, 400, `filters[0].within: "a while" is not a positive duration (e.g. "720h")`},
		{"bad cursor", "POST", "/v1/people/query", `{"cursor":"nope!"}`, 400, "cursor: not a cursor issued by this API"},
		{"limit", "POST", "/v1/people/query", `{"limit":20000}`, 400, "limit: 20000 is not an integer from 1 to 10000"},
		{"body cap", "POST", "/v1/people/query", `{"filters":[` + strings.Repeat(`{"filter":"has_opportunity"},`, 200) + `{"filter":"has_opportunity"}]}`, 413, "body: larger than the limit"},
		{"wrong method", "DELETE", "/v1/opportunities/x", "", 405, "method not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, h, tt.method, tt.path, tt.body)
			if r.code != tt.code {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, r.code, r.body, tt.code)
			}
			if tt.want != "" {
				if got := errorText(t, r); got != tt.want {
					t.Errorf("error %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	o := smallOrg(t)
	s, _ := newServer(t, o.view, Config{AuthToken: "s3cret"}, map[string]func(context.Context) error{"view": o.view.Ready})
	_, _, person := fixedIDs(t, o.gen.Truth())
	h := s.Handler()
	for _, tc := range []struct {
		name, method, path, body, auth string
		code                           int
	}{
		{"no token", "GET", "/v1/constraints", "", "", 401},
		{"wrong token", "GET", "/v1/constraints", "", "Bearer s3creT", 401},
		{"wrong scheme", "GET", "/v1/constraints", "", "Basic s3cret", 401},
		{"query no token", "POST", "/v1/people/query", `{}`, "", 401},
		{"page no token", "GET", "/people/" + person, "", "", 401},
		{"person no token", "GET", "/v1/people/" + person + "/opportunities", "", "", 401},
		{"good token", "GET", "/v1/constraints", "", "Bearer s3cret", 200},
		{"good token query", "POST", "/v1/people/query", `{}`, "bearer s3cret", 200},
		{"good token page", "GET", "/people/" + person, "", "Bearer s3cret", 200},
		{"healthz open", "GET", "/healthz", "", "", 200},
		{"readyz open", "GET", "/readyz", "", "", 200},
		{"metrics open", "GET", "/metrics", "", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := do(t, h, tc.method, tc.path, tc.body, hdr...)
			if r.code != tc.code {
				t.Fatalf("%d %s, want %d", r.code, r.body, tc.code)
			}
			if tc.code == 401 && errorText(t, r) != "missing or invalid bearer token" {
				t.Errorf("401 body %s", r.body)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	o := smallOrg(t)
	kafkaErr := errors.New("no broker reachable")
	var kafkaDown bool
	s, reg := newServer(t, o.view, Config{}, map[string]func(context.Context) error{
		"redis": func(ctx context.Context) error { return o.store.Ping(ctx) },
		"view":  o.view.Ready,
		"kafka": func(context.Context) error {
			if kafkaDown {
				return kafkaErr
			}
			return nil
		},
	})
	if r := do(t, s.Handler(), "GET", "/readyz", ""); r.code != 200 {
		t.Fatalf("readyz = %d %s", r.code, r.body)
	}
	kafkaDown = true
	r := do(t, s.Handler(), "GET", "/readyz", "")
	if r.code != 503 || errorText(t, r) != "not ready: kafka" || !strings.Contains(string(r.body), "no broker reachable") {
		t.Fatalf("readyz = %d %s", r.code, r.body)
	}
	if r := do(t, s.Handler(), "GET", "/healthz", ""); r.code != 200 {
		t.Errorf("healthz = %d", r.code)
	}
	if got := testutil.ToFloat64(s.m.requests.WithLabelValues("GET /readyz", "503")); got != 1 {
		t.Errorf("requests{GET /readyz,503} = %v", got)
	}
	do(t, s.Handler(), "GET", "/v1/opportunities/006nothere", "")
	if got := testutil.ToFloat64(s.m.requests.WithLabelValues("GET /v1/opportunities/{id}", "404")); got != 1 {
		t.Errorf("requests{GET /v1/opportunities/{id},404} = %v", got)
	}
	body := string(do(t, s.Handler(), "GET", "/metrics", "").body)
	if !strings.Contains(body, `oppsync_http_request_duration_seconds_count{route="GET /v1/opportunities/{id}"} 1`) || strings.Contains(body, "006nothere") {
		t.Errorf("metrics do not label by route pattern:\n%s", body)
	}
	_ = reg
}

// slowQueries blocks queries until ctx ends.
type slowQueries struct{ Queries }

func (slowQueries) Query(ctx context.Context, _ *filters.Query) ([]string, string, error) {
	<-ctx.Done()
	return nil, "", ctx.Err()
}

func TestQueryTimeoutAndReadiness(t *testing.T) {
	o := smallOrg(t)
	s, _ := newServer(t, slowQueries{o.view}, Config{QueryTimeout: 50 * time.Millisecond}, nil)
	start := time.Now()
	r := do(t, s.Handler(), "POST", "/v1/people/query", `{}`)
	if r.code != http.StatusGatewayTimeout || errorText(t, r) != "the request timed out" {
		t.Fatalf("slow query = %d %s", r.code, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timed out after %v", d)
	}

	// A view that never loaded answers 503.
	fresh := newOrg(t, synth.GenConfig{Seed: 1, Opportunities: 5})
	s2, _ := newServer(t, fresh.view, Config{}, map[string]func(context.Context) error{"view": fresh.view.Ready})
	if r := do(t, s2.Handler(), "POST", "/v1/people/query", `{}`); r.code != 503 {
		t.Errorf("query before load = %d %s", r.code, r.body)
	}
	if r := do(t, s2.Handler(), "GET", "/readyz", ""); r.code != 503 || errorText(t, r) != "not ready: view" {
		t.Errorf("readyz before load = %d %s", r.code, r.body)
	}
}

func TestRunServesAndStops(t *testing.T) {
	o := smallOrg(t)
	s, _ := newServer(t, o.view, Config{Addr: "127.0.0.1:0"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestPagination(t *testing.T) {
	o := smallOrg(t)
	s, _ := newServer(t, o.view, Config{}, nil)
	all := queryAll(t, s, `{"filters":[]}`, 10000)
	paged := queryAll(t, s, `{"filters":[]}`, 7)
	if len(all) < 20 || strings.Join(all, ",") != strings.Join(paged, ",") {
		t.Fatalf("paging changed the answer: %d vs %d people", len(all), len(paged))
	}
	ix := indexTruth(o.gen.Truth(), o.clock)
	if len(all) != len(ix.people) {
		t.Errorf("universe has %d people, the truth %d", len(all), len(ix.people))
	}
}
