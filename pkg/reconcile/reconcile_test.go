package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/cdctest"
	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/schemas"
)

const (
	oppA, oppB, oppC = "006000000000000AAA", "006000000000000BBB", "006000000000000CCC"
	roleA, roleB     = "00K000000000000AAA", "00K000000000000BBB"
	roleC            = "00K000000000000CCC"
	personA, personB = "003000000000000AAA", "003000000000000BBB"
	personC, person9 = "003000000000000CCC", "003000000000000999"
)

var t0 = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC).UnixMilli()

func schemaFields(t *testing.T) map[string][]cdc.FieldInfo {
	t.Helper()
	out := map[string][]cdc.FieldInfo{}
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		s, err := decode.ParseSchema(schemas.PubSub(e))
		if err != nil {
			t.Fatal(err)
		}
		out[e] = s.Fields()
	}
	return out
}

type world struct {
	t   *testing.T
	st  *state.Store
	rdb *redis.Client
	org string
	sf  *fakeSF
	rc  *Reconciler
	reg *prometheus.Registry
	cfg Config
	log *syncBuffer // the reconciler's log
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// restart replaces the reconciler (same store and fake Salesforce) with
// one configured by mutate.
func (w *world) restart(mutate func(*Config)) {
	w.t.Helper()
	cfg := w.cfg
	if mutate != nil {
		mutate(&cfg)
	}
	w.reg, w.log = prometheus.NewRegistry(), &syncBuffer{}
	var err error
	if w.rc, err = New(cfg, w.st, w.sf.srv.Client(), w.reg, zerolog.New(w.log)); err != nil {
		w.t.Fatal(err)
	}
}

func newWorld(t *testing.T, mutate func(*Config)) *world {
	t.Helper()
	w := &world{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "rc"), sf: newFakeSF(t)}
	w.st = inproc.Store(t, w.rdb, state.Config{Org: w.org, IgnoreFields: []string{"LastModifiedDate", "LastModifiedById", "SystemModstamp"}})
	cfg := Config{InstanceURL: w.sf.srv.URL, ClientID: "cid", ClientSecret: "secret", Fields: schemaFields(t),
		RateLimit: 1000, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Interval: 20 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	w.cfg = cfg
	w.restart(nil)
	return w
}

func (w *world) apply(evs ...*cdc.Event) {
	w.t.Helper()
	w.applyOpts(state.ApplyOptions{}, evs...)
}

func (w *world) applyOpts(opts state.ApplyOptions, evs ...*cdc.Event) {
	w.t.Helper()
	if _, err := w.st.ApplyEvents(context.Background(), evs, opts); err != nil {
		w.t.Fatal(err)
	}
}

func ev(entity string, ct cdc.ChangeType, id string, ts int64, kv ...any) *cdc.Event {
	return &cdc.Event{Entity: entity, ChangeType: ct, RecordIDs: []string{id},
		Version: cdc.Version{CommitTimestamp: ts, CommitNumber: 7, SequenceNumber: 1}, Fields: cdctest.Fields(kv...)}
}

// seed creates three opportunities with one contact role each, then gaps
// on all of them and on roleA: everything is stale.
func (w *world) seed() {
	w.t.Helper()
	for i, o := range []struct{ opp, role, person string }{{oppA, roleA, personA}, {oppB, roleB, personB}, {oppC, roleC, personC}} {
		w.applyOpts(state.ApplyOptions{Quiet: true}, ev(cdc.EntityOpportunity, cdc.Create, o.opp, t0, "Name", fmt.Sprintf("Deal %d", i), "StageName", "Prospecting", "Amount", 100.0),
			ev(cdc.EntityContactRole, cdc.Create, o.role, t0, "OpportunityId", o.opp, "ContactId", o.person, "Role", "Evaluator"))
		w.apply(ev(cdc.EntityOpportunity, cdc.GapUpdate, o.opp, t0+1000))
	}
	w.apply(ev(cdc.EntityContactRole, cdc.GapUpdate, roleA, t0+1000))
	if s, _ := w.st.Stats(context.Background()); s.StaleRecords != 4 {
		w.t.Fatalf("seeded %d stale records, want 4", s.StaleRecords)
	}
}

// sfOpp is a REST record of the seeded opportunity as Salesforce has it now.
func sfOpp(name, stage string) map[string]any {
	return map[string]any{"Name": name, "StageName": stage, "Amount": json.Number("100.0"),
		"SystemModstamp": "2026-01-31T12:00:05.000+0000", "LastModifiedDate": "2026-01-31T12:00:05.000+0000",
		"Billing_Address__c": nil}
}

// entries returns "<trigger> <person> <opp> <field/reason>" lines, sorted.
func (w *world) entries() []string {
	var out []string
	for _, k := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		msgs, err := w.rdb.XRange(context.Background(), "oppsync:{"+w.org+"}:triggers:"+k, "-", "+").Result()
		if err != nil {
			w.t.Fatal(err)
		}
		for _, m := range msgs {
			v := m.Values
			extra := fmt.Sprint(v["reason"])
			if k == cdc.TriggerUpdated {
				extra = fmt.Sprintf("%v %v->%v", v["field"], v["old_value"], v["new_value"])
			}
			out = append(out, fmt.Sprintf("%s %v %v %s", k, v["person_id"], v["opportunity_id"], extra))
		}
	}
	sort.Strings(out)
	return out
}

func TestReconcileStale(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.IDsPerQuery = 3 })
	w.sf.pageSize = 1
	w.seed()
	w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
	w.sf.put(cdc.EntityOpportunity, oppB, sfOpp("Deal 1", "Prospecting"))
	w.sf.records[oppB]["IsDeleted"] = true // in the recycle bin: queryAll shows it
	// oppC is gone for good: no record at all.
	w.sf.put(cdc.EntityContactRole, roleA, map[string]any{"OpportunityId": oppA, "ContactId": person9, "Role": "Evaluator",
		"IsPrimary": false, "SystemModstamp": "2026-01-31T12:00:05.000+0000"})

	res, err := w.rc.Stale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 2 || res.Deleted != 2 || res.Applied != 4 {
		t.Errorf("result %+v", res)
	}
	want := []string{
		"added_to_opportunity " + person9 + " " + oppA + " contact_changed",
		"opportunity_updated " + personA + " " + oppA + ` StageName "Prospecting"->"Closed Won"`,
		"removed_from_opportunity " + personA + " " + oppA + " contact_changed",
		"removed_from_opportunity " + personB + " " + oppB + " opportunity_deleted",
		"removed_from_opportunity " + personC + " " + oppC + " opportunity_deleted",
	}
	if got := w.entries(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s, _ := w.st.Stats(context.Background()); s.StaleRecords != 0 {
		t.Errorf("%d records still stale", s.StaleRecords)
	}
	// Several ids went through queryAll with IN (...), paged by nextRecordsUrl.
	var queries, pages int
	for _, r := range w.sf.requestLog() {
		switch {
		case strings.Contains(r, "/queryAll?q=") && strings.Contains(r, "IN+%28"):
			queries++
		case strings.Contains(r, "/query/01g"):
			pages++
		}
	}
	if queries == 0 || pages == 0 {
		t.Errorf("no paged queryAll in %v", w.sf.requestLog())
	}
	// A second pass finds nothing to do and emits nothing.
	if res, err := w.rc.Stale(context.Background()); err != nil || res != (Result{}) {
		t.Errorf("second pass: %+v %v", res, err)
	}
}

func TestReconcileSingleIDUsesSObjectGET(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Renamed", "Prospecting"))
	res, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
	if err != nil || res.Read != 1 {
		t.Fatalf("IDs(A) = %+v %v", res, err)
	}
	res, err = w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppC}) // 404 NOT_FOUND
	if err != nil || res.Deleted != 1 {
		t.Fatalf("IDs(C) = %+v %v", res, err)
	}
	want := []string{
		"opportunity_updated " + personA + " " + oppA + ` Name "Deal 0"->"Renamed"`,
		"removed_from_opportunity " + personC + " " + oppC + " opportunity_deleted",
	}
	if got := w.entries(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range w.sf.requestLog() {
		if !strings.Contains(r, "/sobjects/Opportunity/") {
			t.Errorf("request %s, want sobject GETs only", r)
		}
	}
	if n, _ := w.rdb.SIsMember(context.Background(), "oppsync:{"+w.org+"}:stale:Opportunity", oppA).Result(); n {
		t.Error("A still stale")
	}
}

func TestReconcileRetriesAndReauthenticates(t *testing.T) {
	tests := []struct {
		name    string
		faults  []fault
		retries int
		wantErr string
		tokens  int
	}{
		{"server errors", []fault{serverError, serverError}, 0, "", 1},
		{"request limit", []fault{limitExceeded}, 0, "", 1},
		{"expired session", []fault{invalidSession}, 0, "", 2},
		{"all at once", []fault{serverError, invalidSession, limitExceeded}, 0, "", 2},
		{"gives up", []fault{serverError, serverError, serverError}, 2, "HTTP 503 SERVER_UNAVAILABLE: try later", 1},
		{"permanent", []fault{malformedQuery}, 0, "HTTP 400 MALFORMED_QUERY", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, func(c *Config) { c.MaxRetries = tt.retries })
			w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
			w.sf.fail(tt.faults...)
			res, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
			switch {
			case tt.wantErr == "" && (err != nil || res.Read != 1):
				t.Fatalf("IDs = %+v %v", res, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
			if n := w.sf.tokenCount(); n != tt.tokens {
				t.Errorf("%d tokens, want %d", n, tt.tokens)
			}
		})
	}
}

func TestReconcileBadCredentials(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ClientSecret = "wrong" })
	_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "invalid_client" {
		t.Fatalf("err = %v", err)
	}
}

func TestReconcileEntityAfterOverflow(t *testing.T) {
	w := newWorld(t, nil)
	w.sf.pageSize = 2
	w.seed()
	w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Prospecting"))
	w.sf.put(cdc.EntityOpportunity, oppB, sfOpp("Deal 1", "Closed Lost"))
	w.sf.put(cdc.EntityOpportunity, oppC, sfOpp("Deal 2", "Prospecting"))
	w.sf.records[oppC]["IsDeleted"] = true
	const newOpp = "006000000000000DDD"
	w.sf.put(cdc.EntityOpportunity, newOpp, sfOpp("New deal", "Prospecting"))
	w.sf.put(cdc.EntityContactRole, roleA, map[string]any{"OpportunityId": oppA, "ContactId": personA, "Role": "Evaluator",
		"SystemModstamp": "2026-01-31T12:00:05.000+0000"})
	// A GAP_OVERFLOW notice: the periodic Run resyncs the whole entity.
	w.apply(&cdc.Event{Entity: cdc.EntityOpportunity, ChangeType: cdc.GapOverflow, RecordIDs: []string{cdc.OverflowRecordID},
		Version: cdc.Version{CommitTimestamp: t0 + 2000}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.rc.Run(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		n, _ := w.rdb.SCard(context.Background(), "oppsync:{"+w.org+"}:stale:Opportunity").Result()
		return n == 0 && len(w.entries()) == 2, fmt.Sprintf("%d stale opportunities, entries %v", n, w.entries())
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	want := []string{
		"opportunity_updated " + personB + " " + oppB + ` StageName "Prospecting"->"Closed Lost"`,
		"removed_from_opportunity " + personC + " " + oppC + " opportunity_deleted",
	}
	if got := w.entries(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var full bool
	for _, r := range w.sf.requestLog() {
		if strings.Contains(r, "/queryAll?q=") && !strings.Contains(r, "WHERE") {
			full = true
		}
	}
	if !full {
		t.Errorf("no whole-entity queryAll in %v", w.sf.requestLog())
	}
	if prog, _ := w.st.Progress(context.Background(), ProgressName); prog["resync_cursor"] == "" {
		t.Error("resync cursor not saved")
	}
}

// The newer of the gap's commit time and SystemModstamp versions the
// re-read: CDC changes newer than both are kept.
func TestReconcileKeepsNewerCDC(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	w.apply(ev(cdc.EntityOpportunity, cdc.Update, oppA, t0+60_000, "StageName", "Negotiation"))
	w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won")) // SystemModstamp t0+5s
	if _, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA}); err != nil {
		t.Fatal(err)
	}
	v, _ := w.rdb.HGet(context.Background(), "oppsync:{"+w.org+"}:opp:"+oppA, "f:StageName").Result()
	if !strings.Contains(v, "Negotiation") {
		t.Fatalf("StageName = %s, want the newer CDC value", v)
	}
}

func TestToEvent(t *testing.T) {
	r, err := New(Config{InstanceURL: "https://x.my.salesforce.com", ClientID: "c", ClientSecret: "s", Fields: schemaFields(t)},
		nil, http.DefaultClient, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"attributes":{"type":"Opportunity"},"Id":"006000000000000AAA","Amount":1234.5,"Probability":10,
		"CloseDate":"2026-03-31","IsClosed":false,"CreatedDate":"2026-01-31T13:00:00.000+0100","Seats__c":3,
		"Billing_Address__c":{"City":"Paris","Street":null},"SystemModstamp":"2026-01-31T12:00:05.000+0000","Name":null}`
	rec, err := decodeRecord([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	e, err := r.toEvent(cdc.EntityOpportunity, rec, t0+9000)
	if err != nil {
		t.Fatal(err)
	}
	if e.ChangeType != cdc.Snapshot || e.Version.CommitTimestamp != t0+9000 {
		t.Errorf("event %+v", e)
	}
	want := map[string]cdc.Value{
		"Amount": cdc.Number(1234.5), "Probability": cdc.Number(10), "CloseDate": {Kind: cdc.KindDate, Str: "2026-03-31"},
		"IsClosed": cdc.Bool(false), "CreatedDate": {Kind: cdc.KindDateTime, Str: "2026-01-31T12:00:00.000Z"},
		"Seats__c": cdc.Number(3), "Billing_Address__c.City": cdc.String("Paris"), "Billing_Address__c.Street": cdc.Null,
		"Name": cdc.Null, "StageName": cdc.Null,
	}
	for name, v := range want {
		f, ok := e.Field(name)
		if !ok || f.Value != v || !f.Changed {
			t.Errorf("%s = %+v (%v), want %+v", name, f.Value, ok, v)
		}
	}
	rec["IsDeleted"] = true
	if e, _ := r.toEvent(cdc.EntityOpportunity, rec, 0); e.ChangeType != cdc.Delete || e.Version.CommitTimestamp != t0+5000 {
		t.Errorf("deleted record → %+v", e)
	}
	rec["Amount"] = "lots"
	delete(rec, "IsDeleted")
	if _, err := r.toEvent(cdc.EntityOpportunity, rec, 0); err == nil || !strings.Contains(err.Error(), "Amount") {
		t.Errorf("bad Amount: %v", err)
	}
}

func TestBucketLimitsRate(t *testing.T) {
	b := newBucket(50, 1)
	start := time.Now()
	for i := 0; i < 6; i++ {
		if err := b.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("6 tokens at 50/s with burst 1 took %s, want >= 100ms", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newBucket(0.001, 1).wait(ctx); err != nil {
		t.Fatalf("first token should be free: %v", err)
	}
}
