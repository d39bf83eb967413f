package state

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// mustPanic runs fn and returns what it panicked with (nil: it did not).
func mustPanic(t *testing.T, fn func()) (r any) {
	t.Helper()
	defer func() { r = recover() }()
	fn()
	return nil
}

// within runs fn and fails the test when it does not return in time: a
// batch left half begun would make the next one wait forever.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return: a panicked batch blocks the partition", what)
	}
}

func panicOn(id string) func(Item) {
	return func(it Item) {
		if it.Event != nil && len(it.Event.RecordIDs) == 1 && it.Event.RecordIDs[0] == id {
			panic("bug")
		}
	}
}

func opps(from, n int) []*cdc.Event {
	var out []*cdc.Event
	for i := from; i < from+n; i++ {
		out = append(out, oppEv(cdc.Create, fmt.Sprintf("006%012dAAA", i), "Name", fmt.Sprint("Opp ", i)))
	}
	return out
}

// A panic while building a batch (the pipeline contains it and applies the
// batch again) leaves the store usable: the calls already handed over are
// durable before the panic unwinds, and applying the batch again applies
// the rest exactly once.
func TestPanicWhileBuildingApplyBatch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	items := f.items(opps(0, 100)...)
	testHookBuild = panicOn(items[80].Event.RecordIDs[0])
	r := mustPanic(t, func() { _, _ = f.s.ApplyBatch(ctx, items) })
	testHookBuild = nil
	if r == nil {
		t.Fatal("ApplyBatch did not panic")
	}
	// The first slices (32 + 64 messages: the one with the panicking
	// message was not handed over) were sent before the panic unwound.
	if pos := f.rdb.HGet(ctx, f.s.k.Positions(), "t/0").Val(); pos != "32" {
		t.Fatalf("position %q after the panic, want 32", pos)
	}
	res, err := f.s.ApplyBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if res.Redelivered != 32 || res.Applied != 68 {
		t.Fatalf("applied again: %+v, want 32 redelivered and 68 applied", res)
	}
}

// A panic in Begin (planning or building a batch ahead) or in the
// goroutine that sends a batch begun ahead must not leave the partition's
// chain of batches waiting for a batch that will never run.
func TestPanicWhileBeginningAhead(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run begins the second batch so that it panics, and returns the
		// recovered value.
		run func(t *testing.T, f *fixture, second []Item) any
	}{
		{"building", func(t *testing.T, f *fixture, second []Item) any {
			testHookBuild = panicOn(second[1].Event.RecordIDs[0])
			defer func() { testHookBuild = nil }()
			return mustPanic(t, func() { f.s.Begin(context.Background(), second) })
		}},
		{"sending", func(t *testing.T, f *fixture, second []Item) any {
			testHookBeforeSend = func() { panic("bug") }
			a := f.s.Begin(context.Background(), second)
			if a.Sync() {
				t.Fatal("second batch not begun ahead")
			}
			var r any
			within(t, "Wait", func() { r = mustPanic(t, func() { _, _ = a.Wait() }) })
			testHookBeforeSend = nil
			var gp *GoPanic
			if err, ok := r.(error); !ok || !errors.As(err, &gp) || len(gp.Stack) == 0 {
				t.Fatalf("Wait panicked with %v, want a *GoPanic with the sender's stack", r)
			}
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			first := f.s.Begin(ctx, f.items(opps(0, 3)...)) // a partition's first batch is applied at Wait
			if _, err := first.Wait(); err != nil {
				t.Fatal(err)
			}
			second := f.items(opps(3, 3)...)
			if r := tc.run(t, f, second); r == nil {
				t.Fatal("no panic")
			}
			// What the pipeline does next: apply the batch again, then go on.
			if _, err := f.s.ApplyBatch(ctx, second); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				a := f.s.Begin(ctx, f.items(opps(6+3*i, 3)...))
				within(t, "the next batch's Wait", func() {
					if _, err := a.Wait(); err != nil {
						t.Error(err)
					}
				})
			}
			if pos := f.rdb.HGet(ctx, f.s.k.Positions(), "t/0").Val(); pos != "15" {
				t.Fatalf("position %q, want 15", pos)
			}
			if n := f.rdb.SCard(ctx, f.s.k.Opps()).Val(); n != 15 {
				t.Fatalf("%d opportunities, want 15", n)
			}
		})
	}
}
