package state

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/synth"
)

// Merging the writes of many record changes into one script call must be
// unobservable: the same traffic applied one change per call and 64 changes
// per call leaves the same keys, values, aggregates and trigger entries.
func TestMergedCallsWriteWhatSingleCallsWrite(t *testing.T) {
	gen := synth.NewGenerator(synth.GenConfig{Org: "merge", Seed: 7, Opportunities: 40, Start: time.UnixMilli(1_764_000_000_000), NoOracle: true})
	var evs []*cdc.Event
	for len(evs) < 3000 {
		ch := gen.Next()
		evs = append(evs, &cdc.Event{Entity: ch.Entity, ChangeType: ch.Type, RecordIDs: ch.RecordIDs,
			Version: ch.Version, Header: ch.Header, Fields: ch.Fields})
	}
	run := func(f *fixture) {
		for from := 0; from < len(evs); from += 500 {
			f.apply(evs[from:min(from+500, len(evs))]...)
		}
	}
	// The same org both times (event ids depend on it), one after the other.
	single := newFixture(t, func(c *Config) { c.CacheGroups = -1 })
	single.s.txChanges = 1
	run(single)
	a := dumpOrg(t, single)
	singleNotes := len(single.entries(StreamChanges))
	ctx := context.Background()
	for _, k := range single.rdb.Keys(ctx, single.s.k.prefix+"*").Val() {
		single.rdb.Del(ctx, k)
	}
	merged := newFixture(t, func(c *Config) { c.Org = single.org })
	run(merged)
	b := dumpOrg(t, merged)
	if len(a) < 100 {
		t.Fatalf("only %d keys written: the traffic exercised too little", len(a))
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			t.Errorf("key %s written one change per call only", k)
			continue
		}
		if !reflect.DeepEqual(va, vb) {
			t.Errorf("key %s differs:\n one per call: %.400v\n merged:       %.400v", k, va, vb)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("key %s written by merged calls only", k)
		}
	}
	if n := len(merged.entries(StreamChanges)); n >= singleNotes || n == 0 {
		t.Errorf("%d changes entries for merged calls, %d for single ones: expected fewer, not none", n, singleNotes)
	}
}

// dumpOrg reads every key of the fixture's org (but the changes stream,
// whose entries group by call on purpose) into comparable values: hashes as
// maps, sets as sorted lists, sorted sets as member → score (rounded to
// 1e-6: increments may add up in another order), streams as their entries'
// fields in order.
func dumpOrg(t *testing.T, f *fixture) map[string]any {
	t.Helper()
	ctx := context.Background()
	prefix := f.s.k.prefix
	keys, err := f.rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		name := strings.TrimPrefix(k, prefix)
		if name == StreamChanges {
			continue
		}
		typ := f.rdb.Type(ctx, k).Val()
		switch typ {
		case "hash":
			out[name] = f.rdb.HGetAll(ctx, k).Val()
		case "set":
			m := f.rdb.SMembers(ctx, k).Val()
			sort.Strings(m)
			out[name] = m
		case "zset":
			m := map[string]float64{}
			for _, z := range f.rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				m[z.Member.(string)] = math.Round(z.Score*1e6) / 1e6
			}
			out[name] = m
		case "stream":
			var entries []string
			for _, m := range f.rdb.XRange(ctx, k, "-", "+").Val() {
				entries = append(entries, fmt.Sprint(m.Values))
			}
			out[name] = entries
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
	}
	return out
}

// Commands with more arguments than Lua can unpack at once are split, and
// nothing is lost: flags stay on every part, pairs stay whole.
func TestLargeCommandsAreSplit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tx := newTx(f.s.k, "", "")
	const n = 3*maxCommandArgs + 7
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("003%06d", i)
		tx.zaddGT(f.s.k.people(), int64(1000+i), p)
		tx.hset(f.s.k.person("003P"), p, "1")
		tx.sadd(f.s.k.opps(), p)
		tx.zincrby(f.s.k.agg(AggCount), 1, p)
	}
	pipe := f.rdb.Pipeline()
	cmd := tx.run(ctx, pipe, f.s.k.stream(StreamChanges))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := cmd.Int(); err != nil || r != scriptApplied {
		t.Fatalf("script returned %v, %v", r, err)
	}
	if c := f.rdb.ZCard(ctx, f.s.k.people()).Val(); c != n {
		t.Fatalf("%d people, want %d", c, n)
	}
	if s := f.rdb.ZScore(ctx, f.s.k.people(), fmt.Sprintf("003%06d", n-1)).Val(); s != float64(1000+n-1) {
		t.Fatalf("last person's score %v", s)
	}
	if c := f.rdb.HLen(ctx, f.s.k.person("003P")).Val(); c != n {
		t.Fatalf("%d hash fields, want %d", c, n)
	}
	if c := f.rdb.SCard(ctx, f.s.k.opps()).Val(); c != n {
		t.Fatalf("%d set members, want %d", c, n)
	}
	// GT held on every part: a lower score does not lower it.
	tx = newTx(f.s.k, "", "")
	for i := 0; i < n; i++ {
		tx.zaddGT(f.s.k.people(), 1, fmt.Sprintf("003%06d", i))
	}
	pipe = f.rdb.Pipeline()
	tx.run(ctx, pipe, f.s.k.stream(StreamChanges))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if s := f.rdb.ZScore(ctx, f.s.k.people(), fmt.Sprintf("003%06d", n-1)).Val(); s != float64(1000+n-1) {
		t.Fatalf("GT lost on a split part: score %v", s)
	}
}
