package state

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/replica"
)

// Merging the writes of many record changes into one script call must be
// unobservable: the same traffic applied one change per call and 64 changes
// per call leaves the same keys, values, aggregates and trigger entries.
func TestMergedCallsWriteWhatSingleCallsWrite(t *testing.T) {
	evs := generated(3000, 40)
	var singleNotes int
	merged := sameKeys(t, func(f *fixture) {
		f.s.txChanges = 1
		for _, b := range split(evs, 500) {
			f.apply(b...)
		}
		singleNotes = len(f.entries(replica.StreamChanges))
	}, func(f *fixture) {
		for _, b := range split(evs, 500) {
			f.apply(b...)
		}
	})
	if n := len(merged.entries(replica.StreamChanges)); n >= singleNotes || n == 0 {
		t.Errorf("%d changes entries for merged calls, %d for single ones: expected fewer, not none", n, singleNotes)
	}
}

// sameKeys applies traffic twice under one org (event ids depend on it):
// first on a fresh fixture, then, once its keys are read and deleted,
// second on another. It reports every key whose content differs (but those
// named in skip) and returns the second fixture.
func sameKeys(t *testing.T, first, second func(*fixture), skip ...string) *fixture {
	t.Helper()
	a := newFixture(t)
	first(a)
	want := dumpOrg(t, a)
	testenv.DropOrg(a.rdb, a.org)
	b := newFixture(t, func(c *Config) { c.Org = a.org })
	second(b)
	got := dumpOrg(t, b)
	for _, k := range skip {
		delete(want, k)
		delete(got, k)
	}
	if len(want) < 100 {
		t.Fatalf("only %d keys written: the traffic exercised too little", len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("key %s written by the first run only", k)
		} else if !reflect.DeepEqual(g, v) {
			t.Errorf("key %s differs:\n first:  %.400v\n second: %.400v", k, v, g)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %s written by the second run only", k)
		}
	}
	return b
}

// dumpOrg reads every key of the fixture's org (but the changes stream,
// whose entries group by call on purpose) into comparable values: hashes as
// maps, sets as sorted lists, sorted sets as member → score (rounded to
// 1e-6: increments may add up in another order), streams as their entries'
// fields in order.
func dumpOrg(t *testing.T, f *fixture) map[string]any {
	t.Helper()
	ctx := context.Background()
	prefix := f.s.k.Prefix()
	keys, err := f.rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, k := range keys {
		name := strings.TrimPrefix(k, prefix)
		if name == replica.StreamChanges {
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
	call := newTx(f.s.k, "", "")
	const n = 3*maxCommandArgs + 7
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("003%06d", i)
		call.zaddGT(f.s.k.People(), int64(1000+i), p)
		call.hset(f.s.k.Person("003P"), p, "1")
		call.sadd(f.s.k.Opps(), p)
	}
	cmd := f.s.send(ctx, []*tx{call})[0]
	if r, err := cmd.Int(); err != nil || r != scriptApplied {
		t.Fatalf("script returned %v, %v", r, err)
	}
	if c := f.rdb.ZCard(ctx, f.s.k.People()).Val(); c != n {
		t.Fatalf("%d people, want %d", c, n)
	}
	if s := f.rdb.ZScore(ctx, f.s.k.People(), fmt.Sprintf("003%06d", n-1)).Val(); s != float64(1000+n-1) {
		t.Fatalf("last person's score %v", s)
	}
	if c := f.rdb.HLen(ctx, f.s.k.Person("003P")).Val(); c != n {
		t.Fatalf("%d hash fields, want %d", c, n)
	}
	if c := f.rdb.SCard(ctx, f.s.k.Opps()).Val(); c != n {
		t.Fatalf("%d set members, want %d", c, n)
	}
	// GT held on every part: a lower score does not lower it.
	call = newTx(f.s.k, "", "")
	for i := 0; i < n; i++ {
		call.zaddGT(f.s.k.People(), 1, fmt.Sprintf("003%06d", i))
	}
	if err := f.s.send(ctx, []*tx{call})[0].Err(); err != nil {
		t.Fatal(err)
	}
	if s := f.rdb.ZScore(ctx, f.s.k.People(), fmt.Sprintf("003%06d", n-1)).Val(); s != float64(1000+n-1) {
		t.Fatalf("GT lost on a split part: score %v", s)
	}
}
