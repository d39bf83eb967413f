package state

import (
	"context"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
)

// TestIDsNeverLeaveTheirKeys: an event whose id would name another record's
// key ("<id>:roles") or break the key layout is dead-lettered at apply
// (invalid_id) and writes nothing; the batch goes on.
func TestIDsNeverLeaveTheirKeys(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(
		oppEv(cdc.Create, "006A", "Name", "Acme", "Amount", 1000),
		ocrEv(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P", "Role", "Buyer"),
	)
	roles := f.rdb.HGetAll(ctx, f.s.k.Roles("006A")).Val()
	if len(roles) != 1 {
		t.Fatalf("roles before = %v", roles)
	}
	res := f.apply(
		oppEv(cdc.Update, "006A:roles", "Amount", 5, "Name", "Hijack"),
		ocrEv(cdc.Create, "00KB", "OpportunityId", "006A:roles", "ContactId", "003Q"),
		ocrEv(cdc.Create, "00KC", "OpportunityId", "006A", "ContactId", "003P}:x"),
		event(cdc.EntityOpportunity, cdc.Update, []string{"006B", "*"}, "Amount", 1),
		oppEv(cdc.Update, "006A\r\n", "Amount", 6),
		oppEv(cdc.Update, "006A", "Amount", 7),
	)
	if got := f.rdb.HGetAll(ctx, f.s.k.Roles("006A")).Val(); len(got) != len(roles) || got["00KA"] != roles["00KA"] {
		t.Fatalf("roles hash of 006A changed: %v, was %v", got, roles)
	}
	if res.DeadLetters["apply"] != 5 || res.Applied != 1 {
		t.Fatalf("result = %+v, want 5 dead letters at apply and 1 change applied", res)
	}
	g, ok, err := f.s.Replica().LoadGroup(ctx, "006A")
	if err != nil || !ok || g.Opp.Fields["Amount"] != cdc.Number(7) || g.Opp.Fields["Name"] != cdc.String("Acme") || len(g.Roles) != 1 {
		t.Fatalf("LoadGroup(006A) = %+v, %v, %v", g, ok, err)
	}
	for _, e := range f.entries(replica.StreamDLQ) {
		if e["stage"] != "apply" || e["reason"] != cdc.ReasonInvalidID || !strings.Contains(e["error"], "is not an id that can be part of a key") {
			t.Errorf("dead letter = %v", e)
		}
	}
	keys := f.rdb.Keys(ctx, f.s.k.Prefix()+"*").Val()
	for _, k := range keys {
		rest := strings.TrimPrefix(k, f.s.k.Prefix())
		if strings.ContainsAny(rest, "{}*\r\n") || strings.Count(rest, ":") > 2 || strings.HasPrefix(rest, "opp:006A:roles:") {
			t.Errorf("key %q is outside the layout", k)
		}
	}
	if pos := f.rdb.HGet(ctx, f.s.k.Positions(), "t/0").Val(); pos != "8" {
		t.Fatalf("position = %q, want 8", pos)
	}
}

// TestApplyEventsDeadLettersInvalidIDs: events that did not come from
// Kafka are guarded too.
func TestApplyEventsDeadLettersInvalidIDs(t *testing.T) {
	f := newFixture(t)
	res, err := f.s.ApplyEvents(context.Background(), []*cdc.Event{
		oppEv(cdc.Snapshot, "006A:roles", "Amount", 5),
		oppEv(cdc.Snapshot, "006A", "Amount", 6),
	}, ApplyOptions{Quiet: true})
	if err != nil || res.DeadLetters["apply"] != 1 || res.Applied != 1 {
		t.Fatalf("ApplyEvents = %+v, %v", res, err)
	}
	if dlq := f.entries(replica.StreamDLQ); len(dlq) != 1 || dlq[0]["reason"] != cdc.ReasonInvalidID || dlq[0]["topic"] != "" {
		t.Fatalf("dlq = %v", dlq)
	}
}
