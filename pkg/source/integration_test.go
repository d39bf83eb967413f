package source

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// These tests need a real Apache Kafka broker: `bash test/kafka.sh start`
// then `eval "$(bash test/kafka.sh env)"`. They skip when
// OPPSYNC_TEST_KAFKA_BROKERS is unset, and fail when CI is set.

func realKafka(t *testing.T) cluster {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	return cluster{
		brokers: brokers,
		createTopic: func(t *testing.T, topic string, partitions int) {
			testenv.CreateTopic(t, brokers, topic, partitions)
		},
	}
}

func TestKafkaConsumeAll(t *testing.T)      { scenarioConsumeAll(t, realKafka(t), 10000) }
func TestKafkaConsumeAllAhead(t *testing.T) { scenarioConsumeAll(t, realKafka(t), 10000, true) }
func TestKafkaPositions(t *testing.T)       { scenarioPositions(t, realKafka(t)) }
func TestKafkaHandover(t *testing.T)        { scenarioHandover(t, realKafka(t)) }
func TestKafkaNoCommitOnFail(t *testing.T)  { scenarioNoCommitOnFailure(t, realKafka(t)) }

// TestKafkaThroughput measures how fast the Source drains a backlog into a
// no-op handler: messages/s from Run (joining the group included) to the
// last message handled.
func TestKafkaThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput measurement skipped in -short mode")
	}
	c := realKafka(t)
	tests := []struct {
		name      string
		n, valLen int
	}{
		{"small values", 200_000, 20},
		{"1KiB values", 50_000, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
			c.createTopic(t, topic, 4)
			produceSized(t, c, topic, tt.n, tt.valLen)

			var count countingHandler
			cfg := testConfig(c, topic, group)
			cfg.MaxBatch = DefaultMaxBatch
			t0 := time.Now()
			src := start(t, cfg, &count, nil)
			testenv.Eventually(t, waitLong, func() (bool, string) {
				got := count.n.Load()
				return got >= int64(tt.n), fmt.Sprintf("handled %d of %d", got, tt.n)
			})
			d := time.Since(t0)
			t.Logf("consumed %d messages of %d B over 4 partitions in %s: %.0f msg/s, %.1f MB/s, %d batches (avg %.0f)",
				tt.n, tt.valLen, d.Round(time.Millisecond), float64(tt.n)/d.Seconds(),
				float64(tt.n*tt.valLen)/d.Seconds()/1e6, count.batches.Load(), float64(tt.n)/float64(count.batches.Load()))
			if err := src.stop(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func produceSized(t *testing.T, c cluster, topic string, n, valLen int) {
	t.Helper()
	w, err := NewWriter(Config{Brokers: c.brokers, Topics: []string{topic}, GroupID: "producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	val := make([]byte, valLen)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	const chunk = 5000
	for lo := 0; lo < n; lo += chunk {
		msgs := make([]kafka.Message, 0, chunk)
		for i := lo; i < min(lo+chunk, n); i++ {
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: val})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
}

type countingHandler struct {
	n, batches atomic.Int64
}

func (h *countingHandler) HandleBatch(_ context.Context, msgs []cdc.Message) error {
	h.n.Add(int64(len(msgs)))
	h.batches.Add(1)
	return nil
}

// TestKafkaLatency measures the delay from producing a message to its
// HandleBatch call at a steady 1,000 msg/s over 4 partitions.
func TestKafkaLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency measurement skipped in -short mode")
	}
	c := realKafka(t)
	topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
	c.createTopic(t, topic, 4)

	var mu sync.Mutex
	var lags []time.Duration
	h := handlerFunc(func(_ context.Context, msgs []cdc.Message) error {
		now := time.Now()
		mu.Lock()
		for _, m := range msgs {
			lags = append(lags, now.Sub(m.Time))
		}
		mu.Unlock()
		return nil
	})
	src := start(t, testConfig(c, topic, group), h, nil)
	testenv.Eventually(t, waitLong, func() (bool, string) {
		err := src.Ready()
		return err == nil, fmt.Sprintf("Ready: %v", err)
	})

	w, err := NewWriter(Config{Brokers: c.brokers, Topics: []string{topic}, GroupID: "producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.BatchTimeout = time.Millisecond
	const seconds, perTick = 5, 10 // 10 messages every 10 ms
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	n := 0
	for range seconds * 100 {
		<-tick.C
		msgs := make([]kafka.Message, perTick)
		for i := range msgs {
			msgs[i] = kafka.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(n)), Value: []byte("v"), Time: time.Now()}
			n++
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
	testenv.Eventually(t, waitLong, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(lags) >= n, fmt.Sprintf("handled %d of %d", len(lags), n)
	})
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[int(q*float64(len(lags)-1))] }
	t.Logf("produce→HandleBatch latency at 1,000 msg/s, %d messages: p50 %s, p99 %s, max %s (includes the producer's acks=all round trip)",
		len(lags), p(0.5), p(0.99), lags[len(lags)-1])
}

type handlerFunc func(ctx context.Context, msgs []cdc.Message) error

func (f handlerFunc) HandleBatch(ctx context.Context, msgs []cdc.Message) error { return f(ctx, msgs) }

func TestKafkaAddPartitions(t *testing.T) { scenarioAddPartitions(t, realKafka(t)) }
