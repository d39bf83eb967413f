package reconcile

import (
	"context"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// A gap that arrives while a record is being re-read (between the read of
// its stale marker and the removal of its stale flag) leaves the record
// stale; without it, the re-read clears the flag. The fake Salesforce
// applies the gap before it answers, so the interleaving is certain.
func TestGapDuringReReadKeepsTheRecordStale(t *testing.T) {
	const gap2 = 3000 // the second gap, after the seeded one (t0+1000)
	tests := []struct {
		name   string
		entity string
		id     string
		run    func(w *world) error
	}{
		{"sobject GET", cdc.EntityOpportunity, oppA, func(w *world) error {
			_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
			return err
		}},
		{"queryAll", cdc.EntityOpportunity, oppA, func(w *world) error {
			_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA, oppB})
			return err
		}},
		{"contact role", cdc.EntityContactRole, roleA, func(w *world) error {
			_, err := w.rc.IDs(context.Background(), cdc.EntityContactRole, []string{roleA})
			return err
		}},
		{"whole entity", cdc.EntityOpportunity, oppA, func(w *world) error {
			_, err := w.rc.Entity(context.Background(), cdc.EntityOpportunity, 0)
			return err
		}},
	}
	for _, tt := range tests {
		for _, interleave := range []bool{false, true} {
			name := tt.name + "/no gap meanwhile"
			if interleave {
				name = tt.name + "/gap meanwhile"
			}
			t.Run(name, func(t *testing.T) {
				w := newWorld(t, nil)
				w.seed()
				for i, id := range []string{oppA, oppB, oppC} {
					w.sf.put(cdc.EntityOpportunity, id, sfOpp("Deal "+string(rune('0'+i)), "Prospecting"))
				}
				w.sf.put(cdc.EntityContactRole, roleA, map[string]any{"OpportunityId": oppA, "ContactId": personA,
					"Role": "Evaluator", "IsPrimary": false, "SystemModstamp": "2026-01-31T12:00:00.500+0000"})
				g2 := ev(tt.entity, cdc.GapUpdate, tt.id, t0+gap2)
				if interleave {
					applied := false
					w.sf.hook(func(f *fakeSF) {
						f.before = func(string) {
							if !applied {
								applied = true
								w.apply(g2)
							}
						}
					})
				}
				if err := tt.run(w); err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				inSet, _ := w.rdb.SIsMember(ctx, "oppsync:{"+w.org+"}:stale:"+tt.entity, tt.id).Result()
				flag := w.recordStale(tt.entity, tt.id)
				if interleave {
					if !inSet || !flag {
						t.Fatalf("after a gap during the re-read: in stale set %v, record flag %v; want both stale", inSet, flag)
					}
					marks, err := w.st.StaleMarks(ctx, tt.entity, []string{tt.id})
					if err != nil || marks[tt.id] != g2.Version.String() {
						t.Fatalf("marker %q %v, want the new gap's %s", marks[tt.id], err, g2.Version)
					}
					// The next re-read, with no gap meanwhile, clears it.
					w.sf.hook(func(f *fakeSF) { f.before = nil })
					if err := tt.run(w); err != nil {
						t.Fatal(err)
					}
					inSet, _ = w.rdb.SIsMember(ctx, "oppsync:{"+w.org+"}:stale:"+tt.entity, tt.id).Result()
					flag = w.recordStale(tt.entity, tt.id)
				}
				if inSet || flag {
					t.Fatalf("after the re-read: in stale set %v, record flag %v; want neither", inSet, flag)
				}
			})
		}
	}
}

// recordStale reads the stale flag the API shows for the record.
func (w *world) recordStale(entity, id string) bool {
	w.t.Helper()
	g, _, err := w.st.Replica().LoadGroup(context.Background(), oppA)
	if err != nil {
		w.t.Fatal(err)
	}
	if entity == cdc.EntityOpportunity {
		if id != oppA {
			w.t.Fatalf("recordStale reads %s only", oppA)
		}
		return g.Opp.Stale
	}
	r := g.Roles[id]
	if r == nil {
		w.t.Fatalf("no role %s in %s's group (roles %v)", id, oppA, strings.Join(keys(g.Roles), ","))
	}
	return r.Stale
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
