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

// runEventually runs eventually on a fakeTB in a goroutine of its own (its
// Fatalf ends that goroutine) and returns the failure it reported, "" if none.
func runEventually(t *testing.T, timeout time.Duration, cond func() (bool, string), now func() time.Time, sleep func(time.Duration)) string {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventually(f, timeout, cond, now, sleep)
	}()
	// Only a hang guard: Eventually must end, whatever the machine's load.
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("Eventually(%v) has not returned after 2 minutes", timeout)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// TestEventually checks, on the real clock, that Eventually polls until the
// condition holds and fails with the last message at the deadline. The
// deadlines are far from what the polls need, so load cannot fail it.
func TestEventually(t *testing.T) {
	tests := []struct {
		name      string
		timeout   time.Duration
		succeedAt int // call number on which cond first returns true; 0 = never
		wantFail  string
	}{
		{name: "true at once", timeout: time.Minute, succeedAt: 1},
		{name: "true on the fifth poll", timeout: time.Minute, succeedAt: 5},
		{name: "true at once with no time left", timeout: 0, succeedAt: 1},
		{name: "never true reports the last message", timeout: 50 * time.Millisecond, wantFail: "not true within 50ms: call "},
		{name: "no time left polls once", timeout: 0, wantFail: "not true within 0s: call 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			cond := func() (bool, string) {
				calls++
				return tt.succeedAt != 0 && calls >= tt.succeedAt, fmt.Sprintf("call %d", calls)
			}
			start := time.Now()
			failed := runEventually(t, tt.timeout, cond, time.Now, time.Sleep)
			ended := time.Since(start)
			if tt.wantFail == "" {
				if failed != "" {
					t.Fatalf("Eventually failed: %s", failed)
				}
				if calls != tt.succeedAt {
					t.Fatalf("cond called %d times, want %d", calls, tt.succeedAt)
				}
				return
			}
			if !strings.HasPrefix(failed, tt.wantFail) {
				t.Fatalf("failure = %q, want prefix %q", failed, tt.wantFail)
			}
			if last := fmt.Sprintf(": call %d", calls); !strings.HasSuffix(failed, last) {
				t.Fatalf("failure = %q, want the last message %q", failed, last)
			}
			// The clock is monotonic: a failure before the deadline is a bug,
			// not the machine being slow.
			if ended < tt.timeout {
				t.Fatalf("failed after %v, before the %v deadline", ended, tt.timeout)
			}
		})
	}
}

// fakeClock is a clock that moves only when Eventually sleeps.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(d time.Duration) {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
}

// TestEventuallyDeadline checks the deadline on a fake clock, so that no
// scheduling delay changes the count: Eventually keeps polling with short
// sleeps that never pass the deadline, polls a last time at the deadline,
// and then reports that poll's message.
func TestEventuallyDeadline(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		msg     string // what cond returns; "" = no message
		want    string
	}{
		{name: "last message", timeout: 100 * time.Millisecond, msg: "call", want: "not true within 100ms: call "},
		{name: "long timeout", timeout: 10 * time.Second, msg: "call", want: "not true within 10s: call "},
		{name: "no message", timeout: 100 * time.Millisecond, want: "not true within 100ms: condition never held"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			deadline := clock.now.Add(tt.timeout)
			var polls []time.Time
			cond := func() (bool, string) {
				polls = append(polls, clock.now)
				if tt.msg == "" {
					return false, ""
				}
				return false, fmt.Sprintf("%s %d", tt.msg, len(polls))
			}
			failed := runEventually(t, tt.timeout, cond, clock.Now, clock.Sleep)
			want := tt.want
			if tt.msg != "" {
				want += fmt.Sprint(len(polls))
			}
			if failed != want {
				t.Fatalf("failure = %q, want %q", failed, want)
			}
			if last := polls[len(polls)-1]; !last.Equal(deadline) {
				t.Errorf("last poll at %v, want one at the deadline %v", last.Sub(deadline), deadline)
			}
			// A growing interval, but still polling: at least one poll per
			// second, and more than a few in all.
			if len(polls) < 4 {
				t.Errorf("cond polled %d times in %v, want several", len(polls), tt.timeout)
			}
			for i, d := range clock.sleeps {
				if d <= 0 || d > time.Second {
					t.Errorf("sleep %d = %v, want in (0, 1s]", i, d)
				}
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
