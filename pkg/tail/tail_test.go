package tail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/testenv"
)

// stream returns a fresh stream key of the test, deleted at the end.
func stream(t *testing.T, rdb *redis.Client, name string) string {
	t.Helper()
	key := "oppsync:{" + testenv.UniqueName(t, "tail") + "}:" + name
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	return key
}

// write appends n entries with event ids prefix-0 ... and returns the ids.
func write(t *testing.T, rdb *redis.Client, key, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	pipe := rdb.Pipeline()
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: key, Values: []any{"trigger", "added_to_opportunity", "event_id", ids[i]}})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// collector records the event ids a consumer handled.
type collector struct {
	mu      sync.Mutex
	ids     []string
	claimed int
}

func (c *collector) add(e Entry) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, e.Values["event_id"])
	if e.Claimed {
		c.claimed++
	}
	return len(c.ids)
}

func (c *collector) snapshot() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...), c.claimed
}

// run starts a consumer and returns a function that stops it and returns
// Run's error.
func run(t *testing.T, c *Consumer, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func pending(t *testing.T, rdb *redis.Client, key, group string) int64 {
	t.Helper()
	p, err := rdb.XPending(context.Background(), key, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// A consumer dies after reading a batch and handling only part of it: the
// rest of that batch stays pending on it. A second consumer of the group
// claims those entries once they have been idle for MinIdle, and reads the
// entries nobody read: together they handle every entry, and nothing stays
// pending.
func TestConsumerKilledMidBatch(t *testing.T) {
	rdb := testenv.NewRedis(t)
	key := stream(t, rdb, "triggers:added_to_opportunity")
	all := write(t, rdb, key, "ev", 250)
	group := "g"

	// A: reads batches of 100, dies (its context ends) after handling 37.
	a, err := New(Config{Streams: []string{key}, Group: group, Consumer: "a", Count: 100, MinIdle: time.Hour}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	var gotA collector
	ctxA, killA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() {
		doneA <- a.Run(ctxA, func(ctx context.Context, e Entry) error {
			if gotA.add(e) == 37 {
				killA()
			}
			return nil
		})
	}()
	if err := <-doneA; err != nil {
		t.Fatalf("A: %v", err)
	}
	idsA, _ := gotA.snapshot()
	if len(idsA) != 37 {
		t.Fatalf("A handled %d entries, want 37", len(idsA))
	}
	if n := pending(t, rdb, key, group); n != 100-37 {
		t.Fatalf("%d entries pending after A died, want the %d it read and did not handle", n, 100-37)
	}

	// B: a different consumer of the group.
	b, err := New(Config{Streams: []string{key}, Group: group, Consumer: "b", Count: 50, MinIdle: 200 * time.Millisecond}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	var gotB collector
	stopB := run(t, b, func(_ context.Context, e Entry) error { gotB.add(e); return nil })
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		ids, _ := gotB.snapshot()
		return len(ids) >= len(all)-37, fmt.Sprintf("B handled %d of %d", len(ids), len(all)-37)
	})
	if err := stopB(); err != nil {
		t.Fatalf("B: %v", err)
	}
	idsB, claimed := gotB.snapshot()
	if claimed != 100-37 {
		t.Errorf("B claimed %d entries, want the %d A left pending", claimed, 100-37)
	}
	seen := map[string]int{}
	for _, id := range append(idsA, idsB...) {
		seen[id]++
	}
	var missing, twice []string
	for _, id := range all {
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	if len(missing) > 0 || len(twice) > 0 {
		t.Errorf("lost %v; handled twice %v", missing, twice)
	}
	if n := pending(t, rdb, key, group); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
}

// A handler error stops Run and leaves the entry pending; the same
// consumer, restarted, handles it first (re-reading its own pending
// entries), marked Claimed.
func TestHandlerErrorLeavesEntryPending(t *testing.T) {
	rdb := testenv.NewRedis(t)
	key := stream(t, rdb, "dlq")
	all := write(t, rdb, key, "ev", 5)
	cfg := Config{Streams: []string{key}, Consumer: "a", MinIdle: time.Hour}
	c, err := New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("downstream is down")
	var first collector
	err = c.Run(context.Background(), func(_ context.Context, e Entry) error {
		if e.Values["event_id"] == all[2] {
			return boom
		}
		first.add(e)
		return nil
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), key) {
		t.Fatalf("Run = %v, want the handler's error naming the stream", err)
	}
	if n := pending(t, rdb, key, "oppsync-tail"); n != 3 {
		t.Fatalf("%d pending, want 3 (the failed entry and the two read after it)", n)
	}
	c2, err := New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	var second collector
	stop := run(t, c2, func(_ context.Context, e Entry) error { second.add(e); return nil })
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		ids, _ := second.snapshot()
		return len(ids) == 3, fmt.Sprintf("handled %v", ids)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ids, claimed := second.snapshot()
	if strings.Join(ids, ",") != strings.Join(all[2:], ",") || claimed != 3 {
		t.Errorf("restarted consumer handled %v (%d claimed), want %v, all claimed", ids, claimed, all[2:])
	}
}

// A new group starts at Start: "0" takes the entries already written, "$"
// only later ones. The group then keeps its position.
func TestStart(t *testing.T) {
	for _, tc := range []struct {
		start string
		want  []string
	}{
		{StartEarliest, []string{"old-0", "old-1", "new-0"}},
		{StartLatest, []string{"new-0"}},
	} {
		t.Run(tc.start, func(t *testing.T) {
			rdb := testenv.NewRedis(t)
			key := stream(t, rdb, "triggers:opportunity_updated")
			write(t, rdb, key, "old", 2)
			c, err := New(Config{Streams: []string{key}, Consumer: "a", Start: tc.start, Block: 50 * time.Millisecond}, rdb)
			if err != nil {
				t.Fatal(err)
			}
			var got collector
			stop := run(t, c, func(_ context.Context, e Entry) error { got.add(e); return nil })
			// The group exists once Run created it: then write the new entry.
			testenv.Eventually(t, 10*time.Second, func() (bool, string) {
				groups, err := rdb.XInfoGroups(context.Background(), key).Result()
				return err == nil && len(groups) == 1, fmt.Sprintf("groups %v %v", groups, err)
			})
			write(t, rdb, key, "new", 1)
			testenv.Eventually(t, 10*time.Second, func() (bool, string) {
				ids, _ := got.snapshot()
				return len(ids) > 0 && ids[len(ids)-1] == "new-0", fmt.Sprintf("handled %v", ids)
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			ids, _ := got.snapshot()
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Errorf("handled %v, want %v", ids, tc.want)
			}
		})
	}
}

// Several streams are followed at once, each entry reported with its
// stream.
func TestSeveralStreams(t *testing.T) {
	rdb := testenv.NewRedis(t)
	k1, k2 := stream(t, rdb, "triggers:added_to_opportunity"), stream(t, rdb, "triggers:removed_from_opportunity")
	write(t, rdb, k1, "a", 3)
	write(t, rdb, k2, "r", 2)
	c, err := New(Config{Streams: []string{k1, k2}, Consumer: "x", Block: 50 * time.Millisecond}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	stop := run(t, c, func(_ context.Context, e Entry) error {
		mu.Lock()
		defer mu.Unlock()
		got[e.Stream] = append(got[e.Stream], e.Values["event_id"])
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got[k1]) == 3 && len(got[k2]) == 2, fmt.Sprint(got)
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for k, ids := range got {
		if !sort.StringsAreSorted(ids) {
			t.Errorf("%s out of order: %v", k, ids)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no stream", Config{Consumer: "a"}, "tail: no stream to follow"},
		{"empty stream", Config{Streams: []string{""}, Consumer: "a"}, "tail: empty stream key"},
		{"no consumer", Config{Streams: []string{"s"}}, "tail: the consumer name is required"},
		{"bad start", Config{Streams: []string{"s"}, Consumer: "a", Start: "latest"}, `tail: start "latest" is neither "0" nor "$"`},
		{"negative", Config{Streams: []string{"s"}, Consumer: "a", MinIdle: -time.Second}, "tail: durations and counts must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	c := Config{Streams: []string{"s"}, Consumer: "a", MinIdle: 4 * time.Second}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Group != "oppsync-tail" || c.Start != StartEarliest || c.ClaimEvery != 2*time.Second || c.Count != 100 || c.Block != 2*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

// Entries trimmed from the stream while pending (Redis hands them back
// without fields, or drops them from the pending list) are settled without
// a handler call, whether re-read by their consumer or claimed by another.
func TestTrimmedWhilePending(t *testing.T) {
	for _, tc := range []struct{ name, second string }{
		{"own pending", "a"},
		{"claimed", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := testenv.NewRedis(t)
			key := stream(t, rdb, "triggers:added_to_opportunity")
			write(t, rdb, key, "ev", 5)
			cfg := Config{Streams: []string{key}, Consumer: "a", MinIdle: 50 * time.Millisecond, Block: 50 * time.Millisecond}
			a, err := New(cfg, rdb)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if err := a.Run(ctx, func(ctx context.Context, _ Entry) error { cancel(); return ctx.Err() }); err != nil {
				t.Fatal(err)
			}
			if n := pending(t, rdb, key, "oppsync-tail"); n != 5 {
				t.Fatalf("%d pending, want 5", n)
			}
			if err := rdb.XTrimMaxLen(context.Background(), key, 0).Err(); err != nil {
				t.Fatal(err)
			}
			cfg.Consumer = tc.second
			b, err := New(cfg, rdb)
			if err != nil {
				t.Fatal(err)
			}
			var got collector
			stop := run(t, b, func(_ context.Context, e Entry) error { got.add(e); return nil })
			testenv.Eventually(t, 10*time.Second, func() (bool, string) {
				n := pending(t, rdb, key, "oppsync-tail")
				return n == 0, fmt.Sprintf("%d pending", n)
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if ids, _ := got.snapshot(); len(ids) != 0 {
				t.Errorf("handler called for trimmed entries %v", ids)
			}
		})
	}
}

// A Redis that does not answer is retried, each error reported, until ctx
// ends: Run then returns nil.
func TestRedisErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	errs := make(chan error, 100)
	c, err := New(Config{Streams: []string{"s"}, Consumer: "a", RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
		OnError: func(err error) { errs <- err }}, rdb)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, c, func(context.Context, Entry) error { t.Error("handler called"); return nil })
	for i := 0; i < 3; i++ {
		select {
		case err := <-errs:
			if !strings.Contains(err.Error(), "creating group oppsync-tail on s") {
				t.Errorf("reported %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d errors reported, want 3 attempts", i)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil after ctx ended", err)
	}
}
