package bridge

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/bridge/pubsubpb"
	"github.com/oppsync/oppsync/pkg/sfauth"
)

// Bridge forwards the events of the configured channels to Kafka. Run it
// once; Ready is safe to call concurrently.
type Bridge struct {
	cfg     Config
	client  pubsubpb.PubSubClient
	kafka   *Kafka
	session *session
	schemas *schemaSet
	metrics *metrics
	log     zerolog.Logger
	chans   []*channel
}

// New returns a Bridge subscribing through client (a connection to
// bridge.endpoint), writing through k, and authenticating with hc
// (an *http.Client) against the token endpoint.
func New(cfg Config, client pubsubpb.PubSubClient, k *Kafka, hc sfauth.Doer, reg prometheus.Registerer, log zerolog.Logger) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	b := &Bridge{cfg: cfg, client: client, kafka: k, log: log}
	var err error
	if b.session, err = newSession(cfg, hc); err != nil {
		return nil, err
	}
	b.schemas = newSchemaSet(b)
	for _, name := range cfg.Channels {
		b.chans = append(b.chans, &channel{b: b, name: name, log: log.With().Str("channel", name).Logger()})
	}
	if b.metrics, err = newMetrics(reg, cfg.Channels, b.lag); err != nil {
		return nil, err
	}
	return b, nil
}

// lag is the oppsync_bridge_lag_seconds gauge.
func (b *Bridge) lag() float64 {
	now := b.cfg.Now().UnixMilli()
	var worst float64
	for _, c := range b.chans {
		if ms := c.lagFrom.Load(); ms > 0 {
			worst = max(worst, float64(now-ms)/1000)
		}
	}
	return worst
}

// Ready reports whether every channel has a subscription open and its
// last Kafka write, if any, succeeded.
func (b *Bridge) Ready() error {
	var errs []string
	for _, c := range b.chans {
		if err := c.ready(); err != nil {
			errs = append(errs, c.name+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Run prepares the schemas topic, recovers each channel's position from
// Kafka, then forwards events until ctx ends (nil) or a channel fails for
// a reason a retry cannot mend (credentials refused, expired replay id with
// bridge.on_expired_replay=fail, a channel Salesforce refuses).
func (b *Bridge) Run(ctx context.Context) error {
	err := b.retry(ctx, "preparing the schemas topic", func() error {
		if err := b.kafka.ensureCompacted(ctx, b.cfg.SchemasTopic); err != nil {
			return err
		}
		return b.schemas.load(ctx)
	})
	if err != nil {
		return nil // ctx ended
	}
	window := int64(4*b.cfg.MaxInFlight*len(b.chans) + 16)
	for _, c := range b.chans {
		err := b.retry(ctx, "recovering the position of "+c.name, func() error {
			pos, err := b.recover(ctx, c.name, window)
			if err != nil {
				return err
			}
			c.setPosition(pos)
			return nil
		})
		if err != nil {
			return nil
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range b.chans {
		g.Go(func() error { return c.run(gctx) })
	}
	return g.Wait()
}

// retry runs op with backoff until it succeeds or ctx ends (ctx.Err()).
func (b *Bridge) retry(ctx context.Context, what string, op func() error) error {
	bo := backoff.Backoff{Min: b.cfg.MinBackoff, Max: b.cfg.MaxBackoff}
	for {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b.log.Warn().Err(err).Msg(what + "; retrying")
		if bo.Wait(ctx) != nil {
			return ctx.Err()
		}
	}
}

// channel is the subscription of one Pub/Sub channel.
type channel struct {
	b    *Bridge
	name string
	log  zerolog.Logger

	// Owned by run's goroutine.
	pos    []byte                // replay id of the last event Kafka acknowledged; nil: none
	resume []byte                // where the next subscription starts (CUSTOM); nil: preset
	preset pubsubpb.ReplayPreset // when resume is nil
	skip   map[string]bool       // replay ids already in Kafka (from recovery)

	checked  bool         // GetTopic said the channel may be subscribed to
	inFlight atomic.Int64 // requested and not yet acknowledged by Kafka
	lagFrom  atomic.Int64 // commit time (ms) of the newest event written; 0: caught up

	mu       sync.Mutex
	open     bool  // a subscription is open
	writeErr error // the last Kafka write failed with it
}

func (c *channel) setPosition(p position) {
	c.pos, c.resume, c.skip = p.after, p.after, p.written
	c.preset = presetOf(c.b.cfg.Start)
	if p.after != nil {
		c.log.Info().Str("replay_id", hex.EncodeToString(p.after)).Int("already_written", len(p.written)).Msg("resuming after the stored replay id")
	} else {
		c.log.Info().Str("start", c.b.cfg.Start).Msg("no stored position: starting at bridge.start")
	}
}

func presetOf(start string) pubsubpb.ReplayPreset {
	if start == StartEarliest {
		return pubsubpb.ReplayPreset_EARLIEST
	}
	return pubsubpb.ReplayPreset_LATEST
}

func (c *channel) ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.writeErr != nil:
		return fmt.Errorf("writing to Kafka: %w", c.writeErr)
	case !c.open:
		return errors.New("not subscribed")
	}
	return nil
}

func (c *channel) setOpen(open bool) {
	c.mu.Lock()
	c.open = open
	c.mu.Unlock()
}

// errKind classifies a subscription's end: the one place that decides
// what is retried.
type errKind int

const (
	kindTransient errKind = iota
	kindAuth              // UNAUTHENTICATED: re-authenticate once
	kindReplay            // the replay id is unknown to Salesforce
	kindFatal             // a retry cannot mend it
)

func classify(err error) errKind {
	var ae *AuthError
	if errors.As(err, &ae) {
		return kindFatal
	}
	st, ok := status.FromError(err)
	if !ok {
		return kindTransient
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return kindAuth
	case codes.InvalidArgument:
		if strings.Contains(strings.ToLower(st.Message()), "replay") {
			return kindReplay
		}
		return kindFatal
	case codes.PermissionDenied, codes.NotFound, codes.Unimplemented:
		return kindFatal
	}
	return kindTransient
}

// run keeps the channel subscribed until ctx ends or a fatal error.
func (c *channel) run(ctx context.Context) error {
	bo := backoff.Backoff{Min: c.b.cfg.MinBackoff, Max: c.b.cfg.MaxBackoff}
	reauthed := false
	for {
		delivered, err := c.subscribe(ctx)
		c.setOpen(false)
		if ctx.Err() != nil {
			return nil
		}
		if delivered {
			bo.Reset()
			reauthed = false
		}
		switch classify(err) {
		case kindAuth:
			if reauthed {
				return &AuthError{fmt.Errorf("channel %s: a fresh session was refused too: %w", c.name, err)}
			}
			reauthed = true
			c.log.Info().Err(err).Msg("session refused; authenticating again")
			if _, err := c.b.session.refresh(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		case kindReplay:
			if c.resume == nil {
				return fmt.Errorf("bridge: channel %s: %w", c.name, err)
			}
			if c.b.cfg.OnExpiredReplay == ExpiredFail {
				return fmt.Errorf("bridge: channel %s: Salesforce no longer has the stored replay id %s (events are kept 72 hours): "+
					"set bridge.on_expired_replay to earliest or latest to start again, accepting a gap (%v)", c.name, hex.EncodeToString(c.resume), err)
			}
			c.log.Warn().Err(err).Str("replay_id", hex.EncodeToString(c.resume)).Str("on_expired_replay", c.b.cfg.OnExpiredReplay).
				Msg("the stored replay id has expired: starting again per bridge.on_expired_replay")
			c.b.metrics.resets.WithLabelValues(c.name).Inc()
			c.pos, c.resume, c.skip = nil, nil, nil
			c.preset = presetOf(c.b.cfg.OnExpiredReplay)
			continue
		case kindFatal:
			var ae *AuthError
			if errors.As(err, &ae) {
				return err
			}
			if st, ok := status.FromError(err); ok && st.Code() == codes.PermissionDenied {
				return fmt.Errorf("bridge: channel %s: %w (grant the connected app's user access to the channel's objects, or remove it from bridge.channels)", c.name, err)
			}
			return fmt.Errorf("bridge: channel %s: %w", c.name, err)
		}
		c.b.metrics.reconnects.Inc()
		c.log.Warn().Err(err).Msg("subscription ended; subscribing again")
		if bo.Wait(ctx) != nil {
			return nil
		}
	}
}

// errIdle ends a subscription that went silent.
var errIdle = errors.New("no response (not even a keepalive) within the idle timeout")

type received struct {
	resp *pubsubpb.FetchResponse
	at   time.Time
	err  error
}

// subscribe runs one subscription: it returns when the stream ends, after
// writing what it delivered, with the error that ended it (nil only when
// ctx ended). delivered reports whether any response arrived.
func (c *channel) subscribe(ctx context.Context) (delivered bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	octx, err := c.b.session.outgoing(sctx)
	if err != nil {
		return false, err
	}
	if !c.checked {
		info, err := c.b.client.GetTopic(octx, &pubsubpb.TopicRequest{TopicName: c.name})
		if err != nil {
			return false, fmt.Errorf("GetTopic: %w", err)
		}
		if !info.GetCanSubscribe() {
			return false, status.Errorf(codes.PermissionDenied, "GetTopic: the session may not subscribe to %s", c.name)
		}
		c.checked = true
	}
	stream, err := c.b.client.Subscribe(octx)
	if err != nil {
		return false, err
	}
	first := &pubsubpb.FetchRequest{TopicName: c.name, ReplayPreset: c.preset}
	if c.resume != nil {
		first.ReplayPreset, first.ReplayId = pubsubpb.ReplayPreset_CUSTOM, c.resume
	}
	c.inFlight.Store(0)
	c.b.metrics.inFlight.WithLabelValues(c.name).Set(0)
	if err := c.request(stream, first, c.b.cfg.MaxInFlight); err != nil {
		return false, err
	}
	c.setOpen(true)

	recv := make(chan received, 16)
	go func() {
		for {
			resp, err := stream.Recv()
			select {
			case recv <- received{resp: resp, at: time.Now(), err: err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	idle := time.NewTimer(c.b.cfg.IdleTimeout)
	defer idle.Stop()
	var pendingErr error
	for pendingErr == nil {
		var batch []received
		select {
		case <-ctx.Done():
			return delivered, nil
		case <-idle.C:
			return delivered, errIdle
		case r := <-recv:
			batch = append(batch, r)
		}
		// Take what else has arrived, up to a window's worth of events.
		n := len(batch[0].resp.GetEvents())
	more:
		for n < c.b.cfg.MaxInFlight {
			select {
			case r := <-recv:
				batch = append(batch, r)
				n += len(r.resp.GetEvents())
			default:
				break more
			}
		}
		if !idle.Stop() {
			select {
			case <-idle.C:
			default:
			}
		}
		idle.Reset(c.b.cfg.IdleTimeout)
		var events []event
		keepalive := false
		for _, r := range batch {
			if r.err != nil {
				pendingErr = r.err
				break
			}
			delivered = true
			if len(r.resp.GetEvents()) == 0 {
				keepalive = true
				if id := r.resp.GetLatestReplayId(); len(id) > 0 && len(events) == 0 {
					// Everything delivered is written: a resubscription
					// may start at the newest replay id.
					c.resume = id
				}
			}
			for _, ev := range r.resp.GetEvents() {
				events = append(events, event{ConsumerEvent: ev, at: r.at})
			}
		}
		if len(events) > 0 {
			if err := c.write(ctx, events); err != nil {
				return delivered, err
			}
			if ctx.Err() != nil {
				return delivered, nil
			}
			if err := c.request(stream, &pubsubpb.FetchRequest{}, len(events)); err != nil && pendingErr == nil {
				pendingErr = err
			}
		} else if keepalive {
			c.lagFrom.Store(0)
		}
	}
	if errors.Is(pendingErr, context.Canceled) && ctx.Err() != nil {
		return delivered, nil
	}
	return delivered, pendingErr
}

// request asks for n more events, at most maxPerRequest per FetchRequest;
// req is the first of them (it carries the topic and replay options of a
// new stream).
func (c *channel) request(stream pubsubpb.PubSub_SubscribeClient, req *pubsubpb.FetchRequest, n int) error {
	for n > 0 {
		k := min(n, maxPerRequest)
		req.NumRequested = int32(k)
		c.inFlight.Add(int64(k))
		c.b.metrics.inFlight.WithLabelValues(c.name).Set(float64(c.inFlight.Load()))
		if err := stream.Send(req); err != nil {
			return err
		}
		n -= k
		req = &pubsubpb.FetchRequest{}
	}
	return nil
}

type event struct {
	*pubsubpb.ConsumerEvent
	at time.Time // receipt
}

var schemaIDPattern = regexp.MustCompile(`^[A-Za-z0-9_=+.-]{1,255}$`)

// write turns events into Kafka records and writes them, retrying with
// backoff until Kafka acknowledges them or ctx ends. Events recovery found
// already in Kafka are skipped. The first event of a channel with no
// position is written alone (see the package doc).
func (c *channel) write(ctx context.Context, events []event) error {
	var msgs []kafka.Message
	var last []byte
	var lastCommit int64
	var skipped []string
	for _, ev := range events {
		replay := ev.GetReplayId()
		if len(replay) == 0 {
			return status.Error(codes.Internal, "an event without a replay id")
		}
		last = replay
		if c.skip[string(replay)] {
			skipped = append(skipped, string(replay))
			continue
		}
		pe := ev.GetEvent()
		id := pe.GetSchemaId()
		if !schemaIDPattern.MatchString(id) {
			return fmt.Errorf("bridge: channel %s: event %s has schema id %s, not a plain id", c.name, hex.EncodeToString(replay), sfauth.Quote(id))
		}
		sc, err := c.b.schemas.get(ctx, id)
		if err != nil {
			return err
		}
		topic := c.b.cfg.TopicPrefix + sc.EventName()
		if len(topic) > 249 {
			return fmt.Errorf("bridge: channel %s: topic %s is longer than 249 characters: shorten bridge.topic_prefix", c.name, sfauth.Quote(topic))
		}
		var key []byte
		if h, err := sc.HeaderOf(pe.GetPayload()); err != nil {
			// Forwarded all the same: oppsync dead-letters it with the
			// reason, the bridge loses nothing.
			c.log.Warn().Err(err).Str("replay_id", hex.EncodeToString(replay)).Msg("an event whose header does not read: written without a key")
		} else {
			key = []byte(h.RecordIDs[0])
			lastCommit = h.CommitTimestamp
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: key, Value: pe.GetPayload(), Headers: []kafka.Header{
			{Key: HeaderSchemaID, Value: []byte(id)},
			{Key: HeaderReplayID, Value: []byte(hex.EncodeToString(replay))},
			{Key: HeaderEventID, Value: []byte(pe.GetId())},
			{Key: HeaderChannel, Value: []byte(c.name)},
			{Key: HeaderCommitted, Value: nil}, // set by send
		}})
	}
	if c.pos == nil && len(msgs) > 1 {
		if err := c.send(ctx, msgs[:1], nil); err != nil {
			return err
		}
		c.pos = replayOf(msgs[0])
		msgs = msgs[1:]
	}
	if err := c.send(ctx, msgs, events); err != nil {
		return err
	}
	for _, r := range skipped {
		delete(c.skip, r)
	}
	c.pos, c.resume = last, last
	if lastCommit > 0 {
		c.lagFrom.Store(lastCommit)
	}
	done := int64(len(events))
	c.inFlight.Add(-done)
	c.b.metrics.inFlight.WithLabelValues(c.name).Set(float64(c.inFlight.Load()))
	c.b.metrics.events.WithLabelValues(c.name).Add(float64(len(events) - len(skipped)))
	return nil
}

func replayOf(m kafka.Message) []byte {
	for _, h := range m.Headers {
		if h.Key == HeaderReplayID {
			b, _ := hex.DecodeString(string(h.Value))
			return b
		}
	}
	return nil
}

// send writes msgs, marked with the current position, until Kafka
// acknowledges them. A write is not cut off by ctx: a stop waits for it
// (bounded by WriteTimeout), so that a clean stop leaves no half-written
// batch.
func (c *channel) send(ctx context.Context, msgs []kafka.Message, events []event) error {
	if len(msgs) == 0 {
		return nil
	}
	committed := []byte(hex.EncodeToString(c.pos))
	for i := range msgs {
		msgs[i].Headers[len(msgs[i].Headers)-1].Value = committed
	}
	bo := backoff.Backoff{Min: c.b.cfg.MinBackoff, Max: c.b.cfg.MaxBackoff}
	for {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.b.cfg.WriteTimeout)
		err := c.b.kafka.Writer.WriteMessages(wctx, msgs...)
		cancel()
		c.mu.Lock()
		c.writeErr = err
		c.mu.Unlock()
		if err == nil {
			now := time.Now()
			for _, ev := range events {
				c.b.metrics.ack.Observe(now.Sub(ev.at).Seconds())
			}
			return nil
		}
		// The whole batch is written again: kafka-go reports which
		// messages failed, but a resend of all is simpler and the
		// duplicates are absorbed downstream (see the package doc).
		c.log.Warn().Err(err).Int("events", len(msgs)).Msg("writing to Kafka failed; retrying")
		if bo.Wait(ctx) != nil {
			return ctx.Err()
		}
	}
}
