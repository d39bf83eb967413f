package testenv

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func TestUniqueName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	tests := []struct {
		name   string
		prefix string
		want   string // expected start of the name, before the random suffix
	}{
		{name: "plain prefix", prefix: "org", want: "org-testuniquename-plain-prefix-"},
		{name: "prefix needing sanitising", prefix: "My_Topic.v2", want: "my-topic-v2-testuniquename-prefix-needing-sanitising-"},
		{name: "empty prefix", prefix: "", want: "testuniquename-empty-prefix-"},
		{name: "long prefix is cut", prefix: strings.Repeat("a", 200), want: strings.Repeat("a", 71) + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := UniqueName(t, tt.prefix), UniqueName(t, tt.prefix)
			if a == b {
				t.Fatalf("two calls gave the same name %q", a)
			}
			for _, n := range []string{a, b} {
				if !strings.HasPrefix(n, tt.want) {
					t.Errorf("UniqueName = %q, want prefix %q", n, tt.want)
				}
				if len(n) > maxNameLen {
					t.Errorf("UniqueName = %q: %d chars, max %d", n, len(n), maxNameLen)
				}
				if !valid.MatchString(n) {
					t.Errorf("UniqueName = %q: not lowercase dash-separated [a-z0-9]", n)
				}
			}
		})
	}
}

// fakeTB records what Eventually reports; its Fatalf ends the goroutine like
// testing.T's does.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	tests := []struct {
		name      string
		succeedAt int // call number on which cond first returns true; 0 = never
		wantFail  string
	}{
		{name: "true at once", succeedAt: 1},
		{name: "true after some polls", succeedAt: 4},
		{name: "never true reports last message", succeedAt: 0, wantFail: "not true within 100ms: call"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			calls := 0
			done := make(chan struct{})
			go func() {
				defer close(done)
				Eventually(f, 100*time.Millisecond, func() (bool, string) {
					calls++
					return tt.succeedAt != 0 && calls >= tt.succeedAt, fmt.Sprintf("call %d", calls)
				})
			}()
			<-done
			f.mu.Lock()
			defer f.mu.Unlock()
			if tt.wantFail == "" {
				if f.failed != "" {
					t.Fatalf("Eventually failed: %s", f.failed)
				}
				if calls != tt.succeedAt {
					t.Fatalf("cond called %d times, want %d", calls, tt.succeedAt)
				}
				return
			}
			if !strings.HasPrefix(f.failed, tt.wantFail) {
				t.Fatalf("failure = %q, want prefix %q", f.failed, tt.wantFail)
			}
			if last := fmt.Sprintf("call %d", calls); !strings.HasSuffix(f.failed, last) {
				t.Fatalf("failure = %q, want the last message %q", f.failed, last)
			}
			if calls < 2 {
				t.Fatalf("cond called %d times within the timeout, want several", calls)
			}
		})
	}
}

func TestRedis(t *testing.T) {
	client := NewRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if got, err := client.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v; want PONG", got, err)
	}
	key := "oppsync:{" + UniqueName(t, "org") + "}:probe"
	t.Cleanup(func() { client.Del(context.Background(), key) })
	if err := client.Set(ctx, key, "v1", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := client.Get(ctx, key).Result(); err != nil || got != "v1" {
		t.Fatalf("GET = %q, %v; want v1", got, err)
	}
	// make test's Redis runs with AOF on: fault tests rely on it.
	cfg, err := client.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		t.Fatalf("CONFIG GET appendonly: %v", err)
	}
	if cfg["appendonly"] != "yes" {
		t.Errorf("appendonly = %q, want yes", cfg["appendonly"])
	}
}

// TestKafkaConsumerGroup proves the test broker (Apache Kafka 4.x, which
// dropped old protocol versions) works with kafka-go's consumer groups:
// create a topic, produce, consume in a group, commit, and resume from the
// committed offset in a second reader of the same group.
func TestKafkaConsumerGroup(t *testing.T) {
	brokers := KafkaBrokers(t)
	topic := UniqueName(t, "topic")
	group := UniqueName(t, "group")
	const partitions = 4
	CreateTopic(t, brokers, topic, partitions)

	parts, err := readPartitions(brokers, topic)
	if err != nil {
		t.Fatalf("reading partitions: %v", err)
	}
	if len(parts) != partitions {
		t.Fatalf("topic has %d partitions, want %d", len(parts), partitions)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	t.Cleanup(func() { _ = w.Close() })
	produce := func(key, value string) {
		t.Helper()
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: []byte(value)}); err != nil {
			t.Fatalf("producing %s: %v", key, err)
		}
	}
	consumeOne := func() kafka.Message {
		t.Helper()
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:     brokers,
			GroupID:     group,
			Topic:       topic,
			StartOffset: kafka.FirstOffset,
			MaxWait:     100 * time.Millisecond,
		})
		defer func() {
			if err := r.Close(); err != nil {
				t.Errorf("closing reader: %v", err)
			}
		}()
		// ReadMessage commits the offset synchronously in group mode.
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading in group %s: %v", group, err)
		}
		return m
	}

	produce("k1", "first")
	m := consumeOne()
	if string(m.Key) != "k1" || string(m.Value) != "first" {
		t.Fatalf("first read = %s=%s, want k1=first", m.Key, m.Value)
	}

	// The second reader of the group must resume after the committed
	// offset: it sees only the second message.
	produce("k2", "second")
	m = consumeOne()
	if string(m.Key) != "k2" || string(m.Value) != "second" {
		t.Fatalf("read after commit = %s=%s, want k2=second", m.Key, m.Value)
	}

	// The commits are visible through OffsetFetch.
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	var total int64
	Eventually(t, 15*time.Second, func() (bool, string) {
		resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3}}})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return false, fmt.Sprintf("OffsetFetch: %v", err)
		}
		total = 0
		for _, p := range resp.Topics[topic] {
			if p.Error != nil && !errors.Is(p.Error, kafka.UnknownTopicOrPartition) {
				return false, fmt.Sprintf("partition %d: %v", p.Partition, p.Error)
			}
			if p.CommittedOffset > 0 {
				total += p.CommittedOffset
			}
		}
		return total == 2, fmt.Sprintf("committed offsets sum to %d, want 2", total)
	})
}
