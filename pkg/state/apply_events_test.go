package state

import (
	"context"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

func TestApplyEventsQuietImportThenSnapshotResync(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	imported := []*cdc.Event{
		oppEv(cdc.Create, "006A", "Name", "Acme", "StageName", "Prospecting", "Amount", 100),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Evaluator"),
	}
	res, err := f.s.ApplyEvents(ctx, imported, ApplyOptions{Quiet: true})
	if err != nil || res.Applied != 2 || len(res.Triggers) != 0 {
		t.Fatalf("import: %+v %v", res, err)
	}
	if n := len(f.triggerLines()); n != 0 {
		t.Fatalf("a quiet import wrote %d trigger entries", n)
	}
	if c := f.totals("003P").Amount; c != 100 {
		t.Fatalf("aggregate after import = %v", c)
	}
	// Importing older data again changes nothing.
	old := oppEv(cdc.Create, "006A", "Name", "Old name")
	old.Version = cdc.Version{CommitTimestamp: 1}
	if res, _ := f.s.ApplyEvents(ctx, []*cdc.Event{old}, ApplyOptions{Quiet: true}); res.Duplicates != 1 {
		t.Fatalf("older import = %+v", res)
	}
	// A resync re-reads the record: the difference is news.
	snap := oppEv(cdc.Snapshot, "006A", "Name", "Acme", "StageName", "Closed Won", "Amount", 100)
	res, err = f.s.ApplyEvents(ctx, []*cdc.Event{snap}, ApplyOptions{})
	if err != nil || res.Triggers[cdc.TriggerUpdated] != 1 {
		t.Fatalf("resync: %+v %v", res, err)
	}
	want := `updated 003P 006A StageName "Prospecting"->"Closed Won"`
	if got := f.triggerLines(); len(got) != 1 || got[0] != want {
		t.Fatalf("entries %v, want [%s]", got, want)
	}
}
