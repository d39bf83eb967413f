package state

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// applyAhead applies batches the way the source drives an AheadHandler:
// begin a batch, then wait for the one before, keeping at most one in
// flight. between, when set, runs after each Begin (before any Wait). With
// hold, a batch's calls wait until the next batch is built, so that every
// batch is built on one not yet applied.
func (f *fixture) applyAhead(batches [][]*cdc.Event, between func(i int), hold bool) (BatchResult, error) {
	f.t.Helper()
	ctx := context.Background()
	release := make(chan struct{}, 1)
	if hold {
		testHookBeforeSend = func() { <-release }
		defer func() { testHookBeforeSend = nil }()
	}
	wait := func(a *Applying) (BatchResult, error) {
		if hold && !a.Sync() {
			select { // never blocks: a batch that did not send leaves its token
			case release <- struct{}{}:
			default:
			}
		}
		return a.Wait()
	}
	var total BatchResult
	var inflight *Applying
	for i, b := range batches {
		a := f.s.Begin(ctx, f.items(b...))
		if between != nil {
			between(i)
		}
		if inflight != nil {
			res, err := wait(inflight)
			if err != nil {
				a.Abandon()
				return total, err
			}
			total.add(res)
			inflight = nil
		}
		if !a.Sync() {
			inflight = a
			continue
		}
		res, err := a.Wait()
		if err != nil {
			return total, err
		}
		total.add(res)
	}
	if inflight != nil {
		res, err := wait(inflight)
		total.add(res)
		return total, err
	}
	return total, nil
}

func generated(n, opps int) []*cdc.Event {
	gen := synth.NewGenerator(synth.GenConfig{Org: "ahead", Seed: 11, Opportunities: opps, Start: time.UnixMilli(1_764_000_000_000), NoOracle: true})
	var evs []*cdc.Event
	for len(evs) < n {
		ch := gen.Next()
		evs = append(evs, &cdc.Event{Entity: ch.Entity, ChangeType: ch.Type, RecordIDs: ch.RecordIDs,
			Version: ch.Version, Header: ch.Header, Fields: ch.Fields})
	}
	return evs
}

func split(evs []*cdc.Event, size int) [][]*cdc.Event {
	var out [][]*cdc.Event
	for from := 0; from < len(evs); from += size {
		out = append(out, evs[from:min(from+size, len(evs))])
	}
	return out
}

// sameAsApplyBatch applies evs in batches with ApplyBatch and, under the
// same org, with Begin/Wait (disturb runs between Begin and Wait; hold: see
// applyAhead), and compares every key (but the revisions, which a
// disturbance bumps).
func sameAsApplyBatch(t *testing.T, evs []*cdc.Event, size int, disturb func(f *fixture, i int), hold bool) BatchResult {
	t.Helper()
	var res BatchResult
	f := sameKeys(t, func(f *fixture) {
		for _, b := range split(evs, size) {
			f.apply(b...)
		}
	}, func(f *fixture) {
		var between func(int)
		if disturb != nil {
			between = func(i int) { disturb(f, i) }
		}
		var err error
		if res, err = f.applyAhead(split(evs, size), between, hold); err != nil {
			t.Fatal(err)
		}
	}, "revs")
	want := strconv.Itoa(len(evs))
	if pos := f.rdb.HGet(context.Background(), f.s.k.Positions(), "t/0").Val(); pos != want {
		t.Errorf("stored position %q, want %s", pos, want)
	}
	return res
}

func TestBegunAheadWritesWhatApplyBatchWrites(t *testing.T) {
	evs := generated(3000, 40)
	// Each batch is built before the one before it is applied: without the
	// groups handed over, its calls would find them moved and fall back.
	res := sameAsApplyBatch(t, evs, 200, nil, true)
	if res.Conflicts != 0 || res.Applied == 0 {
		t.Fatalf("result %+v: want applied changes and no conflict", res)
	}
}

// A role created in one batch and deleted (a DELETE names no opportunity)
// in the next, begun before the first is durable.
func TestBegunAheadLearnsRolesFromTheBatchBefore(t *testing.T) {
	f := newFixture(t)
	batches := [][]*cdc.Event{
		{oppEv(cdc.Create, "006A", "Name", "Acme")},
		{ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P")},
		{ocrEv(cdc.Delete, "00KA")},
	}
	// The deletion is planned before the creation is applied.
	res, err := f.applyAhead(batches, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unresolved != 0 || res.Triggers[cdc.TriggerRemoved] != 1 {
		t.Fatalf("result %+v: want the deletion resolved and one removed entry", res)
	}
}

// Another writer moves a group between Begin and the calls: the batch and
// the one begun after it fall back to ApplyBatch, and the end state is the
// same.
func TestBegunAheadFallsBackWhenAGroupMoved(t *testing.T) {
	evs := generated(3000, 40)
	disturbed := 0
	res := sameAsApplyBatch(t, evs, 200, func(f *fixture, i int) {
		if i%4 != 2 {
			return
		}
		// Bump the revision of a group the batch writes, as a concurrent
		// writer would (without changing its data).
		ctx := context.Background()
		for _, ev := range split(evs, 200)[i] {
			if ev.Entity == cdc.EntityOpportunity {
				f.rdb.HIncrBy(ctx, f.s.k.Revs(), ev.RecordIDs[0], 1)
				disturbed++
				return
			}
		}
	}, false)
	if disturbed == 0 || res.Conflicts == 0 {
		t.Fatalf("disturbed %d batches, %d conflicts: the fallback was not exercised", disturbed, res.Conflicts)
	}
}

// Redis loses writes while a batch is in flight: the rewind reaches the
// caller, and the batch begun after it writes nothing.
func TestBegunAheadRewindsAndAbandons(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.applyAhead([][]*cdc.Event{{oppEv(cdc.Create, "006A", "Name", "Acme")}, {oppEv(cdc.Update, "006A", "Name", "B")}}, nil, false); err != nil {
		t.Fatal(err)
	}
	f.rdb.HSet(ctx, f.s.k.Positions(), "t/0", "1") // Redis came back older
	a := f.s.Begin(ctx, f.items(oppEv(cdc.Update, "006A", "Name", "C")))
	if a.Sync() {
		t.Fatal("third batch not begun ahead")
	}
	b := f.s.Begin(ctx, f.items(oppEv(cdc.Update, "006A", "Name", "D")))
	_, err := a.Wait()
	// The first call finds the position moved; the fallback sees the
	// rewind.
	var rw *RewindError
	if !errors.As(err, &rw) || rw.Offset != 1 {
		t.Fatalf("err = %v, want a rewind to 1", err)
	}
	b.Abandon()
	if n := f.rdb.XLen(ctx, f.s.k.Trigger(cdc.TriggerUpdated)).Val(); n != 0 {
		t.Fatalf("%d updated entries (the opportunity has no people)", n)
	}
	if got := f.rdb.HGet(ctx, f.s.k.Opp("006A"), "f:Name").Val(); got == "" || got[len(got)-4:] != `s"B"` {
		t.Fatalf("Name = %q: the abandoned batch or the rewound one wrote", got)
	}
}
