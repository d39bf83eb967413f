package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// generation is one consumer-group generation: the partitions assigned to
// this member until the next rebalance.
type generation struct {
	s   *Source
	gen *kafka.Generation

	// stop is cancelled when fetching must stop: the generation ended, Run's
	// ctx was cancelled, or a handler failed unrecoverably.
	stop       context.Context
	cancelStop context.CancelFunc
	// handle is the ctx of HandleBatch calls. It outlives stop by up to
	// DrainTimeout so in-flight batches can finish.
	handle       context.Context
	cancelHandle context.CancelFunc

	mu      sync.Mutex
	pending map[string]map[int]int64 // handled, not yet committed: next offset
	fatal   error
}

// consume runs one generation and returns once every goroutine it started
// has finished: fetching stopped, in-flight batches drained, offsets
// committed. It returns the Handler's unrecoverable error, if any.
func (s *Source) consume(ctx context.Context, gen *kafka.Generation) error {
	g := &generation{s: s, gen: gen, pending: make(map[string]map[int]int64)}
	g.stop, g.cancelStop = context.WithCancel(context.Background())
	g.handle, g.cancelHandle = context.WithCancel(context.WithoutCancel(ctx))
	defer g.cancelStop()
	defer g.cancelHandle()

	var assigned []topicPartition
	for topic, as := range gen.Assignments {
		for _, a := range as {
			assigned = append(assigned, topicPartition{topic, a.ID})
		}
	}
	s.log.Info().Int32("generation", gen.ID).Str("member", gen.MemberID).Int("partitions", len(assigned)).Msg("assigned partitions")
	s.setJoined(true, assigned)
	defer s.setJoined(false, nil)

	var parts, all sync.WaitGroup
	for topic, as := range gen.Assignments {
		for _, a := range as {
			parts.Add(1)
			all.Add(1)
			// gen.Start makes kafka-go wait for the goroutine before it
			// rejoins, so the next owner starts after our last commit.
			gen.Start(func(context.Context) {
				defer all.Done()
				defer parts.Done()
				g.consumePartition(topic, a)
			})
		}
	}
	all.Add(2)
	gen.Start(func(genCtx context.Context) {
		defer all.Done()
		g.supervise(ctx, genCtx, &parts)
	})
	gen.Start(func(context.Context) {
		defer all.Done()
		g.watchPartitions()
	})
	all.Wait()

	s.log.Info().Int32("generation", gen.ID).Msg("generation ended")
	return g.fatal
}

// supervise commits periodically and, when the generation ends, runs the
// ordered stop: stop fetching, drain, final commit.
func (g *generation) supervise(runCtx, genCtx context.Context, parts *sync.WaitGroup) {
	tick := time.NewTicker(g.s.cfg.CommitInterval)
	defer tick.Stop()
wait:
	for {
		select {
		case <-tick.C:
			g.commit()
		case <-genCtx.Done():
			break wait
		case <-runCtx.Done():
			break wait
		case <-g.stop.Done(): // a handler failed
			break wait
		}
	}
	g.cancelStop()

	drained := make(chan struct{})
	go func() {
		parts.Wait()
		close(drained)
	}()
	t := time.NewTimer(g.s.cfg.DrainTimeout)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		g.s.log.Warn().Dur("drain_timeout", g.s.cfg.DrainTimeout).Msg("in-flight batches did not finish in time; cancelling them")
		g.cancelHandle()
		<-drained
	}
	g.commit()
}

// markHandled records that everything before next is durable.
func (g *generation) markHandled(topic string, partition int, next int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ps := g.pending[topic]
	if ps == nil {
		ps = make(map[int]int64)
		g.pending[topic] = ps
	}
	ps[partition] = next
}

// commit sends all pending offsets in one request. On failure they stay
// pending (unless superseded) and are retried at the next tick; positions in
// the state store make a lost commit harmless.
func (g *generation) commit() {
	g.mu.Lock()
	offsets := g.pending
	g.pending = make(map[string]map[int]int64)
	g.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	if err := g.gen.CommitOffsets(offsets); err != nil {
		g.s.m.commitsErr.Inc()
		g.s.log.Warn().Err(err).Int32("generation", g.gen.ID).Msg("committing offsets; will retry")
		g.mu.Lock()
		for topic, ps := range offsets {
			for p, off := range ps {
				if cur, ok := g.pending[topic][p]; !ok || cur < off {
					if g.pending[topic] == nil {
						g.pending[topic] = make(map[int]int64)
					}
					g.pending[topic][p] = off
				}
			}
		}
		g.mu.Unlock()
		return
	}
	g.s.m.commitsOK.Inc()
}

func (g *generation) fail(err error) {
	g.mu.Lock()
	if g.fatal == nil {
		g.fatal = err
	}
	g.mu.Unlock()
	g.cancelStop()
}

// consumePartition fetches one partition and hands it to the Handler in
// batches until the generation stops.
func (g *generation) consumePartition(topic string, a kafka.PartitionAssignment) {
	s := g.s
	log := s.log.With().Str("topic", topic).Int("partition", a.ID).Logger()
	var lag prometheus.Gauge // created at the first batch: no made-up value before
	defer s.m.lag.DeleteLabelValues(topic, strconv.Itoa(a.ID))

	start, ok := g.startOffset(topic, a, log)
	if !ok {
		return
	}
	for {
		to, rewind := g.readFrom(topic, a, start, &lag, log)
		if !rewind {
			return
		}
		log.Warn().Str("from", offsetString(to)).Msg("the state store asked to rewind: re-reading")
		start = to
	}
}

// Rewinder is an error a Handler returns when the messages must be read
// again from an earlier offset (the state store lost its newest writes):
// nothing is committed and the partition resumes at RewindOffset, or at the
// earliest offset when it is negative.
type Rewinder interface {
	error
	RewindOffset() int64
}

// readFrom reads the partition from start until the generation stops
// (rewind false) or the Handler asks to rewind (rewind true, to where).
func (g *generation) readFrom(topic string, a kafka.PartitionAssignment, start int64, lagp *prometheus.Gauge, log zerolog.Logger) (to int64, rewind bool) {
	s := g.s
	tp := topicPartition{topic, a.ID}
	log.Debug().Str("from", offsetString(start)).Msg("consuming partition")

	rc := kafka.ReaderConfig{
		Brokers:          s.cfg.Brokers,
		Topic:            topic,
		Partition:        a.ID,
		Dialer:           s.dialer,
		QueueCapacity:    s.cfg.MaxBatch,
		MinBytes:         1,
		MaxBytes:         fetchMaxBytes,
		MaxWait:          fetchMaxWait,
		ReadLagInterval:  -1,
		ReadBackoffMin:   backoffMin,
		ReadBackoffMax:   backoffMax,
		ReadBatchTimeout: groupOpTimeout,
		ErrorLogger:      kafka.LoggerFunc(s.kafkaLog(zerolog.WarnLevel, "reader")),
	}
	if s.log.GetLevel() <= zerolog.DebugLevel {
		rc.Logger = kafka.LoggerFunc(s.kafkaLog(zerolog.DebugLevel, "reader"))
	}
	if err := rc.Validate(); err != nil { // kafka.NewReader panics on bad config
		g.fail(fmt.Errorf("reader config for %s/%d: %w", topic, a.ID, err))
		return 0, false
	}
	r := kafka.NewReader(rc)
	if err := r.SetOffset(start); err != nil {
		_ = r.Close()
		g.fail(fmt.Errorf("seeking %s/%d: %w", topic, a.ID, err))
		return 0, false
	}

	msgs := make(chan kafka.Message, s.cfg.MaxBatch)
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		g.fetch(r, tp, msgs, log)
	}()
	defer func() {
		_ = r.Close()
		<-fetched
		s.setFetchErr(tp, nil)
	}()

	// With an AheadHandler, one batch may be in flight while the next is
	// begun; a plain Handler handles each batch at once.
	ahead, _ := s.h.(AheadHandler)
	begin := func(batch []cdc.Message) Pending {
		if ahead != nil {
			return ahead.BeginBatch(g.handle, batch)
		}
		return handleNow{s.h, g.handle, batch}
	}
	type begun struct {
		p           Pending
		first, last int64
		hwm         int64
	}
	var inflight *begun
	// wait makes a batch durable and marks it handled; ok is false when
	// the partition must stop (to, rewind as readFrom returns).
	wait := func(b *begun) (to int64, rewind, ok bool) {
		if err := b.p.Wait(); err != nil {
			if g.handle.Err() != nil {
				log.Warn().Err(err).Int64("first_offset", b.first).Int64("last_offset", b.last).
					Msg("batch cancelled after the drain timeout; not committed")
				return 0, false, false
			}
			var rw Rewinder
			if errors.As(err, &rw) {
				to := rw.RewindOffset()
				if to < 0 {
					to = kafka.FirstOffset
				}
				return to, true, false
			}
			g.fail(fmt.Errorf("handling %s/%d offsets %d-%d: %w", topic, a.ID, b.first, b.last, err))
			return 0, false, false
		}
		next := b.last + 1
		g.markHandled(topic, a.ID, next)
		if b.hwm >= next {
			if *lagp == nil {
				*lagp = s.m.lag.WithLabelValues(topic, strconv.Itoa(a.ID))
			}
			(*lagp).Set(float64(b.hwm - next))
		}
		return 0, false, true
	}

	for {
		var first kafka.Message
		if inflight != nil {
			select {
			case first = <-msgs:
			default:
				// Nothing more to prepare: finish the batch in flight.
				b := inflight
				inflight = nil
				if to, rw, ok := wait(b); !ok {
					return to, rw
				}
				continue
			}
		} else {
			select {
			case <-g.stop.Done():
				return 0, false
			case first = <-msgs:
			}
		}
		// Take what is already there, never wait for more: latency first,
		// yet under load the channel refills while the handler works.
		batch := make([]cdc.Message, 0, min(len(msgs)+1, s.cfg.MaxBatch))
		batch = append(batch, toMessage(first))
		hwm := first.HighWaterMark
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case m := <-msgs:
				batch = append(batch, toMessage(m))
				hwm = m.HighWaterMark
			default:
				break fill
			}
		}
		if g.stop.Err() != nil { // stopped: start no new work
			if inflight != nil {
				wait(inflight)
			}
			return 0, false
		}
		s.m.batchSize.Observe(float64(len(batch)))
		b := &begun{p: begin(batch), first: batch[0].Offset, last: batch[len(batch)-1].Offset, hwm: hwm}
		if inflight != nil {
			prev := inflight
			inflight = nil
			if to, rw, ok := wait(prev); !ok {
				b.p.Abandon()
				return to, rw
			}
		}
		if !b.p.Sync() {
			inflight = b
			continue
		}
		if to, rw, ok := wait(b); !ok {
			return to, rw
		}
	}
}

// handleNow is the Pending of a plain Handler: the batch is handled at Wait.
type handleNow struct {
	h    Handler
	ctx  context.Context
	msgs []cdc.Message
}

func (p handleNow) Sync() bool  { return true }
func (p handleNow) Wait() error { return p.h.HandleBatch(p.ctx, p.msgs) }
func (p handleNow) Abandon()    {}

// startOffset picks where the partition resumes: the state store's position,
// else the group's committed offset (or StartOffset), as carried by the
// assignment. Store errors are retried until the generation stops.
func (g *generation) startOffset(topic string, a kafka.PartitionAssignment, log zerolog.Logger) (int64, bool) {
	if g.s.pos == nil {
		return a.Offset, true
	}
	bo := backoff.Backoff{Min: backoffMin, Max: backoffMax}
	for {
		off, ok, err := g.s.pos.Position(g.stop, topic, a.ID)
		switch {
		case err == nil && ok && off >= 0:
			if off != a.Offset {
				log.Info().Int64("position", off).Str("committed", offsetString(a.Offset)).Msg("resuming from the stored position")
			}
			return off, true
		case err == nil:
			return a.Offset, true
		}
		if g.stop.Err() != nil {
			return 0, false
		}
		d := bo.Next()
		log.Warn().Err(err).Dur("retry_in", d).Msg("reading stored position")
		if backoff.Sleep(g.stop, d) != nil {
			return 0, false
		}
	}
}

// fetch moves messages from the reader to msgs until the generation stops.
// The reader reconnects by itself; errors it surfaces are logged, recorded
// for Ready, and followed by a capped backoff.
func (g *generation) fetch(r *kafka.Reader, tp topicPartition, msgs chan<- kafka.Message, log zerolog.Logger) {
	bo := backoff.Backoff{Min: backoffMin, Max: backoffMax}
	failing := false
	for {
		m, err := r.FetchMessage(g.stop)
		if err != nil {
			if g.stop.Err() != nil || errors.Is(err, io.EOF) {
				return
			}
			failing = true
			g.s.setFetchErr(tp, err)
			d := bo.Next()
			log.Warn().Err(err).Dur("retry_in", d).Msg("fetching")
			if backoff.Sleep(g.stop, d) != nil {
				return
			}
			continue
		}
		if failing {
			failing = false
			bo.Reset()
			g.s.setFetchErr(tp, nil)
		}
		select {
		case msgs <- m:
		case <-g.stop.Done():
			return
		}
	}
}

func toMessage(m kafka.Message) cdc.Message {
	var hs []cdc.Header
	if len(m.Headers) > 0 {
		hs = make([]cdc.Header, len(m.Headers))
		for i, h := range m.Headers {
			hs[i] = cdc.Header{Key: h.Key, Value: h.Value}
		}
	}
	return cdc.Message{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Headers:   hs,
		Time:      m.Time,
	}
}

func offsetString(off int64) string {
	switch off {
	case kafka.FirstOffset:
		return "earliest"
	case kafka.LastOffset:
		return "latest"
	}
	return strconv.FormatInt(off, 10)
}

// watchPartitions ends the generation when the partition count of a topic
// changes, so that the group rebalances and new partitions get consumed.
// (kafka-go's own watcher turns a missing topic into a rebalance loop.)
func (g *generation) watchPartitions() {
	// The snapshot is taken right away, close to when the group leader
	// read the metadata for this generation's assignment.
	initial, _ := g.s.partitionCounts(g.stop)
	tick := time.NewTicker(g.s.partitionCheck)
	defer tick.Stop()
	for {
		select {
		case <-g.stop.Done():
			return
		case <-tick.C:
		}
		counts, err := g.s.partitionCounts(g.stop)
		if err != nil {
			continue // a broker outage is the heartbeat's business
		}
		if initial == nil {
			initial = counts
			continue
		}
		if !maps.Equal(initial, counts) {
			g.s.log.Info().Any("partitions", counts).Msg("partition count changed; rebalancing")
			return
		}
	}
}
