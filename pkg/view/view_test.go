package view

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/cdctest"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/state"
)

// viewFixture is a Store on the test Redis with its own org, fed with
// hand-made events, and a View of it.
type viewFixture struct {
	t     *testing.T
	s     *state.Store
	k     replica.Keys
	v     *View
	rdb   *redis.Client
	off   int64
	ts    int64
	clock time.Time
}

// newViewFixture builds the fixture; onCorrupt (optional) sees the
// records the store and the view skip.
func newViewFixture(t *testing.T, onCorrupt ...func(replica.Corrupt)) *viewFixture {
	rdb := testenv.NewRedis(t)
	f := &viewFixture{t: t, rdb: rdb, ts: 1_790_000_000_000, clock: time.UnixMilli(1_790_000_000_000)}
	cfg := state.Config{Org: testenv.UniqueName(t, "view"), Now: func() time.Time { return f.clock }}
	if len(onCorrupt) > 0 {
		cfg.OnCorrupt = onCorrupt[0]
	}
	s, err := state.New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.s, f.k = s, replica.NewKeys(s.Org())
	f.v, err = New(s.Replica(), Config{Now: func() time.Time { return f.clock }, Block: 20 * time.Millisecond, PeopleRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DropOrg(rdb, s.Org()) })
	return f
}

func (f *viewFixture) ev(entity string, ct cdc.ChangeType, id string, kv ...any) *cdc.Event {
	f.ts += 1000
	f.clock = time.UnixMilli(f.ts)
	return &cdc.Event{Entity: entity, ChangeType: ct, RecordIDs: []string{id},
		Version: cdc.Version{CommitTimestamp: f.ts, CommitNumber: f.ts, SequenceNumber: 1},
		Header:  cdc.EventHeader{TransactionKey: fmt.Sprint(f.ts), SequenceNumber: 1}, Fields: cdctest.Fields(kv...)}
}

func (f *viewFixture) opp(ct cdc.ChangeType, id string, kv ...any) *cdc.Event {
	return f.ev(cdc.EntityOpportunity, ct, id, kv...)
}

func (f *viewFixture) role(ct cdc.ChangeType, id string, kv ...any) *cdc.Event {
	return f.ev(cdc.EntityContactRole, ct, id, kv...)
}

func (f *viewFixture) apply(evs ...*cdc.Event) {
	f.t.Helper()
	var items []state.Item
	for _, e := range evs {
		items = append(items, state.Item{Msg: &cdc.Message{Topic: "t", Offset: f.off}, Event: e})
		f.off++
	}
	if _, err := f.s.ApplyBatch(context.Background(), items); err != nil {
		f.t.Fatalf("ApplyBatch: %v", err)
	}
}

func (f *viewFixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.v.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	})
	f.eventually(func() (bool, string) {
		return f.v.Ready(ctx) == nil, "the view never loaded"
	})
}

func (f *viewFixture) eventually(cond func() (bool, string)) {
	f.t.Helper()
	testenv.Eventually(f.t, 10*time.Second, cond)
}

var viewCatalog = filters.NewCatalog([]filters.Field{
	{Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency"},
	{Entity: "Opportunity", Name: "StageName", Kind: cdc.KindString, SalesforceType: "DynamicEnum"},
})

func (f *viewFixture) query(body string) []string {
	f.t.Helper()
	q, err := filters.Parse([]byte(body), viewCatalog, f.clock)
	if err != nil {
		f.t.Fatal(err)
	}
	ids, next, err := f.v.Query(context.Background(), q)
	if err != nil {
		f.t.Fatal(err)
	}
	if next != "" {
		f.t.Fatalf("unexpected next page %q", next)
	}
	return ids
}

// expect waits until the query returns want (comma-separated ids).
func (f *viewFixture) expect(body, want string) {
	f.t.Helper()
	f.eventually(func() (bool, string) {
		got := strings.Join(f.query(body), ",")
		return got == want, fmt.Sprintf("query %s = [%s], want [%s]", body, got, want)
	})
}

const (
	qHas   = `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Amount","op":"gte","value":1000}]}]}`
	qCount = `{"filters":[{"filter":"number_of_opportunities","op":"gte","value":1}]}`
	qNone  = `{"filters":[{"filter":"has_opportunity","not":true}]}`
)

func TestViewFollowsChanges(t *testing.T) {
	f := newViewFixture(t)
	f.apply(
		f.opp(cdc.Create, "006A", "Amount", 5000, "StageName", "Prospecting"),
		f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A", "Role", "Buyer"),
	)
	f.run()
	f.expect(qHas, "003A")

	// Followed from the changes stream: a new person, an amount change, a
	// removed role, a contact change, a deletion.
	f.apply(f.role(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003B"))
	f.expect(qHas, "003A,003B")
	f.apply(f.opp(cdc.Update, "006A", "Amount", 500))
	f.expect(qHas, "")
	f.expect(qCount, "003A,003B")
	f.apply(f.role(cdc.Delete, "00KB"))
	f.expect(qNone, "003B")
	f.apply(f.role(cdc.Update, "00KA", "ContactId", "003C"))
	f.expect(qCount, "003C")
	f.expect(qNone, "003A,003B")
	f.apply(f.opp(cdc.Delete, "006A"))
	f.expect(qCount, "")
	f.expect(qNone, "003A,003B,003C")

	// A role created and moved to another contact between two reads names
	// only its last contact; the first one still joins the universe.
	f.apply(
		f.opp(cdc.Create, "006D", "Amount", 2000),
		f.role(cdc.Create, "00KD", "OpportunityId", "006D", "ContactId", "003D"),
		f.role(cdc.Update, "00KD", "ContactId", "003E"),
	)
	f.expect(qNone, "003A,003B,003C,003D")
	f.expect(qHas, "003E")
	if f.v.Reloads() != 1 {
		t.Errorf("reloads = %d, want 1", f.v.Reloads())
	}
}

func TestViewPendingCountsButHasNoFields(t *testing.T) {
	f := newViewFixture(t)
	f.apply(f.role(cdc.Create, "00KP", "OpportunityId", "006P", "ContactId", "003P", "Role", "Buyer"))
	f.run()
	f.expect(qCount, "003P")
	f.expect(qNone, "003P")
	f.apply(f.opp(cdc.Create, "006P", "Amount", 3000))
	f.expect(qHas, "003P")
}

func TestViewReloadsWhenTrimmed(t *testing.T) {
	f := newViewFixture(t)
	ctx := context.Background()
	f.apply(f.opp(cdc.Create, "006A", "Amount", 5000), f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A"))
	if err := f.v.load(ctx); err != nil {
		t.Fatal(err)
	}
	// The view falls behind: changes are written and trimmed before it reads.
	f.apply(f.role(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003B"))
	f.apply(f.opp(cdc.Create, "006C", "Amount", 7000), f.role(cdc.Create, "00KC", "OpportunityId", "006C", "ContactId", "003C"))
	if err := f.rdb.XTrimMaxLen(ctx, f.k.Stream(replica.StreamChanges), 1).Err(); err != nil {
		t.Fatal(err)
	}
	lost, err := f.v.follow(ctx)
	if err != nil || !lost {
		t.Fatalf("follow = %v, %v; want lost", lost, err)
	}
	f.run() // Run loads again
	f.expect(qHas, "003A,003B,003C")
	if f.v.Reloads() != 2 {
		t.Errorf("reloads = %d, want 2", f.v.Reloads())
	}
}

func TestViewQueryPagesAndHonoursCtx(t *testing.T) {
	f := newViewFixture(t)
	var evs []*cdc.Event
	for i := 0; i < 30; i++ {
		evs = append(evs, f.opp(cdc.Create, fmt.Sprintf("006%02d", i), "Amount", 1000+i),
			f.role(cdc.Create, fmt.Sprintf("00K%02d", i), "OpportunityId", fmt.Sprintf("006%02d", i), "ContactId", fmt.Sprintf("003%02d", i)))
	}
	f.apply(evs...)
	q, err := filters.Parse([]byte(`{"limit":7}`), viewCatalog, f.clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.v.Query(context.Background(), q); !errors.Is(err, ErrNotReady) {
		t.Errorf("query before load: %v, want ErrNotReady", err)
	}
	f.run()
	var all []string
	for page := 0; page < 10; page++ {
		ids, next, err := f.v.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 7 {
			t.Fatalf("page of %d", len(ids))
		}
		all = append(all, ids...)
		if next == "" {
			break
		}
		q.Cursor = next
		if q.After, err = filters.DecodeCursor(next); err != nil {
			t.Fatal(err)
		}
	}
	if len(all) != 30 || !sort.StringsAreSorted(all) {
		t.Errorf("pages = %v", all)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := f.v.Query(ctx, q); !errors.Is(err, context.Canceled) {
		t.Errorf("query with canceled ctx: %v", err)
	}
}
