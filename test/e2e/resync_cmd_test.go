package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// salesforceStub answers the OAuth token endpoint, sobject GETs and
// queryAll with the one opportunity it holds (stage given), and counts
// requests by kind.
type salesforceStub struct {
	mu    sync.Mutex
	stage string
	calls map[string]int
}

func (s *salesforceStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Id": resyncOpp, "Name": "Deal",
		"StageName": s.stage, "Amount": 100, "IsDeleted": false, "SystemModstamp": "2026-02-01T10:00:00.000+0000"}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/services/oauth2/token":
		s.calls["token"]++
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": "t", "instance_url": "http://" + r.Host})
	case r.Header.Get("Authorization") != "Bearer t":
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`[{"errorCode":"INVALID_SESSION_ID","message":"Session expired or invalid"}]`))
	case strings.HasPrefix(r.URL.Path, "/services/data/v61.0/sobjects/Opportunity/"+resyncOpp):
		s.calls["sobject"]++
		_ = json.NewEncoder(w).Encode(rec)
	case r.URL.Path == "/services/data/v61.0/queryAll":
		s.calls["queryAll"]++
		_ = json.NewEncoder(w).Encode(map[string]any{"totalSize": 1, "done": true, "records": []any{rec}})
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]`))
	}
}

const (
	resyncOpp    = "006RSY000000000001"
	resyncPerson = "003RSY000000000001"
)

func TestResyncCommand(t *testing.T) {
	e := &env{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "org")}
	stub := &salesforceStub{stage: "Closed Won", calls: map[string]int{}}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	sfEnv := []string{"OPPSYNC_SALESFORCE_INSTANCE_URL=" + srv.URL, "OPPSYNC_SALESFORCE_CLIENT_ID=cid",
		"OPPSYNC_SALESFORCE_CLIENT_SECRET=secret", "OPPSYNC_TRIGGERS_IGNORE_FIELDS=LastModifiedDate,SystemModstamp"}

	// An imported opportunity with one person, then a gap: it is stale.
	st, err := state.New(state.Config{Org: e.org}, e.rdb)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Init(ctx); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC).UnixMilli()
	evs := []*cdc.Event{
		{Entity: cdc.EntityOpportunity, ChangeType: cdc.Create, RecordIDs: []string{resyncOpp}, Version: cdc.Version{CommitTimestamp: ts},
			Fields: []cdc.Field{{Name: "Name", Value: cdc.String("Deal"), Changed: true}, {Name: "StageName", Value: cdc.String("Prospecting"), Changed: true},
				{Name: "Amount", Value: cdc.Number(100), Changed: true}}},
		{Entity: cdc.EntityContactRole, ChangeType: cdc.Create, RecordIDs: []string{"00KRSY000000000001"}, Version: cdc.Version{CommitTimestamp: ts},
			Fields: []cdc.Field{{Name: "OpportunityId", Value: cdc.String(resyncOpp), Changed: true}, {Name: "ContactId", Value: cdc.String(resyncPerson), Changed: true}}},
	}
	if _, err := st.ApplyEvents(ctx, evs, state.ApplyOptions{Quiet: true}); err != nil {
		t.Fatal(err)
	}
	gap := &cdc.Event{Entity: cdc.EntityOpportunity, ChangeType: cdc.GapUpdate, RecordIDs: []string{resyncOpp}, Version: cdc.Version{CommitTimestamp: ts + 1000, CommitNumber: 3}}
	if _, err := st.ApplyEvents(ctx, []*cdc.Event{gap}, state.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		env     []string
		args    []string
		code    int
		out     string
		entries int
	}{
		{"not configured", nil, []string{"resync", "--stale"}, 2, "salesforce.instance_url is not set", 0},
		{"no mode", sfEnv, []string{"resync"}, 2, "give exactly one of", 0},
		{"bad entity", sfEnv, []string{"resync", "--entity", "Account"}, 2, "--entity must be", 0},
		{"stale", sfEnv, []string{"resync", "--stale"}, 0, "1 records re-read, 0 deleted, 1 applied, 1 triggers", 1},
		{"nothing stale", sfEnv, []string{"resync", "--stale"}, 0, "0 records re-read", 1},
		{"entity", sfEnv, []string{"resync", "--entity", "Opportunity"}, 0, "1 records re-read", 1},
		{"ids", sfEnv, []string{"resync", "--ids", resyncOpp}, 0, "1 records re-read", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCommand(t, e.org, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.out) {
				t.Fatalf("exit %d (want %d), output:\n%s%s\nwant %q", code, tt.code, stdout, stderr, tt.out)
			}
			if n := len(e.triggers()); n != tt.entries {
				t.Fatalf("%d trigger entries, want %d: %v", n, tt.entries, e.triggers())
			}
		})
	}
	got := e.triggers()[0]
	if got["trigger"] != cdc.TriggerUpdated || got["person_id"] != resyncPerson || got["field"] != "StageName" || got["new_value"] != `"Closed Won"` {
		t.Errorf("entry %v", got)
	}
	if s, _ := st.Stats(ctx); s.StaleRecords != 0 {
		t.Errorf("%d stale records after resync", s.StaleRecords)
	}
	if stub.calls["sobject"] == 0 || stub.calls["queryAll"] == 0 {
		t.Errorf("calls %v", stub.calls)
	}
}
