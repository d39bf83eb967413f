package state

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// Every path that runs script calls recovers when Redis answers NOSCRIPT
// (it lost its script cache: a restart, a failover, SCRIPT FLUSH): the
// executor loads the script again and sends the calls once more, so the
// batch applies at once, without an error, a recomputation or a fallback.
//
// SCRIPT FLUSH is server-wide and the test Redis is shared, so the store is
// given an apply script Redis has never seen (the same source under another
// hash): its first call gets NOSCRIPT exactly as after a flush.
func TestScriptCallsRecoverFromNoscript(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup runs with the ordinary script; run with the uncached one
		// and returns what it applied and the conflicts it reported.
		setup func(f *fixture)
		run   func(t *testing.T, f *fixture) (applied, conflicts int)
	}{
		{"ApplyBatch", nil, func(t *testing.T, f *fixture) (int, int) {
			res, err := f.s.ApplyBatch(context.Background(), f.items(oppEv(cdc.Create, "006A", "Name", "Acme")))
			if err != nil {
				t.Fatalf("ApplyBatch: %v", err)
			}
			return res.Applied, res.Conflicts
		}},
		{"ApplyEvents", nil, func(t *testing.T, f *fixture) (int, int) {
			res, err := f.s.ApplyEvents(context.Background(), []*cdc.Event{oppEv(cdc.Create, "006A", "Name", "Acme")}, ApplyOptions{})
			if err != nil {
				t.Fatalf("ApplyEvents: %v", err)
			}
			return res.Applied, res.Conflicts
		}},
		{"ReleaseExpired", func(f *fixture) {
			f.apply(ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Evaluator"))
			f.clock = f.clock.Add(31 * time.Second)
		}, func(t *testing.T, f *fixture) (int, int) {
			n, err := f.s.ReleaseExpired(context.Background(), 10)
			if err != nil {
				t.Fatalf("ReleaseExpired: %v", err)
			}
			return n, 0
		}},
		{"Begin", func(f *fixture) {
			// The partition's first batch, applied at its Wait: the next
			// one is begun ahead on the position it left.
			if _, err := f.s.Begin(context.Background(), f.items(oppEv(cdc.Create, "006B", "Name", "Before"))).Wait(); err != nil {
				f.t.Fatalf("first batch: %v", err)
			}
		}, func(t *testing.T, f *fixture) (int, int) {
			a := f.s.Begin(context.Background(), f.items(oppEv(cdc.Create, "006A", "Name", "Acme")))
			if a.Sync() {
				t.Fatal("the second batch was not begun ahead")
			}
			res, err := a.Wait()
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			return res.Applied, res.Conflicts
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			uncached := redis.NewScript(applyScriptSource + "-- " + testenv.UniqueName(t, "noscript") + "\n")
			ctx := context.Background()
			if ok, err := f.rdb.ScriptExists(ctx, uncached.Hash()).Result(); err != nil || ok[0] {
				t.Fatalf("the uncached script is cached (%v, %v)", ok, err)
			}
			f.s.script = uncached
			applied, conflicts := tc.run(t, f)
			if applied != 1 || conflicts != 0 {
				t.Fatalf("applied %d, %d conflicts; want 1 applied, no conflict", applied, conflicts)
			}
			if ok, err := f.rdb.ScriptExists(ctx, uncached.Hash()).Result(); err != nil || !ok[0] {
				t.Fatalf("the script was not loaded again (%v, %v)", ok, err)
			}
		})
	}
}
