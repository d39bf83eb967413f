package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/cdctest"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
)

// fixture is a Store on the real test Redis with its own org.
type fixture struct {
	t     *testing.T
	s     *Store
	rdb   *redis.Client
	org   string
	off   int64
	clock time.Time
}

func newFixture(t *testing.T, mod ...func(*Config)) *fixture {
	rdb := testenv.NewRedis(t)
	f := &fixture{t: t, rdb: rdb, org: testenv.UniqueName(t, "org"), clock: time.UnixMilli(1_800_000_000_000)}
	cfg := Config{
		Org: f.org, Currency: "USD", IgnoreFields: []string{"LastModifiedDate"},
		PendingTimeout: 30 * time.Second, Now: func() time.Time { return f.clock },
	}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.s = s
	return f
}

var clockMillis atomic.Int64

func init() { clockMillis.Store(1_764_000_000_000) }

func event(entity string, ct cdc.ChangeType, ids []string, kv ...any) *cdc.Event {
	ts := clockMillis.Add(1000)
	return &cdc.Event{
		Entity: entity, ChangeType: ct, RecordIDs: ids,
		Version: cdc.Version{CommitTimestamp: ts, CommitNumber: ts, SequenceNumber: 1},
		Header:  cdc.EventHeader{TransactionKey: fmt.Sprintf("tx-%d", ts), SequenceNumber: 1, CommitUser: "005U", ChangeOrigin: "com/salesforce/api/rest/61.0"},
		Fields:  cdctest.Fields(kv...), SchemaID: entity + "-schema",
		Schema: []cdc.FieldInfo{{Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency"}},
	}
}

func oppEv(ct cdc.ChangeType, id string, kv ...any) *cdc.Event {
	return event(cdc.EntityOpportunity, ct, []string{id}, kv...)
}

func ocrEv(ct cdc.ChangeType, id string, kv ...any) *cdc.Event {
	return event(cdc.EntityContactRole, ct, []string{id}, kv...)
}

// items wraps events as consecutive messages of partition 0.
func (f *fixture) items(evs ...*cdc.Event) []Item {
	var out []Item
	for _, ev := range evs {
		out = append(out, Item{Msg: &cdc.Message{Topic: "t", Partition: 0, Offset: f.off}, Event: ev})
		f.off++
	}
	return out
}

func (f *fixture) apply(evs ...*cdc.Event) BatchResult {
	f.t.Helper()
	res, err := f.s.ApplyBatch(context.Background(), f.items(evs...))
	if err != nil {
		f.t.Fatalf("ApplyBatch: %v", err)
	}
	return res
}

// totals returns a person's aggregates as the API's view computes them
// (from the person's opportunity links and the opportunities).
func (f *fixture) totals(person string) filters.Totals {
	f.t.Helper()
	r := f.s.Replica()
	ids, _, err := r.PersonOpportunityIDs(context.Background(), person)
	if err != nil {
		f.t.Fatal(err)
	}
	groups, err := r.LoadGroups(context.Background(), ids)
	if err != nil {
		f.t.Fatal(err)
	}
	var opps []*filters.Opportunity
	for _, id := range ids {
		if o := filters.FromGroup(groups[id].Group, f.s.cur); !(o.Known && o.Deleted) {
			opps = append(opps, o)
		}
	}
	return filters.TotalsOf(person, opps)
}

// entries reads a stream as "field=value" maps.
func (f *fixture) entries(name string) []map[string]string {
	f.t.Helper()
	msgs, err := f.rdb.XRange(context.Background(), f.s.k.Stream(name), "-", "+").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	var out []map[string]string
	for _, m := range msgs {
		e := map[string]string{}
		for k, v := range m.Values {
			e[k] = fmt.Sprint(v)
		}
		out = append(out, e)
	}
	return out
}

func (f *fixture) triggerLines() []string {
	var out []string
	for _, kind := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		for _, e := range f.entries("triggers:" + kind) {
			switch kind {
			case cdc.TriggerUpdated:
				out = append(out, fmt.Sprintf("updated %s %s %s %s->%s", e["person_id"], e["opportunity_id"], e["field"], e["old_value"], e["new_value"]))
			default:
				out = append(out, fmt.Sprintf("%s %s %s %s %s primary=%s", strings.TrimSuffix(strings.Split(kind, "_")[0], ""), e["person_id"], e["opportunity_id"], e["contact_role_id"], e["reason"], e["is_primary"]))
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestApplyWritesStateAndTriggersTogether(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	res := f.apply(
		oppEv(cdc.Create, "006A", "Name", "Acme", "StageName", "Prospecting", "Amount", 1000, "Probability", 10, "ContactId", "003P", "CloseDate", cdc.DateFromDays(20818)),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", ""),
		ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003Q", "Role", "Decision Maker"),
		oppEv(cdc.Update, "006A", "StageName", "Closed Won", "LastModifiedDate", "2026-01-01T00:00:00.000Z"),
		ocrEv(cdc.Delete, "00KB"),
	)
	if res.Applied != 5 || res.Triggers[cdc.TriggerAdded] != 2 || res.Triggers[cdc.TriggerUpdated] != 2 || res.Triggers[cdc.TriggerRemoved] != 1 {
		t.Fatalf("BatchResult = %+v", res)
	}
	want := []string{
		"added 003P 006A 00KA contact_role_created primary=true",
		"added 003Q 006A 00KB contact_role_created primary=false",
		"removed 003Q 006A 00KB contact_role_deleted primary=false",
		`updated 003P 006A StageName "Prospecting"->"Closed Won"`,
		`updated 003Q 006A StageName "Prospecting"->"Closed Won"`,
	}
	if got := f.triggerLines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("triggers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Every entry carries the contract's common fields.
	e := f.entries("triggers:" + cdc.TriggerUpdated)[0]
	for _, k := range []string{"trigger", "event_id", "org_id", "person_id", "opportunity_id", "occurred_at", "transaction_key", "sequence_number", "commit_user", "change_origin", "currency", "opportunity", "field", "old_value", "new_value", "roles"} {
		if _, ok := e[k]; !ok {
			t.Errorf("updated entry lacks %q: %v", k, e)
		}
	}
	if e["org_id"] != f.org || e["currency"] != "USD" || !strings.HasSuffix(e["occurred_at"], "Z") || len(e["occurred_at"]) != len("2026-11-28T16:40:41.123Z") {
		t.Errorf("bad common fields: %v", e)
	}
	var snap map[string]any
	if err := json.Unmarshal([]byte(e["opportunity"]), &snap); err != nil {
		t.Fatalf("snapshot is not JSON: %v", err)
	}
	if snap["StageName"] != "Closed Won" || snap["Amount"] != 1000.0 || snap["ExpectedRevenue"] != 100.0 || snap["CloseDate"] != "2026-12-31" {
		t.Errorf("snapshot = %v", snap)
	}

	// The replica and the aggregates.
	g, ok, err := f.s.Replica().LoadGroup(ctx, "006A")
	if err != nil || !ok {
		t.Fatalf("LoadGroup: %v %v", ok, err)
	}
	if g.Opp.Fields["StageName"].Str != "Closed Won" || g.Opp.Fields["CloseDate"].Kind != cdc.KindDate || len(g.Roles) != 2 || !g.Roles["00KB"].Deleted {
		t.Fatalf("group = %+v roles %+v", g.Opp, g.Roles)
	}
	p, q := f.totals("003P"), f.totals("003Q")
	if p.Count != 1 || p.Amount != 1000 || q.Count != 0 {
		t.Fatalf("aggregates: count %v amount %v; 003Q count %v", p.Count, p.Amount, q.Count)
	}
	if pos := f.rdb.HGet(ctx, f.s.k.Positions(), "t/0").Val(); pos != "5" {
		t.Fatalf("position = %q, want 5", pos)
	}
}

func TestRedeliveryEmitsNothing(t *testing.T) {
	f := newFixture(t)
	evs := []*cdc.Event{
		oppEv(cdc.Create, "006A", "Name", "Acme", "ContactId", "003P"),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"),
		oppEv(cdc.Update, "006A", "StageName", "Qualification"),
	}
	f.apply(evs...)
	before := f.triggerLines()
	// The same events again at new offsets (Kafka or Salesforce redelivery).
	res := f.apply(evs...)
	if res.Duplicates != 3 || res.Applied != 0 || len(res.Triggers) != 0 {
		t.Fatalf("redelivery result = %+v", res)
	}
	// And again at the same offsets (consumer restarted before committing).
	f.off = 0
	res = f.apply(evs...)
	if res.Redelivered != 3 {
		t.Fatalf("same-offset redelivery result = %+v", res)
	}
	if after := f.triggerLines(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("redelivery changed the streams:\n%v\n%v", before, after)
	}
}

func TestScriptIsSafeToRunTwice(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme", "ContactId", "003P"))
	items := f.items(ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"))
	p, err := f.s.plan(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	txs := f.s.build(p, "t/0", "1", items)
	if len(txs) != 1 {
		t.Fatalf("%d scripts", len(txs))
	}
	// As go-redis does when a reply times out: the same call, twice.
	for i, want := range []int{scriptApplied, scriptPosConflict} {
		cmd := f.s.send(ctx, []*tx{txs[0]})[0]
		if n, _ := cmd.Int(); n != want {
			t.Fatalf("run %d returned %d, want %d", i, n, want)
		}
	}
	if n := f.rdb.XLen(ctx, f.s.k.Trigger(cdc.TriggerAdded)).Val(); n != 1 {
		t.Fatalf("%d added entries after running the script twice, want 1", n)
	}
	if c := f.rdb.HGet(ctx, f.s.k.Person("003P"), "006A").Val(); c != "1" {
		t.Fatalf("003P holds %q roles on 006A after running the script twice, want 1", c)
	}
	if c := f.totals("003P").Count; c != 1 {
		t.Fatalf("count aggregate %v after running the script twice, want 1", c)
	}

	// Without a position (imports, resyncs) the group revision refuses the
	// second call.
	items = f.items(ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003Q"))
	f.s.cache.clear() // the scripts above ran behind the cache's back
	p, err = f.s.plan(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	txs = f.s.build(p, "", "", items)
	for i, want := range []int{scriptApplied, scriptMoved} {
		cmd := f.s.send(ctx, []*tx{txs[0]})[0]
		if n, _ := cmd.Int(); n != want {
			t.Fatalf("unpositioned run %d returned %d, want %d", i, n, want)
		}
	}
	if n := f.rdb.XLen(ctx, f.s.k.Trigger(cdc.TriggerAdded)).Val(); n != 2 {
		t.Fatalf("%d added entries after running the call twice, want 2", n)
	}
}

func TestRewindWhenRedisLostWrites(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, ok, err := f.s.Position(ctx, "t", 0); ok || err != nil {
		t.Fatalf("fresh position: %v %v", ok, err)
	}
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme"), oppEv(cdc.Update, "006A", "Name", "B"))
	// Redis comes back from an older snapshot: position 1.
	f.rdb.HSet(ctx, f.s.k.Positions(), "t/0", "1")
	_, err := f.s.ApplyBatch(ctx, f.items(oppEv(cdc.Update, "006A", "Name", "C")))
	var rw *RewindError
	if !errors.As(err, &rw) || rw.Offset != 1 || rw.Topic != "t" {
		t.Fatalf("err = %v, want a rewind to 1", err)
	}
}

func TestDeadLettersAndSkipsAdvanceThePosition(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	items := []Item{
		{Msg: &cdc.Message{Topic: "t", Offset: 0, Key: []byte("k"), Value: []byte{1, 2, 3}, Headers: []cdc.Header{{Key: "sf-schema-id", Value: []byte("abc")}}},
			DeadLetter: &DeadLetter{Stage: "decode", Reason: "malformed_avro", Error: "truncated"}},
		{Msg: &cdc.Message{Topic: "t", Offset: 1}, Event: event("Account", cdc.Create, []string{"001A"})},
		{Msg: &cdc.Message{Topic: "t", Offset: 2}, Event: oppEv(cdc.GapOverflow, cdc.OverflowRecordID)},
		{Msg: &cdc.Message{Topic: "t", Offset: 3}, Event: oppEv(cdc.GapUpdate, "006Z")},
		{Msg: &cdc.Message{Topic: "t", Offset: 4}},
	}
	res, err := f.s.ApplyBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeadLetters["decode"] != 1 || res.Resync[cdc.EntityOpportunity] != 2 {
		t.Fatalf("result = %+v", res)
	}
	dlq := f.entries(replica.StreamDLQ)
	if len(dlq) != 1 || dlq[0]["reason"] != "malformed_avro" || dlq[0]["value"] != "AQID" || dlq[0]["stage"] != "decode" || dlq[0]["key"] != "aw==" || dlq[0]["offset"] != "0" {
		t.Fatalf("dlq = %v", dlq)
	}
	rs := f.entries(replica.StreamResync)
	if len(rs) != 2 || rs[1]["record_ids"] != `["006Z"]` || rs[1]["change_type"] != "GAP_UPDATE" {
		t.Fatalf("resync = %v", rs)
	}
	if pos := f.rdb.HGet(ctx, f.s.k.Positions(), "t/0").Val(); pos != "5" {
		t.Fatalf("position = %q, want 5", pos)
	}
	st, err := f.s.Stats(ctx)
	if err != nil || st.StaleRecords != 1 {
		t.Fatalf("stats = %+v %v", st, err)
	}
}

func TestPendingRoleReleasedAtTimeout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Evaluator"))
	if n, _ := f.s.ReleaseExpired(ctx, 10); n != 0 {
		t.Fatalf("released %d before the deadline", n)
	}
	if st, _ := f.s.Stats(ctx); st.PendingRoles != 1 {
		t.Fatalf("pending = %d", st.PendingRoles)
	}
	f.clock = f.clock.Add(31 * time.Second)
	if n, err := f.s.ReleaseExpired(ctx, 10); n != 1 || err != nil {
		t.Fatalf("released %d, %v; want 1", n, err)
	}
	if n, _ := f.s.ReleaseExpired(ctx, 10); n != 0 {
		t.Fatalf("released again: %d", n)
	}
	added := f.entries("triggers:" + cdc.TriggerAdded)
	if len(added) != 1 || added[0]["opportunity"] != "null" || added[0]["role"] != "Evaluator" {
		t.Fatalf("added = %v", added)
	}
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme"))
	if n := len(f.entries("triggers:" + cdc.TriggerAdded)); n != 1 {
		t.Fatalf("%d added entries after the opportunity arrived, want 1", n)
	}
	if c := f.totals("003P").Count; c != 1 {
		t.Fatalf("count = %v", c)
	}
}

// Two partitions change the same opportunity group concurrently: batches
// applied at once run one at a time, so neither recomputes, and nothing is
// lost.
func TestConcurrentPartitionsOnOneGroup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme", "Amount", 10))
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for part := 1; part <= 2; part++ {
		wg.Add(1)
		go func(part int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				id := fmt.Sprintf("00K%dx%03d", part, i)
				ev := ocrEv(cdc.Create, id, "OpportunityId", "006A", "ContactId", fmt.Sprintf("003%dx%03d", part, i))
				item := Item{Msg: &cdc.Message{Topic: "t", Partition: part, Offset: int64(i)}, Event: ev}
				res, err := f.s.ApplyBatch(ctx, []Item{item})
				if err != nil {
					errs <- err
					return
				}
				if res.Conflicts != 0 { // batches applied at once run one at a time
					errs <- fmt.Errorf("partition %d offset %d: %d conflicts", part, i, res.Conflicts)
					return
				}
			}
		}(part)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := f.rdb.XLen(ctx, f.s.k.Trigger(cdc.TriggerAdded)).Val(); got != 2*n {
		t.Fatalf("%d added entries, want %d", got, 2*n)
	}
	g, _, _ := f.s.Replica().LoadGroup(ctx, "006A")
	if len(g.Roles) != 2*n {
		t.Fatalf("%d roles, want %d", len(g.Roles), 2*n)
	}
	for part := 1; part <= 2; part++ {
		for i := 0; i < n; i++ {
			p := fmt.Sprintf("003%dx%03d", part, i)
			if got := f.totals(p); got.Count != 1 || got.Amount != 10 {
				t.Fatalf("%s: aggregates %+v, want count 1 amount 10", p, got)
			}
		}
	}
}

func TestCurrencyConversion(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Rates = map[string]float64{"EUR": 2} })
	f.apply(
		oppEv(cdc.Create, "006A", "Name", "Acme", "Amount", 100, "Probability", 50, "CurrencyIsoCode", "EUR"),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"),
	)
	if a := f.totals("003P").Amount; a != 200 {
		t.Fatalf("converted amount = %v, want 200", a)
	}
	if e := f.totals("003P").Expected; e != 100 {
		t.Fatalf("converted expected revenue = %v, want 100", e)
	}
	var snap map[string]any
	_ = json.Unmarshal([]byte(f.entries("triggers:" + cdc.TriggerAdded)[0]["opportunity"]), &snap)
	if snap["Amount"] != 200.0 || snap["OriginalAmount"] != 100.0 || snap["CurrencyIsoCode"] != "EUR" {
		t.Fatalf("snapshot = %v", snap)
	}
}

func TestPruneActivity(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ActivityRetention = time.Hour })
	ctx := context.Background()
	f.apply(
		oppEv(cdc.Create, "006A", "Name", "Acme"),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"),
		ocrEv(cdc.Create, "00KB", "OpportunityId", "006A", "ContactId", "003Q"),
		ocrEv(cdc.Delete, "00KB"),
	)
	if n := f.rdb.ZCard(ctx, f.s.k.Activity("003Q")).Val(); n != 2 {
		t.Fatalf("003Q activity = %d entries, want 2", n)
	}
	// Two hours later everything is older than the retention.
	f.clock = time.UnixMilli(clockMillis.Load()).Add(2 * time.Hour)
	removed, err := f.s.PruneActivity(ctx)
	if err != nil || removed != 3 {
		t.Fatalf("PruneActivity removed %d, %v; want 3", removed, err)
	}
	people := f.rdb.ZRange(ctx, f.s.k.People(), 0, -1).Val()
	if len(people) != 1 || people[0] != "003P" {
		t.Fatalf("people after pruning = %v, want only 003P (who still holds a role)", people)
	}
}

func TestDeleteClearsTheStaleIndex(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme"), oppEv(cdc.GapUpdate, "006A"))
	if st, _ := f.s.Stats(ctx); st.StaleRecords != 1 {
		t.Fatalf("stale records after a gap = %d, want 1", st.StaleRecords)
	}
	f.apply(oppEv(cdc.Delete, "006A"))
	if st, _ := f.s.Stats(ctx); st.StaleRecords != 0 {
		t.Fatalf("stale records after the delete = %d, want 0", st.StaleRecords)
	}
}

// A message with more record changes than a call takes spans calls; when
// another writer moves a group of the first one, nothing of the message is
// lost: the calls after it must not apply (and move the position past the
// message) while it did not.
func TestSplitMessageIsNotLostOnConflict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before int // single-record messages in the batch before the big one
		ids    []string
	}{
		{"more changes than a call takes", 0, []string{"006A", "006B", "006C"}},
		{"exactly a call's changes", 0, []string{"006A", "006B"}},
		{"after a completed message", 1, []string{"006A", "006B", "006C", "006D", "006E"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			var setup []*cdc.Event
			for _, id := range tc.ids {
				setup = append(setup, oppEv(cdc.Create, id, "Name", id))
			}
			f.apply(setup...)
			f.s.txChanges = 2
			var evs []*cdc.Event
			for i := 0; i < tc.before; i++ {
				evs = append(evs, oppEv(cdc.Update, tc.ids[len(tc.ids)-1], "Name", "renamed"))
			}
			evs = append(evs, event(cdc.EntityOpportunity, cdc.Update, tc.ids, "StageName", "Won"))
			moved := false
			testHookBuild = func(Item) {
				if !moved { // another writer changes the first group, once
					moved = true
					f.rdb.HIncrBy(ctx, f.s.k.Revs(), tc.ids[0], 1)
				}
			}
			defer func() { testHookBuild = nil }()
			if _, err := f.s.ApplyBatch(ctx, f.items(evs...)); err != nil {
				t.Fatal(err)
			}
			for _, id := range tc.ids {
				g, _, err := f.s.Replica().LoadGroup(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got := g.Opp.Fields["StageName"].Str; got != "Won" {
					t.Errorf("%s: StageName %q, want Won: the change was lost", id, got)
				}
			}
		})
	}
}
