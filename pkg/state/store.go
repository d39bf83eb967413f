package state

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// Config configures the Store.
type Config struct {
	Org               string
	Currency          string
	Rates             map[string]float64 // ISO code → rate to Currency
	IgnoreFields      []string
	PendingTimeout    time.Duration
	ActivityRetention time.Duration
	// CacheGroups bounds how many opportunity groups are kept in memory
	// between batches (0: the default 100,000; negative: no cache).
	CacheGroups int
	// Now is the wall clock (tests set it); defaults to time.Now.
	Now func() time.Time
	// OnCorrupt, when set, is told of each stored record that could not be
	// read and was skipped (see replica.Corrupt). It must not block.
	OnCorrupt func(replica.Corrupt)
}

var orgPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Defaults of the write path (CONTRACT §2).
const (
	DefaultCurrency          = "USD"
	DefaultPendingTimeout    = 30 * time.Second // triggers.pending_role_timeout
	DefaultActivityRetention = 8760 * time.Hour // activity.retention
	DefaultCacheGroups       = 100_000
)

// DefaultConfig returns the documented defaults for org.
func DefaultConfig(org string) Config {
	return Config{Org: org}.WithDefaults()
}

// WithDefaults returns c with its zero-valued settings set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.Currency == "" {
		c.Currency = DefaultCurrency
	}
	if c.PendingTimeout <= 0 {
		c.PendingTimeout = DefaultPendingTimeout
	}
	if c.ActivityRetention <= 0 {
		c.ActivityRetention = DefaultActivityRetention
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheGroups == 0 {
		c.CacheGroups = DefaultCacheGroups
	}
	return c
}

// Validate checks the configuration; it changes nothing.
func (c Config) Validate() error {
	if !orgPattern.MatchString(c.Org) {
		return fmt.Errorf("org_id: %q must be non-empty and use only letters, digits, '_', '.' and '-'", c.Org)
	}
	return nil
}

// Store reads and writes one org's replica in Redis. It is safe for
// concurrent use; ApplyBatch calls for one partition must not overlap.
type Store struct {
	cfg  Config
	rdb  redis.UniversalClient
	r    *replica.Replica
	k    replica.Keys
	cur  triggers.Currency
	tcfg *triggers.Config

	expect  expectations
	schemas seenSet
	cache   *groupCache
	// txChanges bounds the record changes merged into one script call.
	txChanges int
	chains    chains
	lane      lane
	syncMu    sync.Mutex // one ApplyBatch at a time
	// script is applyScript (a test gives it one Redis has not cached).
	script *redis.Script
	// camps are the campaigns the apply path evaluates (nil: off).
	camps *campaignCache
}

// New returns a Store for cfg.Org on rdb. Call Init before use.
func New(cfg Config, rdb redis.UniversalClient) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ignore := map[string]bool{}
	for _, f := range cfg.IgnoreFields {
		ignore[f] = true
	}
	return &Store{
		cfg: cfg,
		rdb: rdb,
		r:   replica.New(cfg.Org, rdb, cfg.OnCorrupt),
		k:   replica.NewKeys(cfg.Org),
		cur: triggers.Currency{Default: cfg.Currency, Rates: cfg.Rates},
		tcfg: &triggers.Config{
			Org:                  cfg.Org,
			IgnoreFields:         ignore,
			PendingTimeoutMillis: cfg.PendingTimeout.Milliseconds(),
		},
		expect:    newExpectations(),
		schemas:   newSeenSet(),
		cache:     newGroupCache(cfg.CacheGroups),
		txChanges: defaultTxChanges,
		chains:    newChains(),
		lane:      lane{max: max(cfg.CacheGroups, 1000)},
		script:    applyScript,
	}, nil
}

// Init loads the apply script into Redis (every shard of a cluster).
func (s *Store) Init(ctx context.Context) error {
	if err := s.script.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("loading the apply script: %w", err)
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Replica returns the reader of the store's keys.
func (s *Store) Replica() *replica.Replica { return s.r }

// Org returns the org the store serves.
func (s *Store) Org() string { return s.cfg.Org }

func posField(topic string, partition int) string {
	return topic + "/" + strconv.Itoa(partition)
}

// Position returns the next offset to consume for a partition as recorded
// with the state. It also remembers the value, so that ApplyBatch can tell
// when Redis lost writes (the stored position moved back).
func (s *Store) Position(ctx context.Context, topic string, partition int) (int64, bool, error) {
	field := posField(topic, partition)
	// A partition (re)assigned starts a new chain of batches.
	s.chains.swap(field, nil)
	v, err := s.rdb.HGet(ctx, s.k.Positions(), field).Result()
	if errors.Is(err, redis.Nil) {
		s.expect.set(field, "")
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading position %s: %w", field, err)
	}
	off, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("stored position %s is not an offset: %q", field, v)
	}
	s.expect.set(field, v)
	return off, true, nil
}

// RewindError says that the position stored in Redis is behind what this
// consumer last wrote: Redis lost its newest writes, and consumption must
// resume from Offset (or from the earliest offset when Offset < 0) so that
// the lost changes are applied again.
type RewindError struct {
	Topic     string
	Partition int
	Offset    int64
}

// RewindOffset is where consumption resumes; negative means the earliest
// offset. It makes RewindError a source.Rewinder.
func (e *RewindError) RewindOffset() int64 { return e.Offset }

func (e *RewindError) Error() string {
	return fmt.Sprintf("stored position of %s/%d moved back to %d: resuming from there", e.Topic, e.Partition, e.Offset)
}

// Item is one message of a batch and what to do with it.
type Item struct {
	Msg *cdc.Message
	// Event is the decoded event to apply; nil (and no DeadLetter) means the
	// message only advances the position (skipped entity, snapshot, ...).
	Event *cdc.Event
	// DeadLetter, when set, sends the message to the dead-letter stream.
	DeadLetter *DeadLetter
}

// DeadLetter says why a message could not be processed.
type DeadLetter struct {
	Stage  string // "decode" or "apply"
	Reason string // stable code
	Error  string // human-readable detail, without record values
}

// BatchResult counts what a batch did, for metrics.
type BatchResult struct {
	Applied     int // record changes written
	Duplicates  int // record changes already reflected
	Redelivered int // messages at or below the stored position
	Unresolved  int // contact-role changes whose opportunity is unknown
	Triggers    map[string]int
	DeadLetters map[string]int // by stage
	Resync      map[string]int // by entity
	Conflicts   int            // scripts retried after a concurrent change
}

func (r *BatchResult) add(o BatchResult) {
	r.Applied += o.Applied
	r.Duplicates += o.Duplicates
	r.Redelivered += o.Redelivered
	r.Unresolved += o.Unresolved
	r.Conflicts += o.Conflicts
	for _, m := range []struct{ dst, src *map[string]int }{
		{&r.Triggers, &o.Triggers}, {&r.DeadLetters, &o.DeadLetters}, {&r.Resync, &o.Resync},
	} {
		for k, v := range *m.src {
			if *m.dst == nil {
				*m.dst = map[string]int{}
			}
			(*m.dst)[k] += v
		}
	}
}

const maxAttempts = 20

// sliceItems is how many messages are built before their script calls are
// sent, so that building the next slice overlaps Redis running this one.
const (
	sliceItems      = 64
	firstSliceItems = 32
)

// ApplyBatch writes the effects of a batch of messages of one partition, in
// offset order, and advances the partition's stored position past them. It
// returns nil only when all of them are durable in Redis. A *RewindError
// means consumption must restart from an earlier offset; any other error is
// transient (Redis unavailable) and the whole batch may simply be retried.
func (s *Store) ApplyBatch(ctx context.Context, items []Item) (BatchResult, error) {
	var total BatchResult
	if len(items) == 0 {
		return total, nil
	}
	topic, partition := items[0].Msg.Topic, items[0].Msg.Partition
	field := posField(topic, partition)
	// One batch at a time: batches applied here (a partition's first,
	// those whose calls begun ahead did not all apply) come in bursts, one
	// per partition, and run alone beside the lane; at once they would
	// refuse each other's calls over the groups they share, and each
	// refusal rebuilds the rest of a batch.
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for attempt := 0; attempt < maxAttempts; attempt++ {
		res, done, err := s.applyOnce(ctx, field, items)
		total.add(res)
		if err != nil {
			var rw *RewindError
			if errors.As(err, &rw) {
				rw.Topic, rw.Partition = topic, partition
			}
			return total, err
		}
		if done {
			return total, nil
		}
		total.Conflicts++
	}
	return total, fmt.Errorf("partition %s: gave up after %d conflicting attempts", field, maxAttempts)
}

// applyOnce makes one attempt: it returns done=false when a script hit a
// conflict and the rest of the batch must be recomputed.
func (s *Store) applyOnce(ctx context.Context, field string, items []Item) (BatchResult, bool, error) {
	var res BatchResult
	stored, err := s.rdb.HGet(ctx, s.k.Positions(), field).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return res, false, fmt.Errorf("reading position %s: %w", field, err)
	}
	if exp, ok := s.expect.get(field); ok && stored != exp {
		if stored == "" || parseOffset(stored) < parseOffset(exp) {
			off := int64(-1)
			if stored != "" {
				off = parseOffset(stored)
			}
			s.expect.set(field, stored)
			s.cache.clear()
			s.lane.mu.Lock()
			s.lane.reset()
			s.lane.mu.Unlock()
			return res, false, &RewindError{Offset: off}
		}
	}
	start := 0
	if stored != "" {
		next := parseOffset(stored)
		for start < len(items) && items[start].Msg.Offset < next {
			start++
		}
		res.Redelivered = start
	}
	if start == len(items) {
		s.expect.set(field, stored)
		return res, true, nil
	}
	todo := items[start:]

	p, err := s.plan(ctx, todo)
	if err != nil {
		return res, false, err
	}
	// Build the writes slice by slice and hand each slice's script calls to
	// one executor goroutine, so Redis runs a slice while the next is built.
	// The executor keeps the order; a call that finds the position or a
	// group moved writes nothing, and the calls after it, which expect the
	// position it would have stored, write nothing either.
	jobs := make(chan []*tx, 16)
	done := make(chan []*redis.Cmd, 1)
	var sendPanic *GoPanic
	go func() {
		var cmds []*redis.Cmd
		defer func() {
			if sendPanic = caught(recover()); sendPanic != nil {
				for range jobs { // send nothing more, let the builder finish
				}
			}
			done <- cmds
		}()
		for ts := range jobs {
			cmds = append(cmds, s.send(ctx, ts)...)
		}
	}()
	built := false
	defer func() {
		if !built { // building panicked: the calls handed over run before it unwinds
			close(jobs)
			<-done
		}
	}()
	txs, _ := s.buildSlices(p, field, stored, todo, func(ts []*tx) { jobs <- ts })
	close(jobs)
	built = true
	cmds := <-done
	if sendPanic != nil {
		panic(sendPanic)
	}
	if len(txs) == 0 {
		return res, true, nil
	}
	// The planned groups hold what the scripts will write. Those whose
	// scripts all applied (or that no script wrote) become the cache; the
	// groups of scripts that did not apply are speculative and dropped.
	failedFrom := len(txs)
	defer func() { s.keepGroups(p, txs[failedFrom:]) }()
	for i, c := range cmds {
		failedFrom = i
		ok, err := applied(c)
		if err != nil {
			return res, false, fmt.Errorf("applying changes of %s: %w", field, err)
		}
		if !ok {
			return res, false, nil
		}
		res.add(txs[i].counts)
		if txs[i].posNew != "" {
			s.expect.set(field, txs[i].posNew)
		}
	}
	res.Duplicates += p.duplicates
	res.Unresolved += p.unresolved
	failedFrom = len(txs)
	return res, true, nil
}

// buildSlices builds the calls of items from position pos, slice by slice
// (a short first slice gets Redis started early), rendering them on the
// way, and hands each slice to emit when set. It returns all the calls and
// the position the last one stores.
func (s *Store) buildSlices(p *plan, field, pos string, items []Item, emit func([]*tx)) ([]*tx, string) {
	var txs []*tx
	for from, to := 0, 0; from < len(items); from = to {
		to = min(from+sliceItems, len(items))
		if from == 0 {
			to = min(firstSliceItems, len(items))
		}
		ts := s.build(p, field, pos, items[from:to])
		if len(ts) == 0 {
			continue
		}
		for _, t := range ts {
			if t.posNew != "" {
				pos = t.posNew
			}
			t.args() // rendered here, so that sending only writes
		}
		txs = append(txs, ts...)
		if emit != nil {
			emit(ts)
		}
	}
	return txs, pos
}

// keepGroups caches the planned groups that are now what Redis holds: all
// but those written by the calls that did not apply, which are evicted.
func (s *Store) keepGroups(p *plan, failed []*tx) {
	bad := map[string]*loaded{}
	for _, t := range failed {
		for _, g := range t.groups {
			bad[g] = p.groups[g]
		}
	}
	good := make(map[string]*loaded, len(p.groups))
	for id, l := range p.groups {
		if _, ok := bad[id]; !ok {
			good[id] = l
		}
	}
	s.cache.evict(bad)
	s.cache.put(good)
	// The lane's copies of them are older than what was just written.
	s.lane.forget(p.groups)
}

func parseOffset(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
