package state

import (
	"context"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// partItems wraps events as consecutive messages of one partition of
// topic "t", from offset 0.
func partItems(partition int, evs ...*cdc.Event) []Item {
	out := make([]Item, len(evs))
	for i, ev := range evs {
		out[i] = Item{Msg: &cdc.Message{Topic: "t", Partition: partition, Offset: int64(i)}, Event: ev}
	}
	return out
}

// holdSends makes every batch begun ahead wait before sending its calls
// until the returned function is called.
func holdSends(t *testing.T) (release func()) {
	ch := make(chan struct{})
	testHookBeforeSend = func() { <-ch }
	t.Cleanup(func() { testHookBeforeSend = nil })
	return func() { close(ch) }
}

// Batches of two partitions that change one opportunity group while both
// are in flight: the second builds on the first (the lane) instead of
// reading a revision the first is about to move, so neither recomputes.
// Each is the first batch of its partition, begun ahead from the position
// read at assignment.
func TestLaneSharesGroupsAcrossPartitions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme", "Amount", 10))
	for _, p := range []int{1, 2} {
		if _, _, err := f.s.Position(ctx, "t", p); err != nil {
			t.Fatal(err)
		}
	}
	release := holdSends(t)
	var begun []*Applying
	for _, p := range []int{1, 2} {
		id, person := "00K"+string(rune('0'+p)), "003P"+string(rune('0'+p))
		a := f.s.Begin(ctx, partItems(p, ocrEv(cdc.Create, id, "OpportunityId", "006A", "ContactId", person)))
		if a.Sync() {
			t.Fatalf("partition %d: the first batch after Position was not begun ahead", p)
		}
		begun = append(begun, a)
	}
	release()
	for i, a := range begun {
		res, err := a.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if res.Conflicts != 0 || res.Applied != 1 {
			t.Fatalf("batch %d: %+v, want 1 change applied and no conflict", i, res)
		}
	}
	g, _, err := f.s.Replica().LoadGroup(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Roles) != 2 {
		t.Fatalf("%d roles, want 2", len(g.Roles))
	}
	if n := f.rdb.XLen(ctx, f.s.k.Trigger(cdc.TriggerAdded)).Val(); n != 2 {
		t.Fatalf("%d added entries, want 2", n)
	}
	for _, p := range []string{"t/1", "t/2"} {
		if pos := f.rdb.HGet(ctx, f.s.k.Positions(), p).Val(); pos != "1" {
			t.Fatalf("position %s = %q, want 1", p, pos)
		}
	}
}

// Another writer moves a group while a batch of the lane that writes it is
// in flight: that batch is refused, the batch of another partition built
// on it sends nothing, both are applied again from what Redis holds, and
// nothing is lost or written twice.
func TestLaneBatchBuiltOnARefusedOneIsNotSent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme", "Amount", 10))
	for _, p := range []int{1, 2} {
		if _, _, err := f.s.Position(ctx, "t", p); err != nil {
			t.Fatal(err)
		}
	}
	release := holdSends(t)
	a := f.s.Begin(ctx, partItems(1, ocrEv(cdc.Create, "00K1", "OpportunityId", "006A", "ContactId", "003P1")))
	b := f.s.Begin(ctx, partItems(2, ocrEv(cdc.Create, "00K2", "OpportunityId", "006A", "ContactId", "003P2")))
	if a.Sync() || b.Sync() {
		t.Fatal("not begun ahead")
	}
	// The other writer: a partition applied at once, not through the lane.
	if _, err := f.s.ApplyBatch(ctx, partItems(3, ocrEv(cdc.Create, "00K3", "OpportunityId", "006A", "ContactId", "003P3"))); err != nil {
		t.Fatal(err)
	}
	release()
	var conflicts int
	for _, x := range []*Applying{a, b} {
		res, err := x.Wait()
		if err != nil {
			t.Fatal(err)
		}
		conflicts += res.Conflicts
	}
	if conflicts != 2 {
		t.Fatalf("%d conflicts, want 2 (both batches applied again)", conflicts)
	}
	g, _, err := f.s.Replica().LoadGroup(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Roles) != 3 {
		t.Fatalf("%d roles, want 3", len(g.Roles))
	}
	if n := f.rdb.XLen(ctx, f.s.k.Trigger(cdc.TriggerAdded)).Val(); n != 3 {
		t.Fatalf("%d added entries, want 3", n)
	}
	// The lane forgot what the refused batches built: the next batch
	// builds on what Redis holds and applies at once.
	next := f.s.Begin(ctx, []Item{{Msg: &cdc.Message{Topic: "t", Partition: 1, Offset: 1},
		Event: ocrEv(cdc.Create, "00K4", "OpportunityId", "006A", "ContactId", "003P4")}})
	res, err := next.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Conflicts != 0 || res.Applied != 1 {
		t.Fatalf("next batch: %+v, want 1 change applied and no conflict", res)
	}
}

// A batch of the lane waits only for the batches it builds on: one whose
// groups no refused batch wrote still applies at once.
func TestLaneRefusalStopsOnlyTheBatchesBuiltOnIt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(oppEv(cdc.Create, "006A", "Name", "Acme"), oppEv(cdc.Create, "006B", "Name", "Bolt"))
	for _, p := range []int{1, 2} {
		if _, _, err := f.s.Position(ctx, "t", p); err != nil {
			t.Fatal(err)
		}
	}
	release := holdSends(t)
	a := f.s.Begin(ctx, partItems(1, oppEv(cdc.Update, "006A", "Name", "Acme 2")))
	b := f.s.Begin(ctx, partItems(2, oppEv(cdc.Update, "006B", "Name", "Bolt 2")))
	if a.Sync() || b.Sync() {
		t.Fatal("not begun ahead")
	}
	if _, err := f.s.ApplyBatch(ctx, partItems(3, oppEv(cdc.Update, "006A", "Amount", 5))); err != nil {
		t.Fatal(err)
	}
	release()
	for _, tc := range []struct {
		a         *Applying
		conflicts int
	}{{a, 1}, {b, 0}} {
		res, err := tc.a.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if res.Conflicts != tc.conflicts || res.Applied != 1 {
			t.Fatalf("%s: %+v, want 1 change applied and %d conflicts", tc.a.field, res, tc.conflicts)
		}
	}
}

// A multi-opportunity event names a group whose messages go to another
// partition, which another instance may own: the lane reads that group
// again instead of building on the copy it kept.
func TestLaneRereadsGroupsOfOtherPartitions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other, err := New(f.s.cfg, f.rdb) // another instance
	if err != nil {
		t.Fatal(err)
	}
	keyed := func(partition int, offset int64, key string, ev *cdc.Event) []Item {
		return []Item{{Msg: &cdc.Message{Topic: "t", Partition: partition, Offset: offset, Key: []byte(key)}, Event: ev}}
	}
	for _, p := range []int{1, 2} {
		if _, _, err := f.s.Position(ctx, "t", p); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(a *Applying) BatchResult {
		t.Helper()
		res, err := a.Wait()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	wait(f.s.Begin(ctx, keyed(1, 0, "006A", oppEv(cdc.Create, "006A", "Name", "Acme", "StageName", "Prospecting"))))
	wait(f.s.Begin(ctx, keyed(2, 0, "006B", oppEv(cdc.Create, "006B", "Name", "Bolt", "StageName", "Prospecting"))))
	// The other instance, now owning partition 1, moves 006A.
	if _, err := other.ApplyBatch(ctx, keyed(1, 1, "006A", oppEv(cdc.Update, "006A", "Amount", 7))); err != nil {
		t.Fatal(err)
	}
	multi := event(cdc.EntityOpportunity, cdc.Update, []string{"006B", "006A"}, "StageName", "Qualification")
	res := wait(f.s.Begin(ctx, keyed(2, 1, "006B", multi)))
	if res.Conflicts != 0 || res.Applied != 2 {
		t.Fatalf("%+v, want 2 changes applied and no conflict", res)
	}
	g, _, err := f.s.Replica().LoadGroup(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	if g.Opp.Fields["Amount"].Num != 7 || g.Opp.Fields["StageName"].Str != "Qualification" {
		t.Fatalf("006A fields %v", g.Opp.Fields)
	}
}

// The lane's groups point at the batch that last wrote them: once waited
// for, a batch keeps neither its messages nor its calls.
func TestWaitedBatchKeepsNoMessagesOrCalls(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.s.Position(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	a := f.s.Begin(ctx, partItems(1, oppEv(cdc.Create, "006A", "Name", "Acme")))
	if a.Sync() {
		t.Fatal("not begun ahead")
	}
	if _, err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if a.items != nil || a.txs != nil || a.p != nil {
		t.Fatalf("a waited batch keeps %d messages, %d calls, plan %v", len(a.items), len(a.txs), a.p != nil)
	}
	f.s.lane.mu.Lock()
	owner := f.s.lane.groups["006A"].owner
	f.s.lane.mu.Unlock()
	if owner != a {
		t.Fatal("the lane's group does not name the batch that wrote it")
	}
}
