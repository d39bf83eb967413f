package retention_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/cdctest"
	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/retention"
	"github.com/oppsync/oppsync/pkg/state"
)

const maxLen = 100

// env writes trigger entries through the real apply path (state.Store) for
// its own org, and trims that org's streams.
type env struct {
	t      *testing.T
	ctx    context.Context
	rdb    *redis.Client
	store  *state.Store
	trim   *retention.Trimmer
	reg    *prometheus.Registry
	key    string // the added_to_opportunity stream
	off    int64
	roles  int
	clock  int64
	opp    string
	budget int
}

func newEnv(t *testing.T, budget int) *env {
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "org")
	e := &env{t: t, ctx: context.Background(), rdb: rdb, reg: prometheus.NewRegistry(),
		clock: 1_764_000_000_000, opp: "006000000000000001", budget: budget}
	e.store = inproc.Store(t, rdb, state.Config{Org: org, Currency: "USD"})
	streams := replica.OutputStreams(org)
	e.key = streams[cdc.TriggerAdded]
	tr, err := retention.New(retention.Config{Streams: streams, MaxLen: maxLen, ReadBudget: budget}, rdb, e.reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	e.trim = tr
	t.Cleanup(func() {
		keys := make([]string, 0, len(streams))
		for _, k := range streams {
			keys = append(keys, k)
		}
		_ = rdb.Del(context.Background(), keys...).Err()
	})
	return e
}

func (e *env) event(entity string, ct cdc.ChangeType, id string, kv ...any) state.Item {
	e.clock += 1000
	ev := &cdc.Event{
		Entity: entity, ChangeType: ct, RecordIDs: []string{id},
		Version:  cdc.Version{CommitTimestamp: e.clock, CommitNumber: e.clock, SequenceNumber: 1},
		Header:   cdc.EventHeader{TransactionKey: fmt.Sprintf("tx-%d", e.clock), SequenceNumber: 1, CommitUser: "005000000000000001"},
		Fields:   cdctest.Fields(kv...),
		SchemaID: entity + "-schema",
	}
	it := state.Item{Msg: &cdc.Message{Topic: "t", Partition: 0, Offset: e.off}, Event: ev}
	e.off++
	return it
}

// write adds n added_to_opportunity entries: one contact role created per
// entry, on one opportunity.
func (e *env) write(n int) {
	e.t.Helper()
	var items []state.Item
	if e.roles == 0 {
		items = append(items, e.event(cdc.EntityOpportunity, cdc.Create, e.opp, "Name", "Acme", "Amount", 1000))
	}
	for range n {
		e.roles++
		items = append(items, e.event(cdc.EntityContactRole, cdc.Create, fmt.Sprintf("00K%015d", e.roles),
			"OpportunityId", e.opp, "ContactId", fmt.Sprintf("003%015d", e.roles), "Role", "Decision Maker"))
	}
	res, err := e.store.ApplyBatch(e.ctx, items)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.Triggers[cdc.TriggerAdded] != n {
		e.t.Fatalf("wrote %d added entries, want %d", res.Triggers[cdc.TriggerAdded], n)
	}
}

// pass trims once and returns what it found of the added stream.
func (e *env) pass() retention.Stream {
	e.t.Helper()
	res, err := e.trim.Trim(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range res {
		if s.Name == cdc.TriggerAdded {
			return s
		}
	}
	e.t.Fatalf("no result for %s in %+v", cdc.TriggerAdded, res)
	return retention.Stream{}
}

func (e *env) ids() []string {
	e.t.Helper()
	msgs, err := e.rdb.XRange(e.ctx, e.key, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func (e *env) group(name, start string) {
	e.t.Helper()
	if err := e.rdb.XGroupCreateMkStream(e.ctx, e.key, name, start).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// read delivers up to n new entries to group and acknowledges the first ack
// of them; it returns the ids delivered.
func (e *env) read(group string, n, ack int) []string {
	e.t.Helper()
	res, err := e.rdb.XReadGroup(e.ctx, &redis.XReadGroupArgs{Group: group, Consumer: "c1",
		Streams: []string{e.key, ">"}, Count: int64(n), Block: -1}).Result()
	if err != nil && err != redis.Nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, s := range res {
		for _, m := range s.Messages {
			ids = append(ids, m.ID)
		}
	}
	if ack > 0 {
		if err := e.rdb.XAck(e.ctx, e.key, group, ids[:ack]...).Err(); err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

// readAll delivers and acknowledges everything left for group.
func (e *env) readAll(group string) {
	e.t.Helper()
	pend, err := e.rdb.XPendingExt(e.ctx, &redis.XPendingExtArgs{Stream: e.key, Group: group, Start: "-", End: "+", Count: 1 << 20}).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pend {
		if err := e.rdb.XAck(e.ctx, e.key, group, p.ID).Err(); err != nil {
			e.t.Fatal(err)
		}
	}
	for {
		ids := e.read(group, 500, 0)
		if len(ids) == 0 {
			return
		}
		if err := e.rdb.XAck(e.ctx, e.key, group, ids...).Err(); err != nil {
			e.t.Fatal(err)
		}
	}
}

// unacked returns the ids of the entries group has not acknowledged: those
// pending and those after its last-delivered-id.
func (e *env) unacked(group string) []string {
	e.t.Helper()
	var out []string
	pend, err := e.rdb.XPendingExt(e.ctx, &redis.XPendingExtArgs{Stream: e.key, Group: group, Start: "-", End: "+", Count: 1 << 20}).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pend {
		out = append(out, p.ID)
	}
	groups, err := e.rdb.XInfoGroups(e.ctx, e.key).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		after, err := e.rdb.XRange(e.ctx, e.key, "("+g.LastDeliveredID, "+").Result()
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range after {
			out = append(out, m.ID)
		}
	}
	return out
}

// nodeEntries is how many entries one stream macro node holds at most:
// approximate trimming keeps up to that many beyond its target.
func (e *env) nodeEntries() int {
	e.t.Helper()
	v, err := e.rdb.ConfigGet(e.ctx, "stream-node-max-entries").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	n, err := strconv.Atoi(v["stream-node-max-entries"])
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// aboutMaxLen checks the stream holds maxLen entries, give or take the
// macro node that approximate trimming keeps.
func (e *env) aboutMaxLen() {
	e.t.Helper()
	n := len(e.ids())
	if n < maxLen || n >= maxLen+e.nodeEntries() {
		e.t.Fatalf("stream holds %d entries, want %d..%d (maxlen plus less than one macro node)", n, maxLen, maxLen+e.nodeEntries()-1)
	}
}

func groupOf(t *testing.T, s retention.Stream, name string) retention.Group {
	t.Helper()
	for _, g := range s.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %q in %+v", name, s)
	return retention.Group{}
}

func missing(have, want []string) []string {
	var out []string
	for _, id := range want {
		if !slices.Contains(have, id) {
			out = append(out, id)
		}
	}
	return out
}

// TestStuckGroupLosesNothing is issue 14 case 7: a group reads and
// acknowledges some entries, then stops reading while 3×maxlen entries are
// written through the apply path and trimmed every 25 entries; nothing it
// has not acknowledged disappears. Once it has read everything, the stream
// is trimmed back to about maxlen.
func TestStuckGroupLosesNothing(t *testing.T) {
	e := newEnv(t, 0)
	e.write(50)
	e.group("campaigns", "0")
	if got := e.read("campaigns", 30, 20); len(got) != 30 {
		t.Fatalf("read %d entries, want 30", len(got))
	}
	want := e.unacked("campaigns") // 10 pending, 20 undelivered
	for range 3 * maxLen / 25 {
		e.write(25)
		want = append(want, e.ids()[len(e.ids())-25:]...)
		e.pass()
		if m := missing(e.ids(), want); len(m) > 0 {
			t.Fatalf("trimming removed %d entries the group has not acknowledged, first %s", len(m), m[0])
		}
	}
	s := e.pass()
	g := groupOf(t, s, "campaigns")
	if g.Pending != 10 || g.Undelivered != 20+3*maxLen || !g.Exact || g.Lag() != 330 {
		t.Errorf("group = %+v, want 10 pending, 320 undelivered (lag 330)", g)
	}
	if got := gauge(t, e.reg, "oppsync_stream_group_lag", cdc.TriggerAdded, "campaigns"); got != 330 {
		t.Errorf("oppsync_stream_group_lag = %v, want 330", got)
	}
	if got := gauge(t, e.reg, "oppsync_stream_length", cdc.TriggerAdded); got != float64(s.Length) || s.Length < 330 {
		t.Errorf("oppsync_stream_length = %v (pass says %d), want at least 330", got, s.Length)
	}

	e.readAll("campaigns")
	s = e.pass()
	if s.Removed == 0 || groupOf(t, s, "campaigns").Lag() != 0 {
		t.Errorf("after the group caught up: %+v, want a cut and no lag", s)
	}
	e.aboutMaxLen()
	if got := gauge(t, e.reg, "oppsync_stream_group_lag", cdc.TriggerAdded, "campaigns"); got != 0 {
		t.Errorf("oppsync_stream_group_lag = %v, want 0", got)
	}
}

// TestNoGroupTrimsToMaxLen: without consumer groups the stream is kept at
// about maxlen, and the apply path itself no longer trims.
func TestNoGroupTrimsToMaxLen(t *testing.T) {
	e := newEnv(t, 0)
	e.write(3 * maxLen)
	if n := len(e.ids()); n != 3*maxLen {
		t.Fatalf("the apply path left %d entries, want all %d", n, 3*maxLen)
	}
	s := e.pass()
	if s.Removed == 0 {
		t.Errorf("pass = %+v, want a cut", s)
	}
	e.aboutMaxLen()
	// A short stream is left alone.
	e2 := newEnv(t, 0)
	e2.write(maxLen / 2)
	if s := e2.pass(); s.Removed != 0 || s.Length != maxLen/2 {
		t.Errorf("short stream: %+v, want untouched", s)
	}
}

// TestFastAndStuckGroups: a group that keeps up does not let the stream
// drop what a stuck one still needs; once the stuck group is destroyed the
// stream returns to about maxlen.
func TestFastAndStuckGroups(t *testing.T) {
	e := newEnv(t, 0)
	e.write(10)
	e.group("fast", "0")
	e.group("stuck", "0")
	e.read("stuck", 5, 0) // 5 pending, never acknowledged
	want := e.unacked("stuck")
	for range 6 {
		e.write(50)
		e.readAll("fast")
		e.pass()
	}
	if m := missing(e.ids(), want); len(m) > 0 {
		t.Fatalf("trimming removed %d entries the stuck group has not acknowledged, first %s", len(m), m[0])
	}
	s := e.pass()
	if f, st := groupOf(t, s, "fast"), groupOf(t, s, "stuck"); f.Lag() != 0 || st.Pending != 5 || st.Undelivered != 305 {
		t.Errorf("fast %+v, stuck %+v: want lag 0 and 5 pending + 305 undelivered", f, st)
	}
	if n := len(e.ids()); n != 310 {
		t.Errorf("stream holds %d entries, want all 310 (the stuck group needs them)", n)
	}
	if err := e.rdb.XGroupDestroy(e.ctx, e.key, "stuck").Err(); err != nil {
		t.Fatal(err)
	}
	e.pass()
	e.aboutMaxLen()
	if _, ok := lookup(t, e.reg, "oppsync_stream_group_lag", cdc.TriggerAdded, "stuck"); ok {
		t.Error("the destroyed group still has a lag series")
	}
}

// TestGroupEdgeCases covers groups whose last-delivered-id or pending list
// are unusual.
func TestGroupEdgeCases(t *testing.T) {
	t.Run("created with $ on an empty stream", func(t *testing.T) {
		e := newEnv(t, 0)
		e.group("late", "$") // last-delivered-id 0-0, entries-read 0
		e.write(3 * maxLen)
		s := e.pass()
		if g := groupOf(t, s, "late"); g.Undelivered != 3*maxLen || !g.Exact {
			t.Errorf("group = %+v, want %d undelivered", g, 3*maxLen)
		}
		if n := len(e.ids()); n != 3*maxLen || s.Removed != 0 {
			t.Errorf("stream holds %d entries (%d removed), want all %d", n, s.Removed, 3*maxLen)
		}
	})
	t.Run("consumer deleted with entries pending", func(t *testing.T) {
		e := newEnv(t, 0)
		e.write(50)
		e.group("g", "0")
		e.read("g", 30, 0)
		// Deleting a consumer drops its pending entries from the group: they
		// count as acknowledged, what follows the last delivered one does not.
		if err := e.rdb.XGroupDelConsumer(e.ctx, e.key, "g", "c1").Err(); err != nil {
			t.Fatal(err)
		}
		want := e.unacked("g")
		e.write(3 * maxLen)
		want = append(want, e.ids()[len(e.ids())-3*maxLen:]...)
		s := e.pass()
		if m := missing(e.ids(), want); len(m) > 0 {
			t.Fatalf("trimming removed %d undelivered entries, first %s", len(m), m[0])
		}
		if g := groupOf(t, s, "g"); g.Pending != 0 || g.Undelivered != 20+3*maxLen {
			t.Errorf("group = %+v, want 0 pending, %d undelivered", g, 20+3*maxLen)
		}
	})
	t.Run("entry deleted after the last delivered one", func(t *testing.T) {
		e := newEnv(t, 0)
		e.write(50)
		e.group("g", "0")
		e.read("g", 10, 10)
		// XDEL leaves a tombstone: Redis no longer counts the lag, the
		// script does.
		if err := e.rdb.XDel(e.ctx, e.key, e.ids()[20]).Err(); err != nil {
			t.Fatal(err)
		}
		e.write(200)
		s := e.pass()
		if g := groupOf(t, s, "g"); g.Undelivered != 239 || !g.Exact {
			t.Errorf("group = %+v, want 239 undelivered, counted exactly", g)
		}
		if n := len(e.ids()); n < 239 {
			t.Errorf("stream holds %d entries, want at least the 239 undelivered", n)
		}
	})
	t.Run("undelivered too many to count after a deletion", func(t *testing.T) {
		e := newEnv(t, 10)
		e.write(50)
		e.group("g", "0")
		e.group("h", "0")
		e.read("g", 10, 10)
		e.read("h", 5, 5)
		if err := e.rdb.XDel(e.ctx, e.key, e.ids()[20]).Err(); err != nil {
			t.Fatal(err)
		}
		want := e.unacked("h")
		e.write(3 * maxLen)
		want = append(want, e.ids()[len(e.ids())-3*maxLen:]...)
		s := e.pass()
		// The budget (10) cannot count the 339 and 344 entries (and is
		// spent by the first group): the stream's length before the pass is
		// the upper bound reported.
		for _, name := range []string{"g", "h"} {
			if g := groupOf(t, s, name); g.Undelivered != s.Length+s.Removed || g.Exact {
				t.Errorf("group = %+v, want the upper bound %d, not exact", g, s.Length+s.Removed)
			}
		}
		if m := missing(e.ids(), want); len(m) > 0 {
			t.Fatalf("trimming removed %d undelivered entries, first %s", len(m), m[0])
		}
	})
	t.Run("one old entry pending, the rest acknowledged", func(t *testing.T) {
		e := newEnv(t, 0)
		e.write(3 * maxLen)
		e.group("g", "0")
		ids := e.read("g", 3*maxLen, 0)
		var ack []string
		for i, id := range ids {
			if i != 150 {
				ack = append(ack, id)
			}
		}
		if err := e.rdb.XAck(e.ctx, e.key, "g", ack...).Err(); err != nil {
			t.Fatal(err)
		}
		// The 150 entries from the pending one on stay (more than maxlen),
		// those before it go.
		s := e.pass()
		if m := missing(e.ids(), ids[150:]); len(m) > 0 {
			t.Fatalf("trimming removed %d entries from the pending one on, first %s", len(m), m[0])
		}
		if n := len(e.ids()); s.Removed == 0 || n >= 150+e.nodeEntries() {
			t.Errorf("stream holds %d entries (%d removed), want the 150 needed plus less than a macro node", n, s.Removed)
		}
		if g := groupOf(t, s, "g"); g.Pending != 1 || g.Undelivered != 0 {
			t.Errorf("group = %+v, want 1 pending, 0 undelivered", g)
		}
	})
}

// TestGroupLabelsBounded: 20 valid groups and one whose name is no valid
// label give 16 labelled series and "other" summing the rest; a group that
// disappears loses its series.
func TestGroupLabelsBounded(t *testing.T) {
	e := newEnv(t, 0)
	e.write(40)
	lags := map[string]float64{}
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("g%02d", i))
	}
	names = append(names, "bad name\xff")
	for i, n := range names {
		e.group(n, "0")
		e.read(n, i+1, i) // one pending, 40-i-1 undelivered
		lags[n] = float64(40 - i)
	}
	e.pass()
	series := lagSeries(t, e.reg, cdc.TriggerAdded)
	want := map[string]float64{"other": 0}
	for i, n := range names {
		if i < 16 {
			want[n] = lags[n]
		} else {
			want["other"] += lags[n]
		}
	}
	if fmt.Sprint(series) != fmt.Sprint(want) {
		t.Errorf("lag series %v, want %v", series, want)
	}

	if err := e.rdb.XGroupDestroy(e.ctx, e.key, "g00").Err(); err != nil {
		t.Fatal(err)
	}
	e.pass()
	delete(want, "g00")
	want["g16"] = lags["g16"]
	want["other"] -= lags["g16"]
	if series := lagSeries(t, e.reg, cdc.TriggerAdded); fmt.Sprint(series) != fmt.Sprint(want) {
		t.Errorf("after destroying g00: lag series %v, want %v", series, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  retention.Config
		want string
	}{
		{"no streams", retention.Config{MaxLen: 1}, "retention: no streams"},
		{"bad name", retention.Config{Streams: map[string]string{"Bad-Name": "k"}, MaxLen: 1}, `retention: stream "Bad-Name" (key "k"): want a name of [a-z_] and a key`},
		{"no key", retention.Config{Streams: map[string]string{"dlq": ""}, MaxLen: 1}, `retention: stream "dlq" (key ""): want a name of [a-z_] and a key`},
		{"maxlen", retention.Config{Streams: map[string]string{"dlq": "k"}}, "streams.maxlen: must be positive, got 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	c := retention.Config{Streams: map[string]string{"dlq": "k"}, MaxLen: 1}
	if err := c.Validate(); err != nil || c.Interval != 0 {
		t.Errorf("Validate() = %v, config after %+v: want nil and the config unchanged", err, c)
	}
	if d := c.WithDefaults(); d.Interval != 5*time.Second || d.ReadBudget != 1000 {
		t.Errorf("defaults: %+v", d)
	}
}

// lookup finds the series of name with the values of its stream and group
// labels (in that order).
func lookup(t *testing.T, reg *prometheus.Registry, name string, values ...string) (float64, bool) {
	t.Helper()
	for _, m := range family(t, reg, name) {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		got := []string{l["stream"]}
		if g, ok := l["group"]; ok {
			got = append(got, g)
		}
		if slices.Equal(got, values) {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func gauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	v, ok := lookup(t, reg, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func family(t *testing.T, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

// lagSeries maps group label → lag for one stream.
func lagSeries(t *testing.T, reg *prometheus.Registry, stream string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range family(t, reg, "oppsync_stream_group_lag") {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["stream"] == stream {
			out[l["group"]] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestRunTrimsUntilCancelled: Run makes passes until its context ends, then
// returns nil.
func TestRunTrimsUntilCancelled(t *testing.T) {
	e := newEnv(t, 0)
	e.write(3 * maxLen)
	reg := prometheus.NewRegistry()
	tr, err := retention.New(retention.Config{Streams: map[string]string{cdc.TriggerAdded: e.key}, MaxLen: maxLen,
		Interval: 10 * time.Millisecond}, e.rdb, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n, ok := lookup(t, reg, "oppsync_stream_length", cdc.TriggerAdded)
		return ok && n < 3*maxLen, fmt.Sprintf("oppsync_stream_length = %v (reported: %v)", n, ok)
	})
	e.aboutMaxLen()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil on cancellation", err)
	}
}
