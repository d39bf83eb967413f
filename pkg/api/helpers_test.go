package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/view"
)

// org is a synthetic org whose events flowed through the real pipeline
// (generator → encoder → decoder → pipeline → state) into the test Redis,
// with a View following it.
type org struct {
	t     testing.TB
	gen   *synth.Generator
	enc   *synth.Encoder
	pipe  *pipeline.Pipeline
	store *state.Store
	view  *view.View
	rdb   *redis.Client
	name  string
	off   int64
	clock time.Time
}

const testTopic = "salesforce.changes"

func newOrg(t testing.TB, cfg synth.GenConfig) *org {
	t.Helper()
	rdb := testenv.NewRedis(t)
	o := &org{t: t, rdb: rdb, name: testenv.UniqueName(t, "api")}
	cfg.Org = o.name
	o.gen = synth.NewGenerator(cfg)
	enc, err := synth.NewEncoder(synth.EncoderConfig{Topic: func(string) string { return testTopic }})
	if err != nil {
		t.Fatal(err)
	}
	o.enc = enc
	o.pipe, o.store = inproc.New(t, rdb, enc, decode.Config{HiddenFields: []string{"Opportunity.Description"}}, state.Config{
		Org: o.name, Currency: "USD", IgnoreFields: synth.DefaultIgnoreFields,
		Now: func() time.Time { return o.clock },
	})
	o.view, err = view.New(o.store.Replica(), view.Config{Block: 100 * time.Millisecond, OnError: func(err error) { t.Logf("view: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testenv.DropOrg(rdb, o.name) })
	return o
}

// feed generates n changes and pushes them through the pipeline in batches.
func (o *org) feed(n int) {
	o.t.Helper()
	ctx := context.Background()
	batch := make([]cdc.Message, 0, 500)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := o.pipe.HandleBatch(ctx, batch); err != nil {
			o.t.Fatalf("HandleBatch: %v", err)
		}
		batch = batch[:0]
	}
	for i := 0; i < n; i++ {
		ch := o.gen.Next()
		m, err := o.enc.Encode(ctx, ch)
		if err != nil {
			o.t.Fatalf("Encode: %v", err)
		}
		m.Partition, m.Offset = 0, o.off
		o.off++
		o.clock = time.UnixMilli(ch.Version.CommitTimestamp)
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
}

// runView starts the view and waits until it is loaded.
func (o *org) runView() {
	o.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.view.Run(ctx) }()
	o.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			o.t.Errorf("view.Run: %v", err)
		}
	})
	testenv.Eventually(o.t, 30*time.Second, func() (bool, string) {
		if err := o.view.Ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func newServer(t testing.TB, q Queries, cfg Config, checks map[string]func(context.Context) error) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Deps{Queries: q, Gatherer: reg, Registerer: reg, Checks: checks, Currency: "USD"}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

type response struct {
	code int
	body []byte
	hdr  http.Header
}

// do sends one request to h and returns the answer, after checking the
// exchange against the OpenAPI document (except in benchmarks).
func do(t testing.TB, h http.Handler, method, path, body string, hdr ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if _, bench := t.(*testing.B); !bench {
		// Every exchange of the tests is held to the OpenAPI document.
		checkExchange(t, req, []byte(body), rec)
	}
	return response{code: rec.Code, body: rec.Body.Bytes(), hdr: rec.Header()}
}

func errorText(t testing.TB, r response) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error (%d): %s", r.code, r.body)
	}
	return e.Error
}
