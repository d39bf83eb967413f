package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// Decoder turns a Kafka message into a change event. It must be safe for
// concurrent use and honour ctx; its errors are *cdc.Error saying whether
// retrying can help.
type Decoder interface {
	Decode(ctx context.Context, m *cdc.Message) (*cdc.Event, error)
}

// Applier makes a batch of one partition durable. It blocks for the Redis
// round trips, honours ctx, and may be called concurrently for different
// partitions. A *state.RewindError asks the consumer to resume earlier; any
// other error is transient.
type Applier interface {
	ApplyBatch(ctx context.Context, items []state.Item) (state.BatchResult, error)
}

// Config tunes the retry policy.
type Config struct {
	// MinBackoff and MaxBackoff bound the wait between retries of a
	// transient failure.
	MinBackoff, MaxBackoff time.Duration
	// UnhealthyAfter is how long failures may last before Ready reports it.
	UnhealthyAfter time.Duration
	// Now is the wall clock, for the end-to-end lag (tests set it).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MinBackoff <= 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.UnhealthyAfter <= 0 {
		c.UnhealthyAfter = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Observer, when set, sees every batch's result after it became durable
// (the demo prints triggers from it). It must not block.
type Observer func(items []state.Item, res state.BatchResult)

// Pipeline is a source.Handler.
type Pipeline struct {
	cfg     Config
	dec     Decoder
	app     Applier
	m       *metrics
	log     zerolog.Logger
	observe Observer

	mu           sync.Mutex
	failingSince time.Time
	lastErr      error
}

// New returns a Pipeline.
func New(cfg Config, dec Decoder, app Applier, reg prometheus.Registerer, log zerolog.Logger) *Pipeline {
	cfg.defaults()
	return &Pipeline{cfg: cfg, dec: dec, app: app, m: newMetrics(reg), log: log.With().Str("component", "pipeline").Logger()}
}

// SetObserver installs an observer; call before the first batch.
func (p *Pipeline) SetObserver(o Observer) { p.observe = o }

// Ready returns an error while transient failures have lasted longer than
// UnhealthyAfter.
func (p *Pipeline) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.failingSince.IsZero() && p.cfg.Now().Sub(p.failingSince) > p.cfg.UnhealthyAfter {
		return fmt.Errorf("failing since %s: %v", p.failingSince.UTC().Format(time.RFC3339), p.lastErr)
	}
	return nil
}

func (p *Pipeline) failing(err error) {
	p.mu.Lock()
	if p.failingSince.IsZero() {
		p.failingSince = p.cfg.Now()
	}
	p.lastErr = err
	p.mu.Unlock()
}

func (p *Pipeline) healthy() {
	p.mu.Lock()
	p.failingSince, p.lastErr = time.Time{}, nil
	p.mu.Unlock()
}

// HandleBatch decodes and applies msgs (one partition, offset order). It
// returns nil once all of them are durable, retrying transient failures for
// as long as ctx allows; on cancellation it returns ctx's error and the
// batch must not be committed. A *state.RewindError is returned as is.
func (p *Pipeline) HandleBatch(ctx context.Context, msgs []cdc.Message) error {
	return p.begin(ctx, msgs, false).Wait()
}

func (p *Pipeline) decodeAll(ctx context.Context, msgs []cdc.Message) ([]state.Item, error) {
	items := make([]state.Item, len(msgs))
	for i := range msgs {
		it, err := p.decodeSafely(ctx, &msgs[i])
		if err != nil {
			return nil, err
		}
		items[i] = it
	}
	return items, nil
}

// done records a durable batch.
func (p *Pipeline) done(items []state.Item, res state.BatchResult, start time.Time) {
	p.m.applyTime.Observe(time.Since(start).Seconds())
	p.record(items, res)
	if p.observe != nil {
		p.observe(items, res)
	}
}

// Beginner is an Applier that can begin a batch before the previous batch
// of its partition is durable (see state.Store.Begin).
type Beginner interface {
	Begin(ctx context.Context, items []state.Item) *state.Applying
}

// Pending is a batch BeginBatch started; it satisfies source.Pending.
type Pending struct {
	p     *Pipeline
	ctx   context.Context
	items []state.Item
	start time.Time
	err   error           // decoding failed
	a     *state.Applying // nil: applied (with retries) at Wait
	pv    *panicked       // beginning it panicked: Wait isolates the culprit
}

// BeginBatch decodes msgs (one partition, offset order, following the
// batch begun before) and, when the Applier is a Beginner, starts applying
// them behind that batch, so that Redis runs one batch while the next is
// decoded and built. Wait makes them durable, with HandleBatch's contract.
func (p *Pipeline) BeginBatch(ctx context.Context, msgs []cdc.Message) *Pending {
	return p.begin(ctx, msgs, true)
}

func (p *Pipeline) begin(ctx context.Context, msgs []cdc.Message, ahead bool) *Pending {
	pd := &Pending{p: p, ctx: ctx}
	pd.items, pd.err = p.decodeAll(ctx, msgs)
	pd.start = time.Now()
	if b, ok := p.app.(Beginner); ok && ahead && pd.err == nil {
		pd.pv = safely(func() { pd.a = b.Begin(ctx, pd.items) })
	}
	return pd
}

// Sync reports a batch that was not begun ahead: wait for it before
// beginning the next.
func (pd *Pending) Sync() bool { return pd.err != nil || pd.a == nil || pd.a.Sync() }

// Wait returns once the batch is durable, retrying transient failures as
// HandleBatch does.
func (pd *Pending) Wait() error {
	p := pd.p
	if pd.err != nil {
		return pd.err
	}
	var res state.BatchResult
	var err error
	if pd.pv == nil {
		pd.pv = safely(func() { res, err = pd.apply() })
	}
	if pd.pv != nil {
		return p.isolate(pd.ctx, pd.items, pd.pv, pd.start)
	}
	if err != nil {
		return err
	}
	p.done(pd.items, res, pd.start)
	return nil
}

// apply makes the batch durable: through the batch begun ahead, or
// applied with retries when it was not begun ahead or its fallback failed.
func (pd *Pending) apply() (state.BatchResult, error) {
	var res state.BatchResult
	var err error
	if pd.a != nil {
		res, err = pd.a.Wait()
		var rw *state.RewindError
		if errors.As(err, &rw) {
			return res, err
		}
	}
	if pd.a == nil || err != nil {
		// Not begun ahead, or its fallback failed: apply it, retrying.
		return pd.p.apply(pd.ctx, pd.items)
	}
	return res, nil
}

// Abandon gives the batch up without applying it: the batch before it
// failed. Nothing of it is written.
func (pd *Pending) Abandon() {
	if pd.a != nil {
		pd.a.Abandon()
	}
}

// decode decodes one message, retrying transient failures.
func (p *Pipeline) decode(ctx context.Context, m *cdc.Message) (state.Item, error) {
	it := state.Item{Msg: m}
	var ev *cdc.Event
	err := p.retry(ctx, "decode", func() error {
		var err error
		ev, err = p.dec.Decode(ctx, m)
		if err != nil {
			p.m.decodeErrors.WithLabelValues(cdc.ReasonOf(err)).Inc()
			if !cdc.IsRetryable(err) {
				it.DeadLetter = &state.DeadLetter{Stage: "decode", Reason: cdc.ReasonOf(err), Error: err.Error()}
				return nil
			}
		}
		return err
	})
	if err != nil {
		return it, err
	}
	if it.DeadLetter != nil {
		p.log.Warn().Str("topic", m.Topic).Int("partition", m.Partition).Int64("offset", m.Offset).
			Str("reason", it.DeadLetter.Reason).Str("error", it.DeadLetter.Error).Msg("dead-lettering undecodable message")
		return it, nil
	}
	p.m.consumed.WithLabelValues(entityLabel(ev.Entity), changeTypeLabel(ev.ChangeType)).Inc()
	switch {
	case ev.Entity != cdc.EntityOpportunity && ev.Entity != cdc.EntityContactRole:
		p.m.skipped.WithLabelValues("other_entity").Inc()
	case ev.ChangeType == cdc.Snapshot:
		p.m.skipped.WithLabelValues("snapshot").Inc()
	default:
		it.Event = ev
	}
	return it, nil
}

// apply applies items, retrying transient failures.
func (p *Pipeline) apply(ctx context.Context, items []state.Item) (state.BatchResult, error) {
	var res state.BatchResult
	err := p.retry(ctx, "apply", func() error {
		var err error
		res, err = p.app.ApplyBatch(ctx, items)
		var rw *state.RewindError
		if errors.As(err, &rw) {
			return permanent{err}
		}
		return err
	})
	var perm permanent
	if errors.As(err, &perm) {
		return res, perm.error
	}
	return res, err
}

// permanent marks an error retry must hand back at once.
type permanent struct{ error }

// retry runs fn until it succeeds, returns a permanent error, or ctx ends,
// waiting with capped exponential backoff between failures.
func (p *Pipeline) retry(ctx context.Context, stage string, fn func() error) error {
	bo := backoff.Backoff{Min: p.cfg.MinBackoff, Max: p.cfg.MaxBackoff}
	for attempt := 0; ; attempt++ {
		err := fn()
		var perm permanent
		if err == nil || errors.As(err, &perm) {
			if attempt > 0 {
				p.healthy()
				p.log.Info().Str("stage", stage).Int("attempts", attempt+1).Msg("recovered")
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.failing(err)
		p.m.retries.Inc()
		wait := bo.Next()
		if attempt == 0 || attempt%20 == 0 {
			p.log.Warn().Err(err).Str("stage", stage).Int("attempt", attempt+1).Dur("backoff", wait).Msg("transient failure, retrying")
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (p *Pipeline) record(items []state.Item, res state.BatchResult) {
	for k, n := range res.Triggers {
		p.m.triggers.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range res.DeadLetters {
		p.m.deadLetters.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range res.Resync {
		p.m.resync.WithLabelValues(entityLabel(k)).Add(float64(n))
	}
	p.m.duplicates.Add(float64(res.Duplicates))
	if res.Redelivered > 0 {
		p.m.skipped.WithLabelValues("already_applied").Add(float64(res.Redelivered))
	}
	if res.Unresolved > 0 {
		p.m.skipped.WithLabelValues("unknown_contact_role").Add(float64(res.Unresolved))
	}
	p.m.conflicts.Add(float64(res.Conflicts))
	now := p.cfg.Now()
	for _, it := range items {
		if it.Event != nil {
			p.m.lag.Observe(now.Sub(time.UnixMilli(it.Event.Version.CommitTimestamp)).Seconds())
		}
	}
}
