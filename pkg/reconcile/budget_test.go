package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// overflow applies a GAP_OVERFLOW for Opportunity: a notice in the resync
// stream.
func (w *world) overflow() {
	w.t.Helper()
	w.apply(&cdc.Event{Entity: cdc.EntityOpportunity, ChangeType: cdc.GapOverflow, RecordIDs: []string{cdc.OverflowRecordID},
		Version: cdc.Version{CommitTimestamp: t0 + 2000}})
}

// wholeEntityReads counts the queryAll requests without a WHERE clause.
func (w *world) wholeEntityReads() int {
	n := 0
	for _, r := range w.sf.requestLog() {
		if strings.Contains(r, "/queryAll?q=") && !strings.Contains(r, "WHERE") {
			n++
		}
	}
	return n
}

func (w *world) entityMarked() bool {
	w.t.Helper()
	prog, err := w.st.Progress(context.Background(), ProgressName)
	if err != nil {
		w.t.Fatal(err)
	}
	_, ok := prog[fieldEntityPrefix+cdc.EntityOpportunity]
	return ok
}

// salesforce.overflow_resync=false: the entity stays marked, the notice
// stays in the resync stream, a warning names the key and a metric shows
// it; switched on again, the next pass re-reads the entity and clears the
// mark.
func TestOverflowResyncSwitchedOff(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.SkipOverflowResync = true })
	w.seed()
	for i, id := range []string{oppA, oppB, oppC} {
		w.sf.put(cdc.EntityOpportunity, id, sfOpp(fmt.Sprintf("Deal %d", i), "Prospecting"))
	}
	w.overflow()
	ctx := context.Background()
	for range 2 {
		if _, err := w.rc.pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := w.wholeEntityReads(); n != 0 {
		t.Fatalf("%d whole-entity reads with overflow_resync off", n)
	}
	if !w.entityMarked() {
		t.Fatal("the entity is not marked for resync")
	}
	if n, _ := w.rdb.XLen(ctx, "oppsync:{"+w.org+"}:resync").Result(); n != 5 {
		t.Errorf("resync stream holds %d notices, want 5 (4 gaps, 1 overflow)", n)
	}
	if got := metricValue(t, w.reg, "oppsync_reconcile_entity_resync_pending", "entity", cdc.EntityOpportunity); got != 1 {
		t.Errorf("oppsync_reconcile_entity_resync_pending{entity=Opportunity} = %v, want 1", got)
	}
	if logs := w.log.String(); strings.Count(logs, "salesforce.overflow_resync=true") != 1 {
		t.Errorf("want one warning naming salesforce.overflow_resync, log:\n%s", logs)
	}

	w.restart(func(c *Config) { c.SkipOverflowResync = false })
	if _, err := w.rc.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if n := w.wholeEntityReads(); n != 1 {
		t.Fatalf("%d whole-entity reads after switching on, want 1", n)
	}
	if w.entityMarked() {
		t.Error("the entity is still marked after its re-read")
	}
	if got := metricValue(t, w.reg, "oppsync_reconcile_entity_resync_pending", "entity", cdc.EntityOpportunity); got != 0 {
		t.Errorf("oppsync_reconcile_entity_resync_pending{entity=Opportunity} = %v, want 0", got)
	}
}

// salesforce.max_api_calls_per_day: a whole-entity re-read that does not
// fit stops after its first page and the entity stays marked; a spent
// budget refuses single calls; the next day starts from zero.
func TestDailyAPIBudget(t *testing.T) {
	day := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { return day }
	w := newWorld(t, func(c *Config) { c.MaxCallsPerDay = 2; c.Now = now })
	w.sf.pageSize = 1
	for i, id := range []string{oppA, oppB, oppC} {
		w.sf.put(cdc.EntityOpportunity, id, sfOpp(fmt.Sprintf("Deal %d", i), "Prospecting"))
	}
	w.overflow()
	ctx := context.Background()

	_, err := w.rc.pass(ctx)
	var be *BudgetError
	if !errors.As(err, &be) || be.Need != 2 || !strings.Contains(err.Error(), "salesforce.max_api_calls_per_day") {
		t.Fatalf("pass = %v, want a budget error needing 2 more calls", err)
	}
	if n := len(w.sf.requestLog()); n != 1 {
		t.Fatalf("%d data requests, want the first page only", n)
	}
	if !w.entityMarked() {
		t.Fatal("the entity is not marked for resync any more")
	}
	for _, m := range []struct {
		name, label, value string
		want               float64
	}{
		{"oppsync_salesforce_api_calls_used_today", "", "", 1},
		{"oppsync_salesforce_api_calls_remaining_today", "", "", 1},
		{"oppsync_reconcile_errors_total", "reason", reasonBudget, 1},
		{"oppsync_reconcile_entity_resync_pending", "entity", cdc.EntityOpportunity, 1},
		{"oppsync_salesforce_api_requests_total", "kind", kindQuery, 1},
	} {
		if got := metricValue(t, w.reg, m.name, m.label, m.value); got != m.want {
			t.Errorf("%s{%s=%q} = %v, want %v", m.name, m.label, m.value, got, m.want)
		}
	}

	// The last call of the day goes through; the next one is refused
	// before it is sent.
	if _, err := w.rc.IDs(ctx, cdc.EntityOpportunity, []string{oppA}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.rc.IDs(ctx, cdc.EntityOpportunity, []string{oppB}); !errors.As(err, &be) {
		t.Fatalf("IDs over budget = %v, want a budget error", err)
	}
	if n := len(w.sf.requestLog()); n != 2 {
		t.Fatalf("%d data requests, want 2 (the refused one not sent)", n)
	}

	// Run warns once, naming the key.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.rc.Run(runCtx) }()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return strings.Contains(w.log.String(), "raise salesforce.max_api_calls_per_day"), w.log.String()
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The next day the counter starts from zero; with room for the whole
	// entity the re-read completes and the mark goes.
	day = day.Add(24 * time.Hour)
	w.restart(func(c *Config) { c.MaxCallsPerDay = 3; c.Now = now })
	if _, err := w.rc.pass(ctx); err != nil {
		t.Fatal(err)
	}
	if w.entityMarked() {
		t.Error("the entity is still marked after its re-read")
	}
	if got := metricValue(t, w.reg, "oppsync_salesforce_api_calls_used_today", "", ""); got != 3 {
		t.Errorf("calls used on the next day = %v, want 3", got)
	}
}

// The request counter and the daily count match what Salesforce saw.
func TestAPICallMetrics(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.IDsPerQuery = 3 })
	w.sf.pageSize = 1
	w.seed()
	w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
	w.sf.put(cdc.EntityOpportunity, oppB, sfOpp("Deal 1", "Prospecting"))
	w.sf.put(cdc.EntityContactRole, roleA, map[string]any{"OpportunityId": oppA, "ContactId": personA, "Role": "Evaluator",
		"IsPrimary": false, "SystemModstamp": "2026-01-31T12:00:05.000+0000"})
	w.sf.fail(serverError)
	if _, err := w.rc.Stale(context.Background()); err != nil {
		t.Fatal(err)
	}
	var queries, sobjects float64
	for _, r := range w.sf.requestLog() {
		if strings.Contains(r, "/sobjects/") {
			sobjects++
		} else {
			queries++
		}
	}
	for _, m := range []struct {
		label, value string
		want         float64
	}{
		{"kind", kindQuery, queries},
		{"kind", kindSObject, sobjects},
		{"kind", kindToken, 1},
		{"code_class", "5xx", 1},
	} {
		if got := metricValue(t, w.reg, "oppsync_salesforce_api_requests_total", m.label, m.value); got != m.want {
			t.Errorf("oppsync_salesforce_api_requests_total{%s=%q} = %v, want %v", m.label, m.value, got, m.want)
		}
	}
	if got := metricValue(t, w.reg, "oppsync_salesforce_api_calls_used_today", "", ""); got != queries+sobjects {
		t.Errorf("calls used today = %v, want %v", got, queries+sobjects)
	}
	if got := metricValue(t, w.reg, "oppsync_salesforce_api_calls_remaining_today", "", ""); got != -1 {
		t.Errorf("calls remaining without a limit = %v, want -1", got)
	}
	for _, m := range []struct {
		entity, result string
		want           float64
	}{
		{cdc.EntityOpportunity, "read", 2}, {cdc.EntityOpportunity, "deleted", 1}, {cdc.EntityContactRole, "read", 1},
	} {
		got := recordsMetric(t, w, m.entity, m.result)
		if got != m.want {
			t.Errorf("oppsync_reconcile_records_total{entity=%s,result=%s} = %v, want %v", m.entity, m.result, got, m.want)
		}
	}
}

// recordsMetric reads one series of oppsync_reconcile_records_total.
func recordsMetric(t *testing.T, w *world, entity, result string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "oppsync_reconcile_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["entity"] == entity && l["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series entity=%s result=%s", entity, result)
	return 0
}
