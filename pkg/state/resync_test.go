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
	if err := f.s.ClearStale(ctx, cdc.EntityOpportunity, "006A"); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.s.Stats(ctx); st.StaleRecords != 0 {
		t.Fatalf("stale after ClearStale: %d", st.StaleRecords)
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
