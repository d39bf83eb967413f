package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
)

// campaignCatalog is fakeRecords with a catalog that knows Amount.
type campaignCatalog struct{ fakeRecords }

func (campaignCatalog) Catalog(context.Context) (*filters.Catalog, error) {
	return filters.NewCatalog([]filters.Field{
		{Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency"},
		{Entity: "Opportunity", Name: "IsClosed", Kind: cdc.KindBool, SalesforceType: "Boolean"},
	}), nil
}

func campaignServer(t *testing.T, max int, token string) (http.Handler, *Server) {
	t.Helper()
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "apicamp")
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	store, err := campaigns.New(campaigns.Config{Org: org, Max: max,
		Now: func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }}, rdb, campaignCatalog{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(Config{AuthToken: token}, Deps{Queries: campaignCatalog{}, Gatherer: reg, Registerer: reg, Campaigns: store}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler(), s
}

const bigDeals = `{"name": "Decision makers on big deals",
 "triggers": [{"trigger": "added_to_opportunity",
   "constraints": [{"field": "Role", "op": "is", "value": "Decision Maker"},
                   {"field": "Amount", "op": "gte", "value": 50000}]}],
 "filters": [{"filter": "number_of_opportunities", "op": "gte", "value": 2}],
 "qualification": "once"}`

func TestCampaignRoutes(t *testing.T) {
	h, srv := campaignServer(t, 2, "")
	steps := []struct {
		name, method, path, body string
		code                     int
		want                     string // exact error, or a substring of the body
	}{
		{"list empty", "GET", "/v1/campaigns", "", 200, `"campaigns": []`},
		{"get unknown", "GET", "/v1/campaigns/big-deals", "", 404, `campaign not found`},
		{"get bad id", "GET", "/v1/campaigns/a.b", "", 404, `campaign not found`},
		{"put", "PUT", "/v1/campaigns/big-deals", bigDeals, 200, `"version": 1`},
		{"put again: unchanged", "PUT", "/v1/campaigns/big-deals", bigDeals, 200, `"version": 1`},
		{"get", "GET", "/v1/campaigns/big-deals", "", 200, `"qualified_total": 0`},
		{"put new version", "PUT", "/v1/campaigns/big-deals", strings.Replace(bigDeals, "50000", "60000", 1), 200, `"version": 2`},
		{"culprit", "PUT", "/v1/campaigns/x", `{"name":"x","triggers":[{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"gt","value":1},{"field":"Amout","op":"gt","value":1}]}]}`, 400, `triggers[0].constraints[1]: unknown field "Amout"`},
		{"bad id", "PUT", "/v1/campaigns/a.b", bigDeals, 400, `campaign_id: "a.b" is not [A-Za-z0-9_-]{1,64}`},
		{"id mismatch", "PUT", "/v1/campaigns/x", `{"campaign_id":"y","name":"x","triggers":[{"trigger":"added_to_opportunity"}]}`, 400, `campaign_id: "y" does not match the campaign id "x"`},
		{"not json", "PUT", "/v1/campaigns/x", `{`, 400, `body: not a JSON object`},
		{"logic", "PUT", "/v1/campaigns/x", `{"name":"x","triggers":[{"trigger":"added_to_opportunity"}],"filters":[{"filter":"has_opportunity"}],"logic":"1 or"}`, 400, `logic: unexpected end at position 5 (want a filter number, not or "(")`},
		{"second", "PUT", "/v1/campaigns/second", bigDeals, 200, `"campaign_id": "second"`},
		{"limit", "PUT", "/v1/campaigns/third", bigDeals, 409, `campaigns.max: 2 campaigns already exist; delete one first`},
		{"list", "GET", "/v1/campaigns", "", 200, `"campaign_id": "second"`},
		{"delete", "DELETE", "/v1/campaigns/second", "", 204, ``},
		{"delete again", "DELETE", "/v1/campaigns/second", "", 404, `campaign not found`},
		{"after delete", "PUT", "/v1/campaigns/third", bigDeals, 200, `"version": 1`},
		{"limit again", "PUT", "/v1/campaigns/second", bigDeals, 409, `campaigns.max`},
		{"delete third", "DELETE", "/v1/campaigns/third", "", 204, ``},
		{"recreate continues versions", "PUT", "/v1/campaigns/second", bigDeals, 200, `"version": 2`},
		{"wrong method", "POST", "/v1/campaigns/x", `{}`, 405, `method not allowed`},
	}
	for _, st := range steps {
		r := do(t, h, st.method, st.path, st.body)
		if r.code != st.code {
			t.Fatalf("%s: %d %s, want %d", st.name, r.code, r.body, st.code)
		}
		if r.code == 400 {
			if got := errorText(t, r); got != st.want {
				t.Fatalf("%s: error %q, want %q", st.name, got, st.want)
			}
		} else if !strings.Contains(string(r.body), st.want) {
			t.Fatalf("%s: body lacks %q:\n%s", st.name, st.want, r.body)
		}
	}
	// GET returns exactly what PUT stored, and applying it again is a no-op.
	r := do(t, h, "GET", "/v1/campaigns/big-deals", "")
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got["campaign_id"] != "big-deals" || got["version"] != 2.0 || got["updated_at"] != "2026-12-01T10:00:00.000Z" || got["active"] != true || got["qualification"] != "once" || got["match"] != "all" {
		t.Fatalf("stored %s", r.body)
	}
	if r := do(t, h, "PUT", "/v1/campaigns/big-deals", string(r.body)); r.code != 200 || !strings.Contains(string(r.body), `"version": 2`) {
		t.Fatalf("re-applying the served definition: %d %s", r.code, r.body)
	}
	if n := testutil.ToFloat64(srv.m.requests.WithLabelValues("PUT /v1/campaigns/{campaignId}", "400")); n != 5 {
		t.Fatalf("400s counted under the route: %v", n)
	}
}

func TestCampaignRoutesAuthAndUnavailable(t *testing.T) {
	h, _ := campaignServer(t, 0, "sesame")
	for _, path := range []string{"/v1/campaigns", "/v1/campaigns/x", "/v1/people/003000000000001AAA/activity"} {
		if r := do(t, h, "GET", path, ""); r.code != 401 {
			t.Fatalf("%s without a token: %d", path, r.code)
		}
	}
	if r := do(t, h, "GET", "/v1/campaigns", "", "Authorization", "Bearer sesame"); r.code != 200 {
		t.Fatalf("with the token: %d", r.code)
	}
	s, _ := newServer(t, fakeRecords{}, Config{}, nil)
	for _, c := range []struct{ method, path string }{{"GET", "/v1/campaigns"}, {"PUT", "/v1/campaigns/x"}, {"GET", "/v1/campaigns/x"},
		{"DELETE", "/v1/campaigns/x"}, {"GET", "/v1/people/003000000000001AAA/activity"}} {
		if r := do(t, s.Handler(), c.method, c.path, "{}"); r.code != 503 {
			t.Fatalf("%s %s without campaigns: %d", c.method, c.path, r.code)
		}
	}
}

// failingCampaigns fails every call with a storage error.
type failingCampaigns struct{}

var errStorage = errors.New("redis: connection refused")

func (failingCampaigns) PutCampaign(context.Context, string, []byte) (any, error) {
	return nil, errStorage
}
func (failingCampaigns) GetCampaign(context.Context, string) (any, bool, error) {
	return nil, false, errStorage
}
func (failingCampaigns) ListCampaigns(context.Context) ([]any, error) { return nil, errStorage }
func (failingCampaigns) DeleteCampaign(context.Context, string) (bool, error) {
	return false, errStorage
}

func TestCampaignRoutesStorageErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{}, Deps{Queries: fakeRecords{}, Gatherer: reg, Campaigns: failingCampaigns{}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v1/campaigns"}, {"PUT", "/v1/campaigns/x"}, {"GET", "/v1/campaigns/x"}, {"DELETE", "/v1/campaigns/x"}} {
		r := do(t, s.Handler(), c.method, c.path, "{}")
		if r.code != 500 || errorText(t, r) != "internal error" {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
}

// fakeActivity records the query it got and serves one entry.
type fakeActivity struct{ got *ActivityQuery }

func (f fakeActivity) PersonActivity(_ context.Context, p string, q ActivityQuery) ([]map[string]string, string, bool, error) {
	*f.got = q
	switch {
	case p == "003000000000009AAA":
		return nil, "", false, nil
	case q.Cursor == "bad":
		return nil, "", false, badCursor{}
	}
	return []map[string]string{{"trigger": "added_to_opportunity", "event_id": "e1", "person_id": p, "opportunity_id": "0068c000000iyJbAAI",
		"occurred_at": "2026-12-01T10:00:00.000Z", "contact_role_id": "00K8c000000abcdEAA", "role": "Decision Maker", "is_primary": "true",
		"reason": "contact_role_created", "opportunity": `{"Amount":50000}`}}, "next", true, nil
}

type badCursor struct{}

func (badCursor) Error() string { return "cursor: not a cursor issued by this API" }
func (badCursor) Invalid() bool { return true }

func TestPersonActivityRoute(t *testing.T) {
	var got ActivityQuery
	reg := prometheus.NewRegistry()
	s, err := New(Config{}, Deps{Queries: fakeRecords{}, Gatherer: reg, Activity: fakeActivity{&got}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	const p = "/v1/people/003000000000001AAA/activity"
	tests := []struct {
		name, query string
		code        int
		want        string
		q           ActivityQuery
	}{
		{"defaults", "", 200, `"next_cursor": "next"`, ActivityQuery{Limit: 100}},
		{"all parameters", "?type=opportunity_updated&since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00.5Z&limit=1000&cursor=abc", 200, `"person_id": "003000000000001AAA"`,
			ActivityQuery{Type: "opportunity_updated", Since: 1793491200000, Until: 1793577600500, Limit: 1000, Cursor: "abc"}},
		{"type", "?type=updated", 400, `type: "updated" is not added_to_opportunity, removed_from_opportunity or opportunity_updated`, ActivityQuery{}},
		{"since", "?since=yesterday", 400, `since: "yesterday" is not an RFC 3339 time`, ActivityQuery{}},
		{"until before since", "?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", 400, `until: before since`, ActivityQuery{}},
		{"limit zero", "?limit=0", 400, `limit: "0" is not an integer from 1 to 1000`, ActivityQuery{}},
		{"limit too big", "?limit=1001", 400, `limit: "1001" is not an integer from 1 to 1000`, ActivityQuery{}},
		{"bad cursor", "?cursor=bad", 400, `cursor: not a cursor issued by this API`, ActivityQuery{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = ActivityQuery{}
			r := do(t, s.Handler(), "GET", p+tt.query, "")
			if r.code != tt.code {
				t.Fatalf("%d %s", r.code, r.body)
			}
			if r.code == 200 {
				if !strings.Contains(string(r.body), tt.want) || got != tt.q {
					t.Fatalf("body %s, query %+v", r.body, got)
				}
			} else if e := errorText(t, r); e != tt.want {
				t.Fatalf("error %q, want %q", e, tt.want)
			}
		})
	}
	for _, path := range []string{"/v1/people/003000000000009AAA/activity", "/v1/people/not-an-id/activity"} {
		if r := do(t, s.Handler(), "GET", path, ""); r.code != 404 || errorText(t, r) != "person not found" {
			t.Fatalf("%s: %d %s", path, r.code, r.body)
		}
	}
}

// evilActivity serves one updated entry whose values are markup.
type evilActivity struct{}

func (evilActivity) PersonActivity(context.Context, string, ActivityQuery) ([]map[string]string, string, bool, error) {
	return []map[string]string{{"event_id": "e1", "trigger": "opportunity_updated", "occurred_at": "2026-12-01T10:00:00.000Z",
		"opportunity_id": "006X", "field": "Name", "old_value": `"<script>alert(1)</script>"`, "new_value": `"<b>x</b>"`}}, "more", true, nil
}

func TestActivityLogTabEscapes(t *testing.T) {
	q := fakeRecords{opps: []*filters.Opportunity{{ID: "006X", Known: true, Fields: map[string]cdc.Value{"Name": cdc.String("n")},
		Roles: []filters.Role{{ID: "00KX", ContactID: "003000000000000XAA"}}}}}
	s, err := New(Config{}, Deps{Queries: q, Activity: evilActivity{}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, s.Handler(), "GET", "/people/003000000000000XAA", "")
	body := string(r.body)
	if r.code != 200 || !strings.Contains(body, ">Activity Log<") || !strings.Contains(body, `id="activity-more"`) {
		t.Fatalf("page %d:\n%s", r.code, body)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<b>x") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("activity values reached the page unescaped:\n%s", body)
	}
}
