package source

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// Handler applies a batch of messages durably.
type Handler interface {
	// HandleBatch is called with messages of ONE topic-partition in offset
	// order, sequentially per partition and concurrently across partitions.
	// It returns nil only when every message's effects are durable (applied,
	// or dead-lettered); it blocks (retrying internally) while dependencies
	// are down, and returns a non-nil error only when ctx is cancelled or on
	// an unrecoverable failure; then the source does NOT commit those
	// messages. The slice is the handler's; the source does not reuse it.
	// It must not panic: the handler is where a panic is contained (the
	// pipeline dead-letters the message that caused it), since only it
	// knows what to do with the message; the source adds no second net.
	HandleBatch(ctx context.Context, msgs []cdc.Message) error
}

// AheadHandler is a Handler that can begin a batch before the previous
// batch of the same partition is durable, so that applying one overlaps
// preparing the next. The source then calls BeginBatch for each batch, in
// offset order, and the Wait (or Abandon) of each Pending in the same
// order, waiting for one batch before beginning the one after the next.
type AheadHandler interface {
	Handler
	BeginBatch(ctx context.Context, msgs []cdc.Message) Pending
}

// Pending is a batch an AheadHandler began.
type Pending interface {
	// Sync reports a batch that must be waited for before the next is begun.
	Sync() bool
	// Wait blocks until the batch is durable, with HandleBatch's contract.
	Wait() error
	// Abandon gives the batch up when the one before it failed; nothing of
	// it is written.
	Abandon()
}

// Positions tells where to resume: the position stored with the state.
type Positions interface {
	// Position returns the next offset to consume for topic/partition as
	// recorded by the state store, ok=false when it has none. It may block on
	// I/O and honours ctx; an error is retried by the source. Safe for
	// concurrent use.
	Position(ctx context.Context, topic string, partition int) (offset int64, ok bool, err error)
}

// Timings that are not worth a configuration key.
const (
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 10 * time.Second
	fetchMaxWait   = 500 * time.Millisecond // fetch long-poll; also bounds how fast a reader stops
	fetchMaxBytes  = 16 << 20
	groupOpTimeout = 5 * time.Second
	fetchErrorTTL  = 30 * time.Second // a fetch error older than this no longer makes Ready fail

	partitionCheckInterval = 30 * time.Second
)

// Source consumes cfg.Topics as a member of cfg.GroupID and feeds a Handler.
// Create it with New and start it with Run; Ready and Ping are safe to call
// concurrently with Run.
type Source struct {
	cfg    Config
	h      Handler
	pos    Positions
	m      *metrics
	log    zerolog.Logger
	dialer *kafka.Dialer

	// partitionCheck is how often partition counts are compared; a
	// change ends the generation. Tests shorten it.
	partitionCheck time.Duration

	running atomic.Bool

	mu         sync.Mutex
	joined     bool      // a generation is being consumed
	everJoined bool      // at least one generation was received
	genEnded   time.Time // when the last generation ended
	groupErr   error     // last error joining the group, cleared by the next generation
	fetchErrs  map[topicPartition]fetchErr
	assigned   []topicPartition // of the current generation
}

type topicPartition struct {
	topic     string
	partition int
}

type fetchErr struct {
	err error
	at  time.Time
}

// New validates cfg, loads the TLS files and registers the metrics. pos may
// be nil (then partitions resume from the group's committed offsets).
func New(cfg Config, h Handler, pos Positions, reg prometheus.Registerer, log zerolog.Logger) (*Source, error) {
	if h == nil {
		return nil, errors.New("source: nil Handler")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sec, err := cfg.security()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Source{
		cfg:    cfg,
		h:      h,
		pos:    pos,
		m:      m,
		log:    log.With().Str("component", "source").Logger(),
		dialer: sec.dialer(),

		partitionCheck: partitionCheckInterval,
		fetchErrs:      make(map[topicPartition]fetchErr),
	}, nil
}

// Run joins the group and consumes until ctx is cancelled; then it stops
// fetching, lets in-flight batches finish (up to DrainTimeout), commits,
// leaves the group and returns nil. Kafka errors are retried, never returned;
// Run returns an error only when the Handler failed unrecoverably (after the
// same ordered stop). Run may be called once at a time.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("source: Run is already running")
	}
	defer s.running.Store(false)

	gcfg := kafka.ConsumerGroupConfig{
		ID:                s.cfg.GroupID,
		Brokers:           s.cfg.Brokers,
		Dialer:            s.dialer,
		Topics:            s.cfg.Topics,
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		SessionTimeout:    s.cfg.SessionTimeout,
		RebalanceTimeout:  s.cfg.RebalanceTimeout,
		// Run adds its own capped exponential backoff on top of this.
		JoinGroupBackoff: backoffMin,
		StartOffset:      s.startOffset(),
		Timeout:          groupOpTimeout,
		// Join errors also come out of Next, which logs them at warn.
		ErrorLogger: kafka.LoggerFunc(s.kafkaLog(zerolog.InfoLevel, "group")),
	}
	if s.log.GetLevel() <= zerolog.DebugLevel {
		gcfg.Logger = kafka.LoggerFunc(s.kafkaLog(zerolog.DebugLevel, "group"))
	}
	cg, err := kafka.NewConsumerGroup(gcfg) // validates; never panics
	if err != nil {
		return fmt.Errorf("creating consumer group: %w", err)
	}

	var fatal error
	bo := backoff.Backoff{Min: backoffMin, Max: backoffMax}
	for ctx.Err() == nil {
		gen, err := cg.Next(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			d := bo.Next()
			s.setGroupErr(err)
			s.log.Warn().Err(err).Dur("retry_in", d).Msg("joining consumer group")
			_ = backoff.Sleep(ctx, d) // the loop ends on cancellation
			continue
		}
		bo.Reset()
		s.m.rebalances.Inc()
		if fatal = s.consume(ctx, gen); fatal != nil {
			break
		}
	}

	s.closeGroup(cg)
	if fatal != nil {
		return fatal
	}
	return nil
}

// closeGroup leaves the group, waiting at most DrainTimeout: kafka-go's Close
// waits for any join in progress, which can take a rebalance timeout.
func (s *Source) closeGroup(cg *kafka.ConsumerGroup) {
	done := make(chan struct{})
	go func() {
		_ = cg.Close() // always nil
		close(done)
	}()
	t := time.NewTimer(s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-done:
		s.log.Info().Msg("left consumer group")
	case <-t.C:
		s.log.Warn().Dur("waited", s.cfg.DrainTimeout).Msg("leaving consumer group timed out; the broker will expire the membership")
	}
}

func (s *Source) startOffset() int64 {
	if s.cfg.StartOffset == StartLatest {
		return kafka.LastOffset
	}
	return kafka.FirstOffset
}

// Ready returns nil when the source is a member of the group and consuming;
// otherwise it says why not. A rebalance in progress counts as ready for up
// to RebalanceTimeout.
func (s *Source) Ready() error {
	if !s.running.Load() {
		return errors.New("kafka consumer not running")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groupErr != nil {
		return fmt.Errorf("kafka consumer group: %w", s.groupErr)
	}
	if !s.everJoined {
		return errors.New("kafka consumer group: not joined yet")
	}
	if !s.joined && time.Since(s.genEnded) > s.cfg.RebalanceTimeout {
		return fmt.Errorf("kafka consumer group: rebalancing for %s", time.Since(s.genEnded).Round(time.Millisecond))
	}
	for tp, fe := range s.fetchErrs {
		if time.Since(fe.at) < fetchErrorTTL {
			return fmt.Errorf("kafka fetch %s/%d: %w", tp.topic, tp.partition, fe.err)
		}
	}
	return nil
}

// Ping returns nil when at least one broker accepts a connection (TLS and
// SASL included) and answers an ApiVersions request within ctx.
func (s *Source) Ping(ctx context.Context) error {
	var errs []error
	for _, b := range s.cfg.Brokers {
		err := s.pingOne(ctx, b)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("no kafka broker reachable: %w", errors.Join(errs...))
}

func (s *Source) pingOne(ctx context.Context, broker string) error {
	conn, err := s.dialer.DialContext(ctx, "tcp", broker)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", broker, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(groupOpTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("%s: %w", broker, err)
	}
	if _, err := conn.ApiVersions(); err != nil {
		return fmt.Errorf("%s: api versions: %w", broker, err)
	}
	return nil
}

// partitionCounts returns the partition count of each topic that exists.
func (s *Source) partitionCounts(ctx context.Context) (map[string]int, error) {
	var errs []error
	for _, b := range s.cfg.Brokers {
		conn, err := s.dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(groupOpTimeout)); err != nil {
			return nil, err
		}
		counts := make(map[string]int, len(s.cfg.Topics))
		for _, topic := range s.cfg.Topics {
			ps, err := conn.ReadPartitions(topic)
			if errors.Is(err, kafka.UnknownTopicOrPartition) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading partitions of %s: %w", topic, err)
			}
			counts[topic] = len(ps)
		}
		return counts, nil
	}
	return nil, errors.Join(errs...)
}

func (s *Source) setGroupErr(err error) {
	s.mu.Lock()
	s.groupErr = err
	s.mu.Unlock()
}

func (s *Source) setJoined(joined bool, assigned []topicPartition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.joined = joined
	s.assigned = assigned
	if joined {
		s.everJoined = true
		s.groupErr = nil
	} else {
		s.genEnded = time.Now()
	}
}

// Assigned returns how many partitions the current generation assigned to
// this member (0 while it is not in a generation).
func (s *Source) Assigned() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.joined {
		return 0
	}
	return len(s.assigned)
}

// assignment returns the partitions of the current generation.
func (s *Source) assignment() []topicPartition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]topicPartition(nil), s.assigned...)
}

func (s *Source) setFetchErr(tp topicPartition, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fetchErrs, tp)
		return
	}
	s.fetchErrs[tp] = fetchErr{err: err, at: time.Now()}
}

// kafkaLog adapts kafka-go's Printf logging to zerolog at the given level.
func (s *Source) kafkaLog(level zerolog.Level, from string) func(string, ...any) {
	l := s.log.With().Str("kafka", from).Logger()
	return func(format string, args ...any) {
		if e := l.WithLevel(level); e != nil {
			e.Msg(strings.TrimSpace(fmt.Sprintf(format, args...)))
		}
	}
}
