// Package tail is the reference consumer of oppsync's output streams
// (CONTRACT §10): it follows Redis streams with a consumer group and hands
// every entry to a handler at least once.
//
// How it reads, and why:
//   - The group is created when missing (XGROUP CREATE ... MKSTREAM) at
//     Config.Start: "0" (every entry the stream still holds, the default:
//     a consumer deployed after the first entries were written must not
//     miss them) or "$" (only entries written from now on). Once the group
//     exists it remembers its position, so Start matters only once.
//   - At start it first re-reads its own pending entries (XREADGROUP from
//     0): those a previous run under the same consumer name read and did
//     not acknowledge.
//   - Every ClaimEvery it takes over, with XAUTOCLAIM, the entries other
//     consumers of the group read but have not acknowledged for MinIdle: a
//     consumer that died between reading and acknowledging loses nothing.
//   - It acknowledges an entry (XACK) only after the handler returned nil.
//     A handler error stops Run and leaves the entry pending: it is
//     delivered again (to this consumer name on restart, or to another
//     after MinIdle).
//   - A Redis error is reported to Config.OnError and retried after a capped
//     backoff, starting over (group, own pending entries, claims), so a
//     Redis restart or failover costs a pause, not the consumer.
//
// So delivery is at least once: an entry handled by a consumer that died
// before its XACK is handled again. Every entry carries an event_id (the
// same source change always yields the same id; a campaign entry's id is
// derived from its trigger entry's), which is the key to de-duplicate by:
// record it in the store the handler writes to, in the same transaction as
// the handler's effect (a unique key, or SET NX with a TTL longer than the
// stream's retention), and skip an entry whose event_id is already there.
// Dead-letter and resync entries have no event_id: their stream id is
// their identity.
//
// The package does no logging and registers no metrics.
package tail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/backoff"
)

// Start positions of a new consumer group.
const (
	StartEarliest = "0" // every entry the stream holds
	StartLatest   = "$" // entries written after the group is created
)

// Entry is one stream entry.
type Entry struct {
	Stream string            // the stream's key
	ID     string            // the entry id ("1733600000000-0")
	Values map[string]string // the entry's fields
	// Claimed is true when the entry was taken over from another consumer
	// (XAUTOCLAIM) or re-read from this consumer's own pending entries:
	// it may have been handled before.
	Claimed bool
}

// Handler handles one entry. It is called from Run's goroutine, one entry
// at a time. It should honour ctx. Returning an error stops Run with that
// error and leaves the entry unacknowledged.
type Handler func(ctx context.Context, e Entry) error

// Config configures a Consumer.
type Config struct {
	// Streams are the keys to follow (at least one).
	Streams []string
	// Group is the consumer group ["oppsync-tail"].
	Group string
	// Consumer names this consumer within the group (required). Keep it
	// stable across restarts of one instance, distinct between instances.
	Consumer string
	// Start is where a group created by this consumer starts: StartEarliest
	// or StartLatest [StartEarliest].
	Start string
	// MinIdle is how long an entry must have been pending on another
	// consumer before it is claimed [30s]. Longer than any handling.
	MinIdle time.Duration
	// ClaimEvery is how often pending entries are looked for [MinIdle/2,
	// at most 10s].
	ClaimEvery time.Duration
	// Count caps the entries of one read or claim [100].
	Count int
	// Block is how long a read waits for new entries [2s, at most
	// ClaimEvery].
	Block time.Duration
	// OnError is told of each Redis error before it is retried [none]. It
	// is called from Run's goroutine.
	OnError func(error)
	// RetryMin and RetryMax bound the wait before a retry [100ms, 5s].
	RetryMin, RetryMax time.Duration
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if len(c.Streams) == 0 {
		return errors.New("tail: no stream to follow")
	}
	for _, s := range c.Streams {
		if s == "" {
			return errors.New("tail: empty stream key")
		}
	}
	if c.Group == "" {
		c.Group = "oppsync-tail"
	}
	if c.Consumer == "" {
		return errors.New("tail: the consumer name is required")
	}
	switch c.Start {
	case "":
		c.Start = StartEarliest
	case StartEarliest, StartLatest:
	default:
		return fmt.Errorf("tail: start %q is neither %q nor %q", c.Start, StartEarliest, StartLatest)
	}
	if c.MinIdle < 0 || c.ClaimEvery < 0 || c.Count < 0 || c.Block < 0 {
		return errors.New("tail: durations and counts must not be negative")
	}
	if c.MinIdle == 0 {
		c.MinIdle = 30 * time.Second
	}
	if c.ClaimEvery == 0 {
		c.ClaimEvery = min(c.MinIdle/2, 10*time.Second)
	}
	if c.Count == 0 {
		c.Count = 100
	}
	if c.Block == 0 {
		c.Block = 2 * time.Second
	}
	c.Block = max(min(c.Block, c.ClaimEvery), time.Millisecond)
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(5*time.Second, c.RetryMin)
	}
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	return nil
}

// Consumer follows streams with a consumer group. Run it once.
type Consumer struct {
	cfg Config
	rdb redis.UniversalClient
}

// New returns a Consumer reading through rdb.
func New(cfg Config, rdb redis.UniversalClient) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, errors.New("tail: no Redis client")
	}
	return &Consumer{cfg: cfg, rdb: rdb}, nil
}

// Run creates the group where missing, then hands every entry to h until
// ctx ends (nil) or h fails (its error). Redis errors are retried.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	b := backoff.Backoff{Min: c.cfg.RetryMin, Max: c.cfg.RetryMax}
	for {
		err := c.follow(ctx, h, b.Reset)
		var he *handlerError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &he):
			return err
		}
		c.cfg.OnError(err)
		if backoff.Sleep(ctx, b.Next()) != nil {
			return nil
		}
	}
}

// handlerError is an error of the Handler: it stops Run.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// follow runs one attempt: group, own pending entries, then claims and
// reads until an error; ok is called once Redis answered.
func (c *Consumer) follow(ctx context.Context, h Handler, ok func()) error {
	for _, s := range c.cfg.Streams {
		err := c.rdb.XGroupCreateMkStream(ctx, s, c.cfg.Group, c.cfg.Start).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("creating group %s on %s: %w", c.cfg.Group, s, err)
		}
	}
	ok()
	if err := c.readOwn(ctx, h); err != nil {
		return err
	}
	var lastClaim time.Time
	for ctx.Err() == nil {
		if time.Since(lastClaim) >= c.cfg.ClaimEvery {
			lastClaim = time.Now()
			if err := c.claim(ctx, h); err != nil {
				return err
			}
		}
		if err := c.read(ctx, ">", c.cfg.Block, h); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return ctx.Err()
}

// readOwn re-reads this consumer's own pending entries until none is left.
func (c *Consumer) readOwn(ctx context.Context, h Handler) error {
	for {
		n, err := c.readCount(ctx, "0", -1, h)
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

func (c *Consumer) read(ctx context.Context, from string, block time.Duration, h Handler) error {
	_, err := c.readCount(ctx, from, block, h)
	return err
}

// readCount reads once (from ">" for new entries, "0" for own pending
// ones; block < 0 does not block) and handles what came; it returns how
// many entries it handled.
func (c *Consumer) readCount(ctx context.Context, from string, block time.Duration, h Handler) (int, error) {
	streams := make([]string, 0, 2*len(c.cfg.Streams))
	streams = append(streams, c.cfg.Streams...)
	for range c.cfg.Streams {
		streams = append(streams, from)
	}
	res, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.cfg.Group, Consumer: c.cfg.Consumer, Streams: streams, Count: int64(c.cfg.Count), Block: block,
	}).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range res {
		for _, m := range s.Messages {
			if ctx.Err() != nil {
				return n, nil // the rest stays pending
			}
			if err := c.handle(ctx, h, s.Stream, m, from != ">"); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// claim takes over, stream by stream, the entries pending on any consumer
// for at least MinIdle, and handles them.
func (c *Consumer) claim(ctx context.Context, h Handler) error {
	for _, s := range c.cfg.Streams {
		start := "0-0"
		for {
			msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: s, Group: c.cfg.Group, Consumer: c.cfg.Consumer, MinIdle: c.cfg.MinIdle, Start: start, Count: int64(c.cfg.Count),
			}).Result()
			if err != nil {
				return fmt.Errorf("claiming pending entries of %s: %w", s, err)
			}
			for _, m := range msgs {
				if ctx.Err() != nil {
					return nil
				}
				if err := c.handle(ctx, h, s, m, true); err != nil {
					return err
				}
			}
			if next == "0-0" || next == "" {
				break
			}
			start = next
		}
	}
	return nil
}

// handle runs h on one entry and acknowledges it. An entry the stream no
// longer holds (trimmed while pending: Redis hands it back without fields)
// is acknowledged without a call.
func (c *Consumer) handle(ctx context.Context, h Handler, stream string, m redis.XMessage, claimed bool) error {
	if m.Values != nil {
		e := Entry{Stream: stream, ID: m.ID, Values: make(map[string]string, len(m.Values)), Claimed: claimed}
		for k, v := range m.Values {
			e.Values[k] = fmt.Sprint(v)
		}
		if err := h(ctx, e); err != nil {
			return &handlerError{fmt.Errorf("handling %s %s: %w", stream, m.ID, err)}
		}
	}
	// Acknowledge even when ctx just ended: the entry was handled.
	if err := c.rdb.XAck(context.WithoutCancel(ctx), stream, c.cfg.Group, m.ID).Err(); err != nil {
		return fmt.Errorf("acknowledging %s %s: %w", stream, m.ID, err)
	}
	return nil
}
