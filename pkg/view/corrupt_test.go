package view

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
)

// Corrupt data in Redis, as an unchecked id ("<id>:roles" writes an
// opportunity's fields into another's roles hash) or a hand edit leaves it,
// must neither stop the view (loading or following), nor fail the record
// reads, nor stop the writer: the bad record is skipped and reported.
func TestCorruptRecordsAreSkipped(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	f := newViewFixture(t, func(c replica.Corrupt) {
		mu.Lock()
		seen[c.Kind]++
		mu.Unlock()
	})
	ctx := context.Background()
	reported := func(kind string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[kind]
	}
	f.apply(
		f.opp(cdc.Create, "006A", "Amount", 5000),
		f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003A"),
		f.opp(cdc.Create, "006B", "Amount", 7000),
		f.role(cdc.Create, "00KB", "OpportunityId", "006B", "ContactId", "003B"),
		// Its fields land in 006A's roles hash.
		f.opp(cdc.Create, "006A:roles", "Amount", 9000, "StageName", "Closed Won"),
	)
	// Hand-made damage: a field without a version, a role that is not JSON,
	// a revision that is not a number, and a key of another type.
	f.rdb.HSet(ctx, f.k.Opp("006B"), "f:StageName", "garbage")
	f.rdb.HSet(ctx, f.k.Roles("006B"), "00KX", "{not json")
	f.rdb.HSet(ctx, f.k.Revs(), "006B", "NaN")
	f.rdb.SAdd(ctx, f.k.Opps(), "006Z")
	f.rdb.Set(ctx, f.k.Roles("006Z"), "a string", 0)

	// Record reads answer, without the bad records.
	o, ok, err := f.v.Opportunity(ctx, "006A")
	if err != nil || !ok || len(o.Roles) != 1 || o.Roles[0].ContactID != "003A" {
		t.Fatalf("Opportunity(006A) = %+v, %v, %v; want its one role", o, ok, err)
	}
	o, ok, err = f.v.Opportunity(ctx, "006B")
	if err != nil || !ok || o.Fields["Amount"].Num != 7000 || !o.Fields["StageName"].IsNull() {
		t.Fatalf("Opportunity(006B) = %+v, %v, %v; want Amount and no StageName", o, ok, err)
	}
	if opps, ok, err := f.v.PersonOpportunities(ctx, "003A"); err != nil || !ok || len(opps) != 1 {
		t.Fatalf("PersonOpportunities(003A) = %d, %v, %v", len(opps), ok, err)
	}

	// A fresh view loads and serves the good records.
	f.run()
	f.expect(qHas, "003A,003B")
	for _, kind := range []string{replica.CorruptField, replica.CorruptRole, replica.CorruptRevision, replica.CorruptKey} {
		if reported(kind) == 0 {
			t.Errorf("no %s reported", kind)
		}
	}

	// The writer applies changes to the damaged groups, and the running
	// view follows them (a new person on each).
	f.apply(
		f.role(cdc.Create, "00KC", "OpportunityId", "006A", "ContactId", "003C"),
		f.role(cdc.Create, "00KD", "OpportunityId", "006B", "ContactId", "003D"),
		f.opp(cdc.Update, "006B", "StageName", "Prospecting"),
	)
	f.expect(qHas, "003A,003B,003C,003D")
	o, _, err = f.v.Opportunity(ctx, "006B")
	if err != nil || o.Fields["StageName"].Str != "Prospecting" {
		t.Fatalf("Opportunity(006B) = %+v, %v: the change did not overwrite the bad field", o, err)
	}
	if rev := f.rdb.HGet(ctx, f.k.Revs(), "006B").Val(); rev != "2" {
		t.Fatalf("revision of 006B = %q, want 2 (the bad one replaced by two changes)", rev)
	}
}

// TestQueriesNeverReadAnotherKey: an id from a URL that could not have been
// stored is "never seen" (404), not another record's key read as this one
// ("<id>:roles" used to answer 500).
func TestQueriesNeverReadAnotherKey(t *testing.T) {
	f := newViewFixture(t)
	ctx := context.Background()
	f.apply(
		f.opp(cdc.Create, "006A", "Name", "Acme"),
		f.role(cdc.Create, "00KA", "OpportunityId", "006A", "ContactId", "003P"),
	)
	v := f.v
	if _, ok, err := v.Opportunity(ctx, "006A"); !ok || err != nil {
		t.Fatalf("Opportunity(006A) = %v, %v", ok, err)
	}
	for _, id := range []string{"006A:roles", "006A}", "006*", "006A\r\n", strings.Repeat("0", 100_000)} {
		if _, ok, err := v.Opportunity(ctx, id); ok || err != nil {
			t.Errorf("Opportunity(%s) = %v, %v; want not found", cdc.QuoteInput(id), ok, err)
		}
	}
	// "003P" has the activity key "activity:003P"; "003P:x" must not reach it.
	if _, ok, err := v.PersonOpportunities(ctx, "003P"); !ok || err != nil {
		t.Fatalf("PersonOpportunities(003P) = %v, %v", ok, err)
	}
	if _, ok, err := v.PersonOpportunities(ctx, "003P:x"); ok || err != nil {
		t.Errorf("PersonOpportunities(003P:x) = %v, %v; want not found", ok, err)
	}
}
