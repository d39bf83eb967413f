package source

// The scenarios below are the source's contract tests. They run against
// kfake (source_test.go) and, when OPPSYNC_TEST_KAFKA_BROKERS is set, against
// a real Apache Kafka broker (integration_test.go).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// cluster is where a scenario runs.
type cluster struct {
	brokers     []string
	createTopic func(t *testing.T, topic string, partitions int)
}

const waitLong = 60 * time.Second

func testConfig(c cluster, topic, group string) Config {
	return Config{
		Brokers:           c.brokers,
		Topics:            []string{topic},
		GroupID:           group,
		StartOffset:       StartEarliest,
		MaxBatch:          100,
		SessionTimeout:    6 * time.Second, // the broker's group.min.session.timeout.ms
		HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout:  10 * time.Second,
		DrainTimeout:      3 * time.Second,
		CommitInterval:    50 * time.Millisecond,
	}
}

func testLogger() zerolog.Logger {
	if os.Getenv("OPPSYNC_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).With().Timestamp().Logger()
}

// running is a Source started in the background.
type running struct {
	*Source
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func start(t *testing.T, cfg Config, h Handler, pos Positions) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(cfg, h, pos, reg, testLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Source: s, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and returns its result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(waitLong):
			t.Errorf("Run did not return within %s of cancellation", waitLong)
		}
	})
	return r.err
}

// recorder is a Handler that records what it applied.
type recorder struct {
	mu      sync.Mutex
	offsets map[topicPartition][]int64
	values  map[string]int
	batches int
	bad     []string // invariant violations seen in HandleBatch
	hook    func(ctx context.Context, msgs []cdc.Message) error
}

func newRecorder() *recorder {
	return &recorder{offsets: make(map[topicPartition][]int64), values: make(map[string]int)}
}

func (r *recorder) HandleBatch(ctx context.Context, msgs []cdc.Message) error {
	if len(msgs) == 0 {
		r.violation("empty batch")
		return nil
	}
	for i, m := range msgs {
		if m.Topic != msgs[0].Topic || m.Partition != msgs[0].Partition {
			r.violation("batch mixes partitions")
		}
		if i > 0 && m.Offset != msgs[i-1].Offset+1 {
			r.violation(fmt.Sprintf("batch not contiguous: %d after %d", m.Offset, msgs[i-1].Offset))
		}
		if v, ok := m.HeaderValue("n"); !ok || string(v) != string(m.Value) || m.Time.IsZero() || len(m.Key) == 0 {
			r.violation(fmt.Sprintf("message %s/%d@%d lost its key, header or time", m.Topic, m.Partition, m.Offset))
		}
	}
	if r.hook != nil {
		if err := r.hook(ctx, msgs); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	for _, m := range msgs {
		tp := topicPartition{m.Topic, m.Partition}
		r.offsets[tp] = append(r.offsets[tp], m.Offset)
		r.values[string(m.Value)]++
	}
	return nil
}

func (r *recorder) violation(s string) {
	r.mu.Lock()
	r.bad = append(r.bad, s)
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.values {
		n += c
	}
	return n
}

func (r *recorder) snapshot() (map[topicPartition][]int64, map[string]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	offs := make(map[topicPartition][]int64, len(r.offsets))
	for tp, o := range r.offsets {
		offs[tp] = slices.Clone(o)
	}
	vals := make(map[string]int, len(r.values))
	for v, c := range r.values {
		vals[v] = c
	}
	return offs, vals, slices.Clone(r.bad)
}

// produce writes values from..to-1 to topic, keyed so they spread over the
// partitions, each with header n=value.
func produce(t *testing.T, c cluster, topic string, from, to int) {
	t.Helper()
	produceWith(t, Config{Brokers: c.brokers, Topics: []string{topic}, GroupID: "producer"}, topic, from, to)
}

// produceWith is produce with cfg's brokers and security settings.
func produceWith(t *testing.T, cfg Config, topic string, from, to int) {
	t.Helper()
	w, err := NewWriter(cfg)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	const chunk = 5000
	for lo := from; lo < to; lo += chunk {
		var msgs []kafka.Message
		for i := lo; i < min(lo+chunk, to); i++ {
			v := []byte(strconv.Itoa(i))
			msgs = append(msgs, kafka.Message{
				Topic:   topic,
				Key:     []byte("key-" + strconv.Itoa(i)),
				Value:   v,
				Headers: []kafka.Header{{Key: "n", Value: v}},
			})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatalf("producing to %s: %v", topic, err)
		}
	}
}

// committed returns the group's committed offset per partition (-1: none).
func committed(t *testing.T, c cluster, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.brokers...)}
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	out := make(map[int]int64)
	if err != nil {
		t.Logf("fetching committed offsets: %v", err)
		return out
	}
	for _, p := range res.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

func commitAsSimpleConsumer(t *testing.T, c cluster, group, topic string, offsets map[int]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cs []kafka.OffsetCommit
	for p, o := range offsets {
		cs = append(cs, kafka.OffsetCommit{Partition: p, Offset: o})
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.brokers...)}
	res, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: cs},
	})
	if err == nil {
		for _, ps := range res.Topics {
			for _, p := range ps {
				err = errors.Join(err, p.Error)
			}
		}
	}
	if err != nil {
		t.Fatalf("committing offsets for group %s: %v", group, err)
	}
}

// checkExactlyOnce asserts that values 0..n-1 were each handled exactly once
// and that every partition was handled in offset order from offset 0 with no
// gap. It returns the number of messages per partition.
func checkExactlyOnce(t *testing.T, recs []*recorder, topic string, n int) map[int]int64 {
	t.Helper()
	total := make(map[string]int)
	perPart := make(map[int]int64)
	for _, r := range recs {
		offs, vals, bad := r.snapshot()
		for _, b := range bad {
			t.Errorf("handler saw: %s", b)
		}
		for v, c := range vals {
			total[v] += c
		}
		for tp, o := range offs {
			if tp.topic != topic {
				t.Errorf("message from unexpected topic %s", tp.topic)
			}
			if !slices.IsSorted(o) {
				t.Errorf("partition %d handled out of order", tp.partition)
			}
			perPart[tp.partition] += int64(len(o))
		}
	}
	for i := range n {
		if c := total[strconv.Itoa(i)]; c != 1 {
			t.Errorf("value %d handled %d times, want once", i, c)
		}
	}
	if len(total) != n {
		t.Errorf("handled %d distinct values, want %d", len(total), n)
	}
	return perPart
}

// consumeAll starts a Source on cfg, checks that it handles topic's n
// messages exactly once and that Ping succeeds.
func consumeAll(t *testing.T, cfg Config, topic string, n int) {
	t.Helper()
	rec := newRecorder()
	src := start(t, cfg, rec, nil)
	waitCount(t, n, rec)
	checkExactlyOnce(t, []*recorder{rec}, topic, n)
	if err := src.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func waitCount(t *testing.T, n int, recs ...*recorder) {
	t.Helper()
	testenv.Eventually(t, waitLong, func() (bool, string) {
		got := 0
		for _, r := range recs {
			got += r.count()
		}
		return got >= n, fmt.Sprintf("handled %d of %d messages", got, n)
	})
}

func waitCommitted(t *testing.T, c cluster, group, topic string, want map[int]int64) {
	t.Helper()
	testenv.Eventually(t, waitLong, func() (bool, string) {
		got := committed(t, c, group, topic, len(want))
		for p, o := range want {
			if got[p] != o {
				return false, fmt.Sprintf("committed %v, want %v", got, want)
			}
		}
		return true, ""
	})
}

// scenarioConsumeAll: N messages over 4 partitions are each handled exactly
// once, in per-partition order, and their offsets get committed.
// With ahead, the handler is an AheadHandler and the order of its calls is
// checked as well.
func scenarioConsumeAll(t *testing.T, c cluster, n int, ahead ...bool) {
	topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
	c.createTopic(t, topic, 4)
	produce(t, c, topic, 0, n/2)

	rec := newRecorder()
	var h Handler = rec
	var ah *aheadRecorder
	if len(ahead) > 0 && ahead[0] {
		ah = &aheadRecorder{recorder: rec, begun: map[topicPartition][]*aheadPending{}}
		h = ah
	}
	src := start(t, testConfig(c, topic, group), h, nil)
	if ah != nil {
		defer func() {
			ah.mu.Lock()
			defer ah.mu.Unlock()
			if ah.ahead == 0 {
				t.Errorf("no batch was begun while another was in flight")
			}
		}()
	}
	testenv.Eventually(t, waitLong, func() (bool, string) {
		err := src.Ready()
		return err == nil, fmt.Sprintf("Ready: %v", err)
	})
	produce(t, c, topic, n/2, n) // while consuming
	waitCount(t, n, rec)

	perPart := checkExactlyOnce(t, []*recorder{rec}, topic, n)
	if len(perPart) != 4 {
		t.Errorf("messages landed on %d partitions, want 4", len(perPart))
	}
	waitCommitted(t, c, group, topic, perPart)
	if err := src.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if got := testutil.ToFloat64(src.m.commitsOK); got < 1 {
		t.Errorf("kafka_commits_total{result=ok} = %v, want ≥ 1", got)
	}
	if got := testutil.ToFloat64(src.m.rebalances); got < 1 {
		t.Errorf("kafka_rebalances_total = %v, want ≥ 1", got)
	}
	for p := range 4 {
		if got := testutil.ToFloat64(src.m.lag.WithLabelValues(topic, strconv.Itoa(p))); got != 0 {
			t.Errorf("kafka_consumer_lag{partition=%d} = %v after catching up, want 0", p, got)
		}
	}
	if err := src.stop(t); err != nil {
		t.Errorf("Run returned %v after cancellation, want nil", err)
	}
}

// fixedPositions is a Positions backed by a map.
type fixedPositions map[int]int64

func (f fixedPositions) Position(_ context.Context, _ string, partition int) (int64, bool, error) {
	o, ok := f[partition]
	return o, ok, nil
}

// scenarioPositions: the stored position wins over the committed offset,
// which wins over start_offset.
func scenarioPositions(t *testing.T, c cluster) {
	topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
	c.createTopic(t, topic, 4)
	const n = 400 // ~100 per partition
	produce(t, c, topic, 0, n)
	commitAsSimpleConsumer(t, c, group, topic, map[int]int64{0: 3, 1: 5})

	rec := newRecorder()
	pos := fixedPositions{0: 7, 2: 11} // partition 0: position beats commit
	start(t, testConfig(c, topic, group), rec, pos)

	// End offsets = messages per partition: learn them from a plain reader.
	ends := endOffsets(t, c, topic, 4)
	want := map[int]int64{0: 7, 1: 5, 2: 11, 3: 0}
	total := 0
	for p, from := range want {
		total += int(ends[p] - from)
	}
	waitCount(t, total, rec)
	offs, _, bad := rec.snapshot()
	for _, b := range bad {
		t.Errorf("handler saw: %s", b)
	}
	for p, from := range want {
		got := offs[topicPartition{topic, p}]
		if len(got) == 0 || got[0] != from || int64(len(got)) != ends[p]-from || !slices.IsSorted(got) {
			first := int64(-1)
			if len(got) > 0 {
				first = got[0]
			}
			t.Errorf("partition %d: handled %d messages from offset %d, want %d from %d", p, len(got), first, ends[p]-from, from)
		}
	}
}

func endOffsets(t *testing.T, c cluster, topic string, partitions int) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var req []kafka.OffsetRequest
	for p := range partitions {
		req = append(req, kafka.LastOffsetOf(p))
	}
	cl := &kafka.Client{Addr: kafka.TCP(c.brokers...)}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatalf("listing offsets: %v", err)
	}
	out := make(map[int]int64)
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("listing offsets of %s/%d: %v", topic, p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out
}

// scenarioHandover: two sources split the partitions; when one stops, the
// other takes its partitions over with no message lost or repeated.
func scenarioHandover(t *testing.T, c cluster) {
	topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
	c.createTopic(t, topic, 4)
	cfg := testConfig(c, topic, group)
	recA, recB := newRecorder(), newRecorder()
	a := start(t, cfg, recA, nil)
	b := start(t, cfg, recB, nil)
	testenv.Eventually(t, waitLong, func() (bool, string) {
		pa, pb := a.assignment(), b.assignment()
		return len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == 4 && a.Assigned()+b.Assigned() == 4,
			fmt.Sprintf("assignments: a=%v b=%v (Assigned %d, %d)", pa, pb, a.Assigned(), b.Assigned())
	})
	const n1, n2 = 2000, 2000
	produce(t, c, topic, 0, n1)
	waitCount(t, n1, recA, recB)
	offA, _, _ := recA.snapshot()
	offB, _, _ := recB.snapshot()
	if len(offA) == 0 || len(offB) == 0 {
		t.Errorf("partitions were not split: a handled %d partitions, b %d", len(offA), len(offB))
	}
	for tp := range offA {
		if _, both := offB[tp]; both {
			t.Errorf("partition %d handled by both sources", tp.partition)
		}
	}

	if err := b.stop(t); err != nil {
		t.Fatalf("b.Run returned %v, want nil", err)
	}
	produce(t, c, topic, n1, n1+n2)
	waitCount(t, n1+n2, recA, recB)
	testenv.Eventually(t, waitLong, func() (bool, string) {
		return len(a.assignment()) == 4, fmt.Sprintf("a owns %v", a.assignment())
	})
	perPart := checkExactlyOnce(t, []*recorder{recA, recB}, topic, n1+n2)
	waitCommitted(t, c, group, topic, perPart)
	if got := testutil.ToFloat64(a.m.rebalances); got < 2 {
		t.Errorf("a: kafka_rebalances_total = %v, want ≥ 2", got)
	}
}

// scenarioNoCommitOnFailure: a batch whose handler blocks until cancelled, or
// fails, is not committed; one that finishes within the drain is.
func scenarioNoCommitOnFailure(t *testing.T, c cluster) {
	tests := []struct {
		name       string
		hook       func(ctx context.Context, release <-chan struct{}) error
		wantRunErr bool
		drains     bool // the in-flight batch finishes and is committed
	}{
		{
			name: "blocks past the drain timeout",
			hook: func(ctx context.Context, _ <-chan struct{}) error {
				<-ctx.Done()
				return ctx.Err()
			},
		},
		{
			name:       "fails unrecoverably",
			hook:       func(context.Context, <-chan struct{}) error { return errors.New("boom") },
			wantRunErr: true,
		},
		{
			name: "finishes within the drain timeout",
			hook: func(ctx context.Context, release <-chan struct{}) error {
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return fmt.Errorf("handler ctx cancelled during the drain: %w", ctx.Err())
				}
			},
			drains: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
			c.createTopic(t, topic, 1)
			produce(t, c, topic, 0, 5)

			var mu sync.Mutex
			var armed bool
			entered := make(chan int64, 1) // the in-flight batch's last offset + 1
			release := make(chan struct{})
			rec := newRecorder()
			rec.hook = func(ctx context.Context, msgs []cdc.Message) error {
				mu.Lock()
				a := armed
				mu.Unlock()
				if !a {
					return nil
				}
				select {
				case entered <- msgs[len(msgs)-1].Offset + 1:
				default:
				}
				return tt.hook(ctx, release)
			}
			cfg := testConfig(c, topic, group)
			cfg.DrainTimeout = time.Second
			src := start(t, cfg, rec, nil)
			waitCount(t, 5, rec)
			waitCommitted(t, c, group, topic, map[int]int64{0: 5})

			mu.Lock()
			armed = true
			mu.Unlock()
			produce(t, c, topic, 5, 10)
			var inFlightEnd int64
			select {
			case inFlightEnd = <-entered:
			case <-time.After(waitLong):
				t.Fatal("handler never saw the second batch")
			}

			// Cancel Run while the batch is in flight; the drain case then
			// lets it finish: its ctx must have survived the cancellation.
			src.cancel()
			if tt.drains {
				close(release)
			}
			err := src.stop(t)
			if (err != nil) != tt.wantRunErr {
				t.Errorf("Run returned %v, want error: %v", err, tt.wantRunErr)
			}
			// The producer may have split offsets 5-9 over several
			// batches: a drained batch is committed, the next one is
			// never started after the stop.
			want := int64(5)
			if tt.drains {
				want = inFlightEnd
			}
			if got := committed(t, c, group, topic, 1)[0]; got != want {
				t.Errorf("committed offset %d, want %d", got, want)
			}
		})
	}
}

// scenarioAddPartitions: partitions added to a topic while consuming are
// picked up (the generation ends, the group rebalances) without loss.
func scenarioAddPartitions(t *testing.T, c cluster) {
	topic, group := testenv.UniqueName(t, "src"), testenv.UniqueName(t, "grp")
	c.createTopic(t, topic, 2)
	produce(t, c, topic, 0, 200)
	rec := newRecorder()
	cfg := testConfig(c, topic, group)
	s, err := New(cfg, rec, nil, prometheus.NewRegistry(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	s.partitionCheck = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	}()
	waitCount(t, 200, rec)

	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	cl := &kafka.Client{Addr: kafka.TCP(c.brokers...)}
	res, err := cl.CreatePartitions(cctx, &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 4}},
	})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		t.Fatalf("adding partitions: %v", err)
	}
	testenv.Eventually(t, waitLong, func() (bool, string) {
		return len(s.assignment()) == 4, fmt.Sprintf("assigned %v", s.assignment())
	})
	produce(t, c, topic, 200, 600)
	waitCount(t, 600, rec)
	perPart := checkExactlyOnce(t, []*recorder{rec}, topic, 600)
	if len(perPart) != 4 {
		t.Errorf("consumed %d partitions, want 4", len(perPart))
	}
}

// aheadRecorder drives a recorder as an AheadHandler: Wait records the
// batch. It checks what the source promises: batches of a partition begun in
// offset order, at most one in flight when the next is begun (none when the
// one in flight is Sync), waited for in the order begun.
type aheadRecorder struct {
	*recorder
	mu    sync.Mutex
	begun map[topicPartition][]*aheadPending
	n     int
	ahead int // batches begun while another was in flight
}

type aheadPending struct {
	r    *aheadRecorder
	ctx  context.Context
	msgs []cdc.Message
	tp   topicPartition
	sync bool
}

func (a *aheadRecorder) BeginBatch(ctx context.Context, msgs []cdc.Message) Pending {
	tp := topicPartition{msgs[0].Topic, msgs[0].Partition}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	p := &aheadPending{r: a, ctx: ctx, msgs: msgs, tp: tp, sync: a.n%5 == 0}
	out := a.begun[tp]
	switch {
	case len(out) > 1:
		a.violation("more than one batch in flight when the next was begun")
	case len(out) == 1:
		a.ahead++
		prev := out[0]
		if prev.sync {
			a.violation("a batch begun while a Sync one was in flight")
		}
		if last := prev.msgs[len(prev.msgs)-1].Offset; msgs[0].Offset != last+1 {
			a.violation(fmt.Sprintf("batch begun at %d after one ending at %d", msgs[0].Offset, last))
		}
	}
	a.begun[tp] = append(out, p)
	return p
}

func (p *aheadPending) Sync() bool { return p.sync }

func (p *aheadPending) done() {
	a := p.r
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.begun[p.tp]
	if len(out) == 0 || out[0] != p {
		a.violation("a batch waited for out of order")
		return
	}
	a.begun[p.tp] = out[1:]
}

func (p *aheadPending) Wait() error {
	p.done()
	return p.r.HandleBatch(p.ctx, p.msgs)
}

func (p *aheadPending) Abandon() { p.done() }
