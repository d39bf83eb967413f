package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// truthPerson is a person as the generator's ground truth sees them.
type truthPerson struct {
	opps  []synth.TruthOpportunity // live opportunities with a live role of theirs
	roles map[string][]synth.TruthRole
	acts  []synth.Expected
}

type truthIndex struct {
	people map[string]*truthPerson
	now    time.Time
}

func indexTruth(tr synth.Truth, now time.Time) *truthIndex {
	ix := &truthIndex{people: map[string]*truthPerson{}, now: now}
	get := func(id string) *truthPerson {
		p := ix.people[id]
		if p == nil {
			p = &truthPerson{roles: map[string][]synth.TruthRole{}}
			ix.people[id] = p
		}
		return p
	}
	for _, e := range tr.Expected {
		p := get(e.PersonID)
		p.acts = append(p.acts, e)
	}
	for _, r := range tr.ContactRoles {
		if r.Deleted || r.ContactID == "" {
			continue
		}
		o, ok := tr.Opportunity(r.OpportunityID)
		if !ok {
			continue
		}
		p := get(r.ContactID)
		if len(p.roles[o.ID]) == 0 && !o.Deleted {
			p.opps = append(p.opps, o)
		}
		p.roles[o.ID] = append(p.roles[o.ID], r)
	}
	return ix
}

func num(o synth.TruthOpportunity, f string) (float64, bool) {
	v, ok := o.Fields[f]
	return v.Num, ok && v.Kind == cdc.KindNumber
}

func expected(o synth.TruthOpportunity) (float64, bool) {
	if v, ok := num(o, "ExpectedRevenue"); ok {
		return v, true
	}
	a, okA := num(o, "Amount")
	p, okP := num(o, "Probability")
	return a * p / 100, okA && okP
}

func (p *truthPerson) totals() (count int, amount, exp float64) {
	for _, o := range p.opps {
		count++
		if a, ok := num(o, "Amount"); ok {
			amount += a
		}
		if e, ok := expected(o); ok {
			exp += e
		}
	}
	return
}

func (p *truthPerson) anyOpp(pred func(o synth.TruthOpportunity, r synth.TruthRole) bool) bool {
	for _, o := range p.opps {
		for _, r := range p.roles[o.ID] {
			if pred(o, r) {
				return true
			}
		}
	}
	return false
}

func (p *truthPerson) countActs(kind string, since time.Time, pred func(e synth.Expected) bool) int {
	n := 0
	for _, e := range p.acts {
		if e.Trigger == kind && !e.At.Before(since) && (pred == nil || pred(e)) {
			n++
		}
	}
	return n
}

// representative queries with an independent brute-force predicate.
func representative(now time.Time) []struct {
	name, body string
	want       func(p *truthPerson) bool
} {
	month := now.Add(-720 * time.Hour)
	week := now.Add(-168 * time.Hour)
	return []struct {
		name, body string
		want       func(p *truthPerson) bool
	}{
		{"open and big", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":false},{"field":"Amount","op":"gte","value":100000}]}]}`,
			func(p *truthPerson) bool {
				return p.anyOpp(func(o synth.TruthOpportunity, _ synth.TruthRole) bool {
					a, ok := num(o, "Amount")
					return !o.Fields["IsClosed"].Bool && ok && a >= 100000
				})
			}},
		{"won decision maker", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":"closed won"},{"field":"Role","op":"is","value":"Decision Maker"}]}]}`,
			func(p *truthPerson) bool {
				return p.anyOpp(func(o synth.TruthOpportunity, r synth.TruthRole) bool {
					return o.Fields["StageName"].Str == "Closed Won" && r.Role == "Decision Maker"
				})
			}},
		{"primary with seats (custom)", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsPrimary","op":"is","value":true},{"field":"Seats__c","op":"gte","value":500}]}]}`,
			func(p *truthPerson) bool {
				return p.anyOpp(func(o synth.TruthOpportunity, r synth.TruthRole) bool {
					s, ok := num(o, "Seats__c")
					return r.Primary && ok && s >= 500
				})
			}},
		{"closing soon", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"CloseDate","op":"between","value":["` + now.Format("2006-01-02") + `","` + now.Add(30*24*time.Hour).Format("2006-01-02") + `"]},{"field":"Region__c","op":"is_not","value":["APAC","LATAM"]}]}]}`,
			func(p *truthPerson) bool {
				lo, hi := now.Format("2006-01-02"), now.Add(30*24*time.Hour).Format("2006-01-02")
				return p.anyOpp(func(o synth.TruthOpportunity, _ synth.TruthRole) bool {
					d, ok := o.Fields["CloseDate"]
					reg := strings.ToUpper(o.Fields["Region__c"].Str)
					return ok && d.Str >= lo && d.Str <= hi && reg != "APAC" && reg != "LATAM"
				})
			}},
		{"no opportunity", `{"filters":[{"filter":"has_opportunity","not":true}]}`,
			func(p *truthPerson) bool { return len(p.opps) == 0 }},
		{"two or more", `{"filters":[{"filter":"number_of_opportunities","op":"gte","value":2}]}`,
			func(p *truthPerson) bool { c, _, _ := p.totals(); return c >= 2 }},
		{"amount between", `{"filters":[{"filter":"total_opportunity_amount","op":"between","value":[100000,300000]}]}`,
			func(p *truthPerson) bool { _, a, _ := p.totals(); return a >= 100000 && a <= 300000 }},
		{"expected gt", `{"filters":[{"filter":"total_expected_revenue","op":"gt","value":80000}]}`,
			func(p *truthPerson) bool { _, _, e := p.totals(); return e > 80000 }},
		{"added twice this month", `{"filters":[{"filter":"was_added_to_opportunity","within":"720h","min_times":2}]}`,
			func(p *truthPerson) bool { return p.countActs(cdc.TriggerAdded, month, nil) >= 2 }},
		{"removed this week", `{"filters":[{"filter":"was_removed_from_opportunity","within":"168h"}]}`,
			func(p *truthPerson) bool { return p.countActs(cdc.TriggerRemoved, week, nil) >= 1 }},
		{"stage became closed won", `{"filters":[{"filter":"opportunity_updated","field":"StageName","within":"720h","constraints":[{"field":"new_value","op":"is","value":"Closed Won"}]}]}`,
			func(p *truthPerson) bool {
				return p.countActs(cdc.TriggerUpdated, month, func(e synth.Expected) bool {
					return e.Field == "StageName" && e.New.Str == "Closed Won"
				}) >= 1
			}},
		{"any: none or emea", `{"match":"any","filters":[{"filter":"number_of_opportunities","op":"is","value":0},{"filter":"has_opportunity","constraints":[{"field":"Region__c","op":"is","value":"emea"}]}]}`,
			func(p *truthPerson) bool {
				c, _, _ := p.totals()
				return c == 0 || p.anyOpp(func(o synth.TruthOpportunity, _ synth.TruthRole) bool {
					return strings.EqualFold(o.Fields["Region__c"].Str, "EMEA")
				})
			}},
	}
}

// queryAll pages through a query and returns every person id.
func queryAll(t *testing.T, s *Server, body string, limit int) []string {
	t.Helper()
	var all []string
	cursor := ""
	for pages := 0; pages < 10000; pages++ {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		m["limit"] = limit
		if cursor != "" {
			m["cursor"] = cursor
		}
		b, _ := json.Marshal(m)
		r := do(t, s.Handler(), "POST", "/v1/people/query", string(b))
		if r.code != http.StatusOK {
			t.Fatalf("query %s: %d %s", b, r.code, r.body)
		}
		var out queryJSON
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.PersonIDs) > limit {
			t.Fatalf("page of %d > limit %d", len(out.PersonIDs), limit)
		}
		all = append(all, out.PersonIDs...)
		if out.NextCursor == "" {
			return all
		}
		cursor = out.NextCursor
	}
	t.Fatal("too many pages")
	return nil
}

// TestQueriesMatchTruth pushes a few thousand people's worth of generated
// traffic through the real pipeline, and checks representative queries
// against a brute-force evaluation of the generator's ground truth — once
// right after the view loaded, and again after more traffic was followed
// from the changes stream.
func TestQueriesMatchTruth(t *testing.T) {
	o := newOrg(t, synth.GenConfig{Seed: 2026, Opportunities: 800, Contacts: 2500})
	o.feed(6000)
	o.runView()
	s, _ := newServer(t, o.view, Config{Now: func() time.Time { return o.clock }}, nil)
	check := func(phase string) {
		ix := indexTruth(o.gen.Truth(), o.clock)
		if len(ix.people) < 1000 {
			t.Fatalf("only %d people in the truth", len(ix.people))
		}
		for _, q := range representative(o.clock) {
			t.Run(phase+"/"+q.name, func(t *testing.T) {
				want := map[string]bool{}
				for id, p := range ix.people {
					if q.want(p) {
						want[id] = true
					}
				}
				got := queryAll(t, s, q.body, 700)
				if !sort.StringsAreSorted(got) {
					t.Error("person ids are not in a stable (sorted) order")
				}
				gotSet := map[string]bool{}
				for _, id := range got {
					if gotSet[id] {
						t.Errorf("person %s returned twice", id)
					}
					gotSet[id] = true
				}
				if !reflect.DeepEqual(gotSet, want) {
					var missing, extra []string
					for id := range want {
						if !gotSet[id] {
							missing = append(missing, id)
						}
					}
					for id := range gotSet {
						if !want[id] {
							extra = append(extra, id)
						}
					}
					sort.Strings(missing)
					sort.Strings(extra)
					t.Errorf("got %d people, want %d; missing %v; extra %v", len(gotSet), len(want), head(missing), head(extra))
				}
				if len(want) == 0 || len(want) == len(ix.people) {
					t.Logf("query selects %d of %d people: not discriminating", len(want), len(ix.people))
				}
			})
		}
	}
	check("loaded")

	o.feed(2000)
	// Wait until the view followed the changes stream to the end.
	last, err := o.rdb.XRevRangeN(context.Background(), "oppsync:{"+o.name+"}:changes", "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("reading the changes stream: %v", err)
	}
	want := last[0].ID
	people, err := o.rdb.ZCard(context.Background(), "oppsync:{"+o.name+"}:people").Result()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got, n := o.view.Position(), o.view.People()
		return got == want && n == int(people), fmt.Sprintf("view at %s with %d people, stream at %s with %d", got, n, want, people)
	})
	check("followed")
	if o.view.Reloads() != 1 {
		t.Errorf("the view reloaded %d times, want 1", o.view.Reloads())
	}
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}
