package pipeline

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/source"
	"github.com/oppsync/oppsync/pkg/state"
)

// lockedApplier is a panicApplier shared with the source's goroutines.
type lockedApplier struct {
	mu sync.Mutex
	panicApplier
}

func (a *lockedApplier) ApplyBatch(ctx context.Context, items []state.Item) (state.BatchResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.panicApplier.ApplyBatch(ctx, items)
}

func (a *lockedApplier) snapshot() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.applied...)
}

// Through a real consumer (on kfake): messages whose handling panics are
// dead-lettered, the consumer goes on and commits past them.
func TestSourceSurvivesPanics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const topic = "panics"
	if err := c.CreateTopic(topic, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg := source.DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.GroupID = c.ListenAddrs(), []string{topic}, "g"
	cfg.SessionTimeout, cfg.HeartbeatInterval, cfg.CommitInterval = 6*time.Second, 200*time.Millisecond, 50*time.Millisecond
	w, err := source.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	values := []string{"opp", "panic", "opp", "boom", "index", "account", "opp"}
	var msgs []kafka.Message
	for _, v := range values {
		msgs = append(msgs, kafka.Message{Topic: topic, Value: []byte(v)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	app := &lockedApplier{}
	p := New(Config{}, &panicDecoder{}, app, prometheus.NewRegistry(), zerolog.Nop())
	src, err := source.New(cfg, p, nil, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(runCtx) }()
	want := "opp dlq:decode:internal_error opp dlq:apply:internal_error dlq:decode:internal_error account opp"
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		got := strings.Join(app.snapshot(), " ")
		return got == want, "applied: " + got
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := testutil.ToFloat64(p.m.panics.WithLabelValues(stageDecode)) + testutil.ToFloat64(p.m.panics.WithLabelValues(stageApply)); got != 3 {
		t.Errorf("panics = %v, want 3", got)
	}
}
