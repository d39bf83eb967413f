package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// fakeDecoder decodes by message value: "opp", "account", "garbage",
// "flaky" (fails transiently twice).
type fakeDecoder struct{ flaky int }

func (d *fakeDecoder) Decode(_ context.Context, m *cdc.Message) (*cdc.Event, error) {
	switch string(m.Value) {
	case "opp":
		return &cdc.Event{Entity: cdc.EntityOpportunity, ChangeType: cdc.Update, RecordIDs: []string{"006A"}}, nil
	case "account":
		return &cdc.Event{Entity: "Account", ChangeType: cdc.Update}, nil
	case "flaky":
		if d.flaky < 2 {
			d.flaky++
			return nil, cdc.Transient(cdc.ReasonRegistry, errors.New("registry 503"))
		}
		return &cdc.Event{Entity: cdc.EntityContactRole, ChangeType: cdc.Create, RecordIDs: []string{"00KA"}}, nil
	}
	return nil, cdc.Permanent(cdc.ReasonMalformedAvro, "truncated")
}

type fakeApplier struct {
	failures int
	got      [][]state.Item
	err      error
}

func (a *fakeApplier) ApplyBatch(_ context.Context, items []state.Item) (state.BatchResult, error) {
	if a.err != nil {
		return state.BatchResult{}, a.err
	}
	if a.failures > 0 {
		a.failures--
		return state.BatchResult{}, errors.New("redis: connection refused")
	}
	a.got = append(a.got, items)
	return state.BatchResult{Applied: 2, Duplicates: 1, Triggers: map[string]int{cdc.TriggerAdded: 3}, DeadLetters: map[string]int{"decode": 1}}, nil
}

func msgs(values ...string) []cdc.Message {
	var out []cdc.Message
	for i, v := range values {
		out = append(out, cdc.Message{Topic: "t", Offset: int64(i), Value: []byte(v)})
	}
	return out
}

func TestHandleBatchClassifiesAndRetries(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := &fakeApplier{failures: 2}
	p := New(Config{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, &fakeDecoder{}, app, reg, zerolog.Nop())
	if err := p.HandleBatch(context.Background(), msgs("opp", "garbage", "account", "flaky")); err != nil {
		t.Fatal(err)
	}
	if len(app.got) != 1 || len(app.got[0]) != 4 {
		t.Fatalf("applier saw %d batches", len(app.got))
	}
	items := app.got[0]
	if items[0].Event == nil || items[1].DeadLetter == nil || items[1].DeadLetter.Reason != "malformed_avro" || items[1].DeadLetter.Stage != "decode" ||
		items[2].Event != nil || items[2].DeadLetter != nil || items[3].Event == nil {
		t.Fatalf("items = %+v", items)
	}
	if got := testutil.ToFloat64(p.m.retries); got != 4 {
		t.Errorf("retries = %v, want 4 (2 decode + 2 apply)", got)
	}
	if got := testutil.ToFloat64(p.m.skipped.WithLabelValues("other_entity")); got != 1 {
		t.Errorf("skipped other_entity = %v", got)
	}
	if got := testutil.ToFloat64(p.m.triggers.WithLabelValues(cdc.TriggerAdded)); got != 3 {
		t.Errorf("triggers = %v", got)
	}
	if got := testutil.ToFloat64(p.m.decodeErrors.WithLabelValues(cdc.ReasonRegistry)); got != 2 {
		t.Errorf("decode errors = %v", got)
	}
	if err := p.Ready(); err != nil {
		t.Errorf("not ready after recovery: %v", err)
	}
	problems, err := testutil.CollectAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

func TestHandleBatchStopsOnCancelWithoutSuccess(t *testing.T) {
	app := &fakeApplier{failures: 1 << 30}
	now := time.Now()
	p := New(Config{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, UnhealthyAfter: time.Nanosecond,
		Now: func() time.Time { now = now.Add(time.Second); return now }}, &fakeDecoder{}, app, prometheus.NewRegistry(), zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.HandleBatch(ctx, msgs("opp")) }()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		err := p.Ready()
		return err != nil && strings.Contains(err.Error(), "connection refused"), fmt.Sprintf("Ready() = %v while Redis is down", err)
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("HandleBatch returned %v, want context.Canceled", err)
	}
}

func TestRewindIsReturnedAtOnce(t *testing.T) {
	app := &fakeApplier{err: &state.RewindError{Topic: "t", Offset: 3}}
	p := New(Config{}, &fakeDecoder{}, app, prometheus.NewRegistry(), zerolog.Nop())
	err := p.HandleBatch(context.Background(), msgs("opp"))
	var rw *state.RewindError
	if !errors.As(err, &rw) || rw.Offset != 3 {
		t.Fatalf("err = %v", err)
	}
}
