package state

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
)

type campaignCatalogFake struct{}

func (campaignCatalogFake) Catalog(context.Context) (*filters.Catalog, error) {
	return filters.NewCatalog([]filters.Field{
		{Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency"},
		{Entity: "Opportunity", Name: "StageName", Kind: cdc.KindString, SalesforceType: "Picklist"},
		{Entity: "Opportunity", Name: "IsClosed", Kind: cdc.KindBool, SalesforceType: "Boolean"},
	}), nil
}

// campaignFixture is a fixture whose store evaluates the org's campaigns.
type campaignFixture struct {
	*fixture
	defs  *campaigns.Store
	stats []CampaignStats
	loads int
}

func newCampaignFixture(t *testing.T, mod ...func(*Config)) *campaignFixture {
	f := &campaignFixture{fixture: newFixture(t, mod...)}
	t.Cleanup(func() { testenv.DropOrg(f.rdb, f.org) })
	defs, err := campaigns.New(campaigns.Config{Org: f.org}, f.rdb, campaignCatalogFake{})
	if err != nil {
		t.Fatal(err)
	}
	f.defs = defs
	f.s.SetCampaigns(defs, CampaignOptions{
		OnLoad:    func(*campaigns.Set, map[string]error) { f.loads++ },
		OnWritten: func(st CampaignStats) { f.stats = append(f.stats, st) },
	})
	return f
}

func (f *campaignFixture) put(id, body string) {
	f.t.Helper()
	if _, _, err := f.defs.Put(context.Background(), id, []byte(body)); err != nil {
		f.t.Fatalf("put %s: %v", id, err)
	}
}

// campaignLines renders a campaign stream as "person opportunity trigger
// version" lines, in stream order.
func (f *campaignFixture) campaignLines(id string) []string {
	f.t.Helper()
	var out []string
	for _, e := range f.entries("campaign:" + id) {
		out = append(out, fmt.Sprintf("%s %s %s v%s", e["person_id"], e["opportunity_id"], e["trigger"], e["campaign_version"]))
	}
	return out
}

func (f *campaignFixture) want(id string, lines ...string) {
	f.t.Helper()
	if got := f.campaignLines(id); strings.Join(got, "\n") != strings.Join(lines, "\n") {
		f.t.Fatalf("campaign %s:\n%s\nwant:\n%s", id, strings.Join(got, "\n"), strings.Join(lines, "\n"))
	}
}

const addedDM = `{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":50000}]}`

func TestCampaignEntriesWithTriggers(t *testing.T) {
	f := newCampaignFixture(t)
	f.put("big", `{"name":"big","triggers":[`+addedDM+`]}`)
	f.put("won", `{"name":"won","triggers":[{"trigger":"opportunity_updated","field":"StageName","constraints":[{"field":"new_value","op":"is","value":"Closed Won"},{"field":"Role","op":"is","value":"Evaluator"}]}]}`)
	f.apply(
		oppEv(cdc.Create, "006A", "StageName", "Prospecting", "Amount", 60000),
		oppEv(cdc.Create, "006B", "StageName", "Prospecting", "Amount", 1000),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Decision Maker"),
		ocrEv(cdc.Create, "00KB", "OpportunityId", "006B", "ContactId", "003P", "Role", "Decision Maker"),
		ocrEv(cdc.Create, "00KC", "OpportunityId", "006A", "ContactId", "003Q", "Role", "Evaluator"),
		oppEv(cdc.Update, "006A", "StageName", "Closed Won"),
	)
	f.want("big", "003P 006A added_to_opportunity v1")
	f.want("won", "003Q 006A opportunity_updated v1")
	e := f.entries("campaign:big")[0]
	tr := f.entries("triggers:" + cdc.TriggerAdded)[0]
	if e["event_id"] != "big:"+tr["event_id"] || e["trigger_event_id"] != tr["event_id"] {
		t.Fatalf("event ids: %v vs %v", e, tr)
	}
	for _, k := range []string{"org_id", "occurred_at", "transaction_key", "sequence_number", "commit_user", "change_origin",
		"currency", "opportunity", "contact_role_id", "role", "is_primary", "reason", "person_id", "opportunity_id"} {
		if e[k] != tr[k] {
			t.Errorf("%s: campaign entry %q, trigger entry %q", k, e[k], tr[k])
		}
	}
	// Its own 8 fields, then the trigger entry's others (all but trigger,
	// event_id, person_id, opportunity_id and occurred_at), none twice.
	if len(e) != 8+len(tr)-5 {
		t.Fatalf("campaign entry has %d fields, trigger entry %d: %v", len(e), len(tr), e)
	}
	u := f.entries("campaign:won")[0]
	if u["field"] != "StageName" || u["new_value"] != `"Closed Won"` || !strings.Contains(u["roles"], "Evaluator") {
		t.Fatalf("updated campaign entry %v", u)
	}
	if st, _, _ := f.defs.Get(context.Background(), "big"); *st.QualifiedTotal != 1 {
		t.Fatalf("qualified_total %d", *st.QualifiedTotal)
	}
	var written, evals int
	for _, st := range f.stats {
		written += st.Entries["big"] + st.Entries["won"]
		evals += st.Evaluations
		if len(st.Lags) != st.Entries["big"]+st.Entries["won"] {
			t.Fatalf("lags %v for entries %v", st.Lags, st.Entries)
		}
	}
	// 3 added + 2 updated entries, 2 campaigns each.
	if written != 2 || evals != 10 {
		t.Fatalf("stats: %d written, %d evaluations", written, evals)
	}
	// Redelivery writes nothing more.
	f.off -= 6
	f.apply(oppEv(cdc.Create, "006A", "StageName", "Prospecting", "Amount", 60000))
	f.want("big", "003P 006A added_to_opportunity v1")
}

func TestCampaignQualification(t *testing.T) {
	f := newCampaignFixture(t)
	any := `{"trigger":"added_to_opportunity"}`
	f.put("always", `{"name":"a","triggers":[`+any+`]}`)
	f.put("once", `{"name":"o","triggers":[`+any+`],"qualification":"once"}`)
	f.put("hourly", `{"name":"h","triggers":[`+any+`],"qualification":{"every":"1h"}}`)
	// event() spaces commit times 1 s apart.
	f.apply(
		oppEv(cdc.Create, "006A", "Amount", 1),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"),
		ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003P"),
	)
	clockMillis.Add(int64(2 * time.Hour / time.Millisecond))
	f.apply(ocrEv(cdc.Create, "00KC", "OpportunityId", "006A", "ContactId", "003P"))
	f.want("always", "003P 006A added_to_opportunity v1", "003P 006A added_to_opportunity v1", "003P 006A added_to_opportunity v1")
	f.want("once", "003P 006A added_to_opportunity v1")
	f.want("hourly", "003P 006A added_to_opportunity v1", "003P 006A added_to_opportunity v1")
	// DELETE forgets the history: the same id enters again.
	if _, err := f.defs.Delete(context.Background(), "once"); err != nil {
		t.Fatal(err)
	}
	f.apply(ocrEv(cdc.Create, "00KD", "OpportunityId", "006A", "ContactId", "003P"))
	f.want("once", "003P 006A added_to_opportunity v1")
	f.put("once", `{"name":"o","triggers":[`+any+`],"qualification":"once"}`)
	f.apply(ocrEv(cdc.Create, "00KE", "OpportunityId", "006A", "ContactId", "003P"))
	f.want("once", "003P 006A added_to_opportunity v1", "003P 006A added_to_opportunity v2")
}

func TestCampaignFiltersSeeTheChangeNotLater(t *testing.T) {
	f := newCampaignFixture(t)
	// Exactly one opportunity: true after the first add, false after the second.
	f.put("first", `{"name":"f","triggers":[{"trigger":"added_to_opportunity"}],"filters":[{"filter":"number_of_opportunities","op":"is","value":1}]}`)
	// Two adds within the hour, the triggering one included.
	f.put("twice", `{"name":"t","triggers":[{"trigger":"added_to_opportunity"}],"filters":[{"filter":"was_added_to_opportunity","within":"1h","min_times":2}]}`)
	// Won revenue over 1,000 and an open opportunity, by logic.
	f.put("won", `{"name":"w","triggers":[{"trigger":"opportunity_updated"}],"filters":[
		{"filter":"total_opportunity_amount","op":"gt","value":1000,"constraints":[{"field":"StageName","op":"is","value":"Closed Won"}]},
		{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":false}]}],"logic":"1 and not 2"}`)
	// 006X is P's opportunity from an earlier batch: read from Redis.
	f.apply(oppEv(cdc.Create, "006X", "StageName", "Closed Won", "Amount", 5000, "IsClosed", true),
		ocrEv(cdc.Create, "00KX", "OpportunityId", "006X", "ContactId", "003R"))
	f.apply(
		oppEv(cdc.Create, "006A", "Amount", 1, "IsClosed", false),
		oppEv(cdc.Create, "006B", "Amount", 1, "IsClosed", false),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"),
		ocrEv(cdc.Create, "00KB", "OpportunityId", "006B", "ContactId", "003P"),
		ocrEv(cdc.Create, "00KR", "OpportunityId", "006A", "ContactId", "003R"),
		oppEv(cdc.Update, "006X", "Amount", 6000),
		oppEv(cdc.Update, "006A", "IsClosed", true),
		oppEv(cdc.Update, "006X", "Amount", 7000),
	)
	// P: the first add leaves one opportunity, the second two (a later
	// change of the batch does not count back).
	f.want("first", "003R 006X added_to_opportunity v1", "003P 006A added_to_opportunity v1")
	f.want("twice", "003P 006B added_to_opportunity v1", "003R 006A added_to_opportunity v1")
	// R: 006X won (5,000) while 006A (added in this batch) is open: the
	// update of 006X to 6,000 does not qualify; once 006A closes, 7,000 does
	// (and so does 006A's own update, R's open opportunity gone).
	f.want("won", "003R 006A opportunity_updated v1", "003R 006X opportunity_updated v1")
}

func TestCampaignVersionsApplyByPosition(t *testing.T) {
	f := newCampaignFixture(t)
	f.put("c", `{"name":"c","triggers":[`+addedDM+`]}`)
	f.apply(oppEv(cdc.Create, "006A", "Amount", 60000),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Decision Maker"))
	// A new version stored after the store loaded the first: the next
	// call is refused once and rebuilt with it.
	f.put("c", `{"name":"c","triggers":[`+strings.Replace(addedDM, "50000", "10", 1)+`]}`)
	res := f.apply(ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003Q", "Role", "Decision Maker"))
	if res.Conflicts != 1 {
		t.Fatalf("conflicts %d, want 1 (the refused call)", res.Conflicts)
	}
	f.put("c", `{"name":"c","active":false,"triggers":[`+addedDM+`]}`)
	f.apply(ocrEv(cdc.Create, "00KC", "OpportunityId", "006A", "ContactId", "003S", "Role", "Decision Maker"))
	f.put("c", `{"name":"c","triggers":[`+addedDM+`]}`)
	f.apply(ocrEv(cdc.Create, "00KD", "OpportunityId", "006A", "ContactId", "003T", "Role", "Decision Maker"))
	if _, err := f.defs.Delete(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	f.apply(ocrEv(cdc.Create, "00KE", "OpportunityId", "006A", "ContactId", "003U", "Role", "Decision Maker"))
	f.want("c", "003P 006A added_to_opportunity v1", "003Q 006A added_to_opportunity v2", "003T 006A added_to_opportunity v4")
	if f.loads < 4 {
		t.Fatalf("%d loads", f.loads)
	}
}

func TestCampaignNoBackfill(t *testing.T) {
	f := newCampaignFixture(t)
	f.apply(oppEv(cdc.Create, "006A", "Amount", 60000),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Decision Maker"))
	f.put("c", `{"name":"c","triggers":[`+addedDM+`]}`)
	f.apply(ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003Q", "Role", "Decision Maker"))
	f.want("c", "003Q 006A added_to_opportunity v1")
}

func TestCampaignReleasedRoles(t *testing.T) {
	f := newCampaignFixture(t)
	f.put("c", `{"name":"c","triggers":[{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"is_empty"}]}],
		"filters":[{"filter":"number_of_opportunities","op":"is","value":1}]}`)
	f.apply(ocrEv(cdc.Create, "00KA", "OpportunityId", "006Z", "ContactId", "003P", "Role", "Decision Maker"))
	f.clock = f.clock.Add(time.Hour)
	if n, err := f.s.ReleaseExpired(context.Background(), 10); err != nil || n != 1 {
		t.Fatalf("released %d: %v", n, err)
	}
	f.want("c", "003P 006Z added_to_opportunity v1")
}

func TestCampaignFiltersSeeTheBatchInFlight(t *testing.T) {
	f := newCampaignFixture(t)
	ctx := context.Background()
	f.put("first", `{"name":"f","triggers":[{"trigger":"added_to_opportunity"}],"filters":[{"filter":"number_of_opportunities","op":"is","value":1}]}`)
	f.put("twice", `{"name":"t","triggers":[{"trigger":"added_to_opportunity"}],"filters":[{"filter":"was_added_to_opportunity","within":"1h","min_times":2}]}`)
	release := make(chan struct{}, 1)
	testHookBeforeSend = func() { <-release }
	defer func() { testHookBeforeSend = nil }()
	b1 := f.s.Begin(ctx, f.items(oppEv(cdc.Create, "006A", "Amount", 1), oppEv(cdc.Create, "006B", "Amount", 2)))
	if !b1.Sync() {
		t.Fatal("the first batch of a partition was begun ahead")
	}
	if _, err := b1.Wait(); err != nil {
		t.Fatal(err)
	}
	// b3 is built while b2's calls are held: it must see b2 whole.
	b2 := f.s.Begin(ctx, f.items(ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P")))
	b3 := f.s.Begin(ctx, f.items(ocrEv(cdc.Create, "00KB", "OpportunityId", "006B", "ContactId", "003P")))
	if b2.Sync() || b3.Sync() {
		t.Fatalf("not begun ahead: %v %v", b2.Sync(), b3.Sync())
	}
	for _, a := range []*Applying{b2, b3} {
		release <- struct{}{}
		res, err := a.Wait()
		if err != nil || res.Conflicts != 0 {
			t.Fatalf("Wait: %+v %v", res, err)
		}
	}
	f.want("first", "003P 006A added_to_opportunity v1")
	f.want("twice", "003P 006B added_to_opportunity v1")
}
