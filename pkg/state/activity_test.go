package state

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

func TestPersonActivityPages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const p = "003000000000001AAA"
	base := f.clock.UnixMilli() - 100_000
	// 9 entries: three at each of three instants, kinds in turn; and one
	// past activity.retention.
	var members []redis.Z
	var want []string // event ids, newest first by occurred_at
	for i := 8; i >= 0; i-- {
		at := base + int64(i/3)*1000
		tr := triggers.Trigger{Kind: []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated}[i%3],
			EventID: fmt.Sprintf("e%d", i), PersonID: p, OpportunityID: "006000000000001AAA",
			ContactRoleID: "00K000000000001AAA", Role: "Decision Maker", IsPrimary: true, Reason: triggers.ReasonRoleCreated,
			Field: "Amount", Old: cdc.Null, New: cdc.Number(5)}
		members = append(members, redis.Z{Score: float64(at), Member: replica.ActivityJSON(tr, at)})
	}
	old := f.clock.Add(-f.s.cfg.ActivityRetention).UnixMilli() - 1
	members = append(members, redis.Z{Score: float64(old), Member: replica.ActivityJSON(triggers.Trigger{Kind: cdc.TriggerAdded, EventID: "old"}, old)})
	f.rdb.ZAdd(ctx, f.s.k.Activity(p), members...)
	f.rdb.ZAdd(ctx, f.s.k.People(), redis.Z{Score: float64(base), Member: p})
	// Redis orders equal scores by member, descending here.
	all, _, ok, err := f.s.PersonActivity(ctx, p, ActivityPage{Limit: 100})
	if err != nil || !ok || len(all) != 9 {
		t.Fatalf("all: %d entries, %v %v", len(all), ok, err)
	}
	for _, e := range all {
		want = append(want, e["event_id"])
	}
	for i := 1; i < len(all); i++ {
		if all[i]["occurred_at"] > all[i-1]["occurred_at"] {
			t.Fatalf("not newest first: %v", want)
		}
	}
	tests := []struct {
		name string
		pg   ActivityPage
		want []string
	}{
		{"pages of 2", ActivityPage{Limit: 2}, want},
		{"pages of 4", ActivityPage{Limit: 4}, want},
		{"one kind", ActivityPage{Limit: 2, Kind: cdc.TriggerUpdated}, filter(all, "trigger", cdc.TriggerUpdated)},
		{"until", ActivityPage{Limit: 2, Until: base + 1000}, want[3:]},
		{"since", ActivityPage{Limit: 5, Since: base + 1000}, want[:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			pg := tt.pg
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("too many pages")
				}
				es, next, ok, err := f.s.PersonActivity(ctx, p, pg)
				if err != nil || !ok {
					t.Fatal(ok, err)
				}
				if len(es) > pg.Limit {
					t.Fatalf("page of %d > limit %d", len(es), pg.Limit)
				}
				for _, e := range es {
					got = append(got, e["event_id"])
				}
				if next == "" {
					break
				}
				pg.Cursor = next
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	e := all[0]
	if e["person_id"] != p || e["org_id"] != f.org || e["currency"] != "USD" || e["opportunity_id"] != "006000000000001AAA" {
		t.Fatalf("entry %v", e)
	}
	for _, e := range all {
		switch e["trigger"] {
		case cdc.TriggerUpdated:
			if e["field"] != "Amount" || e["old_value"] != "null" || e["new_value"] != "5" {
				t.Fatalf("updated entry %v", e)
			}
		default:
			if e["role"] != "Decision Maker" || e["is_primary"] != "true" || e["reason"] != "contact_role_created" || e["contact_role_id"] != "00K000000000001AAA" {
				t.Fatalf("added/removed entry %v", e)
			}
		}
	}
	if _, _, ok, err := f.s.PersonActivity(ctx, "003000000000002AAA", ActivityPage{Limit: 1}); ok || err != nil {
		t.Fatalf("unknown person: %v %v", ok, err)
	}
	for _, c := range []string{"!", "YTox", encodeActivityCursor("x", 1)} {
		_, _, _, err := f.s.PersonActivity(ctx, p, ActivityPage{Limit: 1, Cursor: c})
		var bad BadCursorError
		if !errors.As(err, &bad) {
			t.Fatalf("cursor %q: %v", c, err)
		}
	}
}

func filter(es []map[string]string, k, v string) []string {
	var out []string
	for _, e := range es {
		if e[k] == v {
			out = append(out, e["event_id"])
		}
	}
	return out
}
