package state

import (
	"context"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

func TestStaleSetsResyncNoticesAndProgress(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.s.ApplyEvents(ctx, []*cdc.Event{oppEv(cdc.Create, "006A", "Name", "Acme")}, ApplyOptions{Quiet: true}); err != nil {
		t.Fatal(err)
	}
	gap := oppEv(cdc.GapUpdate, "006A")
	gap.Version = cdc.Version{CommitTimestamp: 1_900_000_000_123, CommitNumber: 9}
	if _, err := f.s.ApplyEvents(ctx, []*cdc.Event{gap}, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	ids, err := f.s.StaleIDs(ctx, cdc.EntityOpportunity, 10)
	if err != nil || len(ids) != 1 || ids[0] != "006A" {
		t.Fatalf("StaleIDs = %v %v", ids, err)
	}
	notes, err := f.s.ResyncNotices(ctx, "", 10)
	if err != nil || len(notes) != 1 || notes[0].CommitTimestamp != 1_900_000_000_123 || notes[0].RecordIDs[0] != "006A" ||
		notes[0].ChangeType != cdc.GapUpdate || notes[0].Entity != cdc.EntityOpportunity {
		t.Fatalf("ResyncNotices = %+v %v", notes, err)
	}
	if more, _ := f.s.ResyncNotices(ctx, notes[0].StreamID, 10); len(more) != 0 {
		t.Fatalf("notices after the last one: %+v", more)
	}
	marks, err := f.s.StaleMarks(ctx, cdc.EntityOpportunity, []string{"006A", "006Z"})
	if err != nil || marks["006A"] != gap.Version.String() || marks["006Z"] != "" {
		t.Fatalf("StaleMarks = %v %v", marks, err)
	}
	// A marker that is not the current one (a newer gap came) clears nothing.
	if n, err := f.s.ClearStale(ctx, cdc.EntityOpportunity, map[string]string{"006A": "older"}); err != nil || n != 0 {
		t.Fatalf("ClearStale(older marker) = %d %v", n, err)
	}
	if st, _ := f.s.Stats(ctx); st.StaleRecords != 1 {
		t.Fatalf("stale after ClearStale with an old marker: %d, want 1", st.StaleRecords)
	}
	if n, err := f.s.ClearStale(ctx, cdc.EntityOpportunity, marks); err != nil || n != 1 {
		t.Fatalf("ClearStale = %d %v", n, err)
	}
	if st, _ := f.s.Stats(ctx); st.StaleRecords != 0 {
		t.Fatalf("stale after ClearStale: %d", st.StaleRecords)
	}
	if m, _ := f.s.StaleMarks(ctx, cdc.EntityOpportunity, nil); len(m) != 0 {
		t.Fatalf("markers left: %v", m)
	}
	known, err := f.s.KnownOpportunities(ctx, []string{"006A", "006Z"})
	if err != nil || !known[0] || known[1] {
		t.Fatalf("KnownOpportunities = %v %v", known, err)
	}
	if err := f.s.SaveProgress(ctx, "import", map[string]string{"a": "1"}, true); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SaveProgress(ctx, "import", map[string]string{"b": "2"}, false); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.s.Progress(ctx, "import"); p["a"] != "1" || p["b"] != "2" {
		t.Fatalf("Progress = %v", p)
	}
}

func TestSpendAndClearProgress(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	steps := []struct {
		name   string
		period string
		n, max int64
		want   int64
		ok     bool
	}{
		{"first", "2026-01-01", 2, 3, 2, true},
		{"over the limit", "2026-01-01", 2, 3, 2, false},
		{"up to the limit", "2026-01-01", 1, 3, 3, true},
		{"next day starts at zero", "2026-01-02", 1, 3, 1, true},
		{"no limit", "2026-01-02", 100, 0, 101, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, ok, err := f.s.SpendProgress(ctx, "reconcile", "api_calls:", st.period, st.n, st.max)
			if err != nil || got != st.want || ok != st.ok {
				t.Fatalf("SpendProgress = %d %v %v, want %d %v", got, ok, err, st.want, st.ok)
			}
		})
	}
	p, _ := f.s.Progress(ctx, "reconcile")
	if _, old := p["api_calls:2026-01-01"]; old || p["api_calls:2026-01-02"] != "101" {
		t.Fatalf("progress %v: the earlier day's counter should be gone", p)
	}
	if err := f.s.SaveProgress(ctx, "reconcile", map[string]string{"x": "1"}, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.s.ClearProgress(ctx, "reconcile", "x", "2"); err != nil || ok {
		t.Fatalf("ClearProgress(other value) = %v %v", ok, err)
	}
	if ok, err := f.s.ClearProgress(ctx, "reconcile", "x", "1"); err != nil || !ok {
		t.Fatalf("ClearProgress = %v %v", ok, err)
	}
}
