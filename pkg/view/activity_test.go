package view

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

const (
	qAdded   = `{"filters":[{"filter":"was_added_to_opportunity","within":"720h"}]}`
	qRemoved = `{"filters":[{"filter":"was_removed_from_opportunity","within":"720h"}]}`
	qStage   = `{"filters":[{"filter":"opportunity_updated","field":"StageName","within":"720h","constraints":[{"field":"new_value","op":"is","value":"Closed Won"}]}]}`
)

// The activity filters answer from the view's index, loaded at start and
// kept current from the changes stream, with no Redis read per query.
func TestViewActivityIndexFollowsChanges(t *testing.T) {
	f := newViewFixture(t)
	f.apply(
		f.opp(cdc.Create, "006A", "Amount", 5000, "StageName", "Prospecting"),
		f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A", "Role", "Buyer"),
	)
	f.run()
	f.expect(qAdded, "003A") // loaded
	f.expect(qStage, "")

	f.apply(f.opp(cdc.Update, "006A", "StageName", "Closed Won"))
	f.expect(qStage, "003A")
	f.apply(f.role(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003B"))
	f.expect(qAdded, "003A,003B")
	f.apply(f.role(cdc.Delete, "00KB"))
	f.expect(qRemoved, "003B")

	// A role created and moved to another contact between two reads of the
	// stream: its first contact is named by no group the view reads, only
	// by the changes entry's list of people with new activity.
	f.apply(
		f.opp(cdc.Create, "006D", "Amount", 2000),
		f.role(cdc.Create, "00KD", "OpportunityId", "006D", "ContactId", "003D"),
		f.role(cdc.Update, "00KD", "ContactId", "003E"),
	)
	f.expect(qRemoved, "003B,003D")
	f.expect(qAdded, "003A,003B,003D,003E")

	// No Redis read per query: the activity keys can go, the answers stay.
	ctx := context.Background()
	for _, p := range []string{"003A", "003B", "003D", "003E"} {
		if err := f.rdb.Del(ctx, f.k.Activity(p)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(f.query(qAdded)); got != "[003A 003B 003D 003E]" {
		t.Errorf("was_added after the keys went = %s", got)
	}
	if f.v.Reloads() != 1 {
		t.Errorf("reloads = %d, want 1", f.v.Reloads())
	}
}

// Entries written by earlier versions name no people: the view then
// re-reads the activity of everyone the groups name.
func TestViewActivityOfUnlistedChanges(t *testing.T) {
	f := newViewFixture(t)
	f.apply(
		f.opp(cdc.Create, "006A", "Amount", 5000, "StageName", "Prospecting"),
		f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A"),
	)
	f.run()
	f.expect(qStage, "")
	ctx := context.Background()
	at := f.clock.UnixMilli()
	member := replica.ActivityJSON(triggers.Trigger{EventID: "e1", Kind: cdc.TriggerUpdated, OpportunityID: "006A",
		PersonID: "003A", Field: "StageName", Old: cdc.String("Prospecting"), New: cdc.String("Closed Won")}, at)
	if err := f.rdb.ZAdd(ctx, f.k.Activity("003A"), redis.Z{Score: float64(at), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.XAdd(ctx, &redis.XAddArgs{Stream: f.k.Stream(replica.StreamChanges), Values: []any{"opps", "006A"}}).Err(); err != nil {
		t.Fatal(err)
	}
	f.expect(qStage, "003A")
}

// Activity older than the retention matches nothing, even for a person
// still in the universe, and leaves the index.
func TestViewActivityRetention(t *testing.T) {
	f := newViewFixture(t)
	f.v.cfg.ActivityRetention = 48 * time.Hour
	f.apply(
		f.opp(cdc.Create, "006A", "Amount", 5000, "StageName", "Prospecting"),
		f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A"),
	)
	f.run()
	f.expect(qAdded, "003A")
	f.ts += int64(47 * time.Hour / time.Millisecond)
	f.apply(f.opp(cdc.Update, "006A", "StageName", "Closed Won"))
	f.expect(qStage, "003A")
	f.clock = f.clock.Add(2 * time.Hour) // the added entry is now 49 hours old
	f.expect(qAdded, "")
	f.expect(qStage, "003A")
	f.v.trimAll()
	f.v.mu.RLock()
	n := len(decodeActivity(f.v.persons["003A"].acts, math.MinInt64, math.MaxInt64, math.MinInt64, 0xff, nil))
	f.v.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d entries kept after the trim, want 1", n)
	}
}

func TestActivityLogRoundTrip(t *testing.T) {
	acts := []replica.Activity{
		{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerUpdated, Opp: "006B", Field: "Amount", At: 300}, Old: cdc.Number(-1.5), New: cdc.Null},
		{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerAdded, Opp: "006A", RoleID: "00KA", Role: "Decision Maker", IsPrimary: true, At: 100}},
		{ActivityEntry: replica.ActivityEntry{Kind: "some_future_kind", Opp: "006C", At: 150}},
		{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerRemoved, Opp: "006A", Role: "", At: 200}},
		{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerUpdated, Opp: "006B", Field: "IsWon", At: 400}, Old: cdc.Bool(false), New: cdc.Bool(true)},
		{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerUpdated, Opp: "006B", Field: "CloseDate", At: 500},
			Old: cdc.Value{Kind: cdc.KindDate, Str: "2026-01-02"}, New: cdc.String(string(make([]byte, 300)))},
	}
	want := []filters.Activity{
		{Kind: cdc.TriggerAdded, OpportunityID: "006A", Role: "Decision Maker", IsPrimary: true, At: 100},
		{Kind: cdc.TriggerRemoved, OpportunityID: "006A", At: 200},
		{Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "Amount", Old: cdc.Number(-1.5), At: 300},
		{Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "IsWon", Old: cdc.Bool(false), New: cdc.Bool(true), At: 400},
		{Kind: cdc.TriggerUpdated, OpportunityID: "006B", Field: "CloseDate",
			Old: cdc.Value{Kind: cdc.KindDate, Str: "2026-01-02"}, New: cdc.String(string(make([]byte, 300))), At: 500},
	}
	if got := decodeActivity(encodeActivity(nil), math.MinInt64, math.MaxInt64, math.MinInt64, 0xff, nil); len(got) != 0 {
		t.Errorf("an empty log holds %v", got)
	}
	log := encodeActivity(acts)
	all := uint8(0xff)
	tests := []struct {
		name                 string
		since, until, cutoff int64
		mask                 uint8
		want                 []filters.Activity
	}{
		{"everything", math.MinInt64, math.MaxInt64, math.MinInt64, all, want},
		{"window", 150, 400, math.MinInt64, all, want[1:4]},
		{"cutoff", math.MinInt64, math.MaxInt64, 201, all, want[2:]},
		{"added only", math.MinInt64, math.MaxInt64, math.MinInt64, 1 << actAdded, want[:1]},
		{"updated only", 0, 300, 0, 1 << actUpdated, want[2:3]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeActivity(log, tt.since, tt.until, tt.cutoff, tt.mask, nil)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		cutoff int64
		kept   int
	}{{0, 5}, {100, 5}, {101, 4}, {500, 1}, {501, 0}} {
		trimmed, ok := trimActivity(log, tt.cutoff)
		got := decodeActivity(trimmed, math.MinInt64, math.MaxInt64, math.MinInt64, all, nil)
		if len(got) != tt.kept || ok != (tt.kept < 5) || (tt.kept > 0 && !reflect.DeepEqual(got, want[5-tt.kept:])) {
			t.Errorf("trim at %d: kept %+v (trimmed %v), want the last %d", tt.cutoff, got, ok, tt.kept)
		}
	}
}

// Past the shared names, and with times before the epoch, logs still
// read back exactly.
func TestActivityLogManyNames(t *testing.T) {
	var acts []replica.Activity
	var want []filters.Activity
	for i := range 2 * namesMax {
		role := fmt.Sprintf("role %d", i)
		at := int64(i*1000 - 100_000)
		acts = append(acts, replica.Activity{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerAdded, Opp: "006A", Role: role, At: at}})
		want = append(want, filters.Activity{Kind: cdc.TriggerAdded, OpportunityID: "006A", Role: role, At: at})
	}
	got := decodeActivity(encodeActivity(acts), math.MinInt64, math.MaxInt64, math.MinInt64, 0xff, nil)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %d entries, want %d (first %+v, want %+v)", len(got), len(want), got[0], want[0])
	}
}

// A log merged with what Redis holds from a time on equals the log of
// everything: entries before that time are kept, the rest replaced.
func TestMergeActivity(t *testing.T) {
	entry := func(at int64, role string) replica.Activity {
		return replica.Activity{ActivityEntry: replica.ActivityEntry{Kind: cdc.TriggerAdded, Opp: "006A", Role: role, At: at}}
	}
	stored := []replica.Activity{entry(100, "a"), entry(200, "b"), entry(300, "c")}
	tests := []struct {
		name  string
		since int64
		redis []replica.Activity // everything Redis holds now
	}{
		{"a late entry between two", 150, append(append([]replica.Activity{}, stored...), entry(150, "late"))},
		{"an entry at the same time", 200, append(append([]replica.Activity{}, stored...), entry(200, "same"))},
		{"a new last entry", 400, append(append([]replica.Activity{}, stored...), entry(400, "new"))},
		{"older than everything", 50, append(append([]replica.Activity{}, stored...), entry(50, "first"))},
		{"everything again", math.MinInt64, stored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var from []replica.Activity
			for _, a := range tt.redis {
				if a.At >= tt.since {
					from = append(from, a)
				}
			}
			got := mergeActivity(encodeActivity(append([]replica.Activity{}, stored...)), tt.since, from)
			want := encodeActivity(append([]replica.Activity{}, tt.redis...))
			all := func(log string) []filters.Activity {
				return decodeActivity(log, math.MinInt64, math.MaxInt64, math.MinInt64, 0xff, nil)
			}
			if !reflect.DeepEqual(all(got), all(want)) {
				t.Errorf("merged %+v\nwant   %+v", all(got), all(want))
			}
		})
	}
	if got := mergeActivity("", 100, []replica.Activity{entry(100, "x")}); len(decodeActivity(got, math.MinInt64, math.MaxInt64, math.MinInt64, 0xff, nil)) != 1 {
		t.Error("merging into an empty log lost the entry")
	}
}
