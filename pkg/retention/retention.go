package retention

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Config configures a Trimmer.
type Config struct {
	// Streams maps each stream's name, its metric label, to its Redis key
	// (replica.OutputStreams).
	Streams map[string]string
	// MaxLen is streams.maxlen: the length a stream is trimmed to when its
	// consumer groups, if any, have acknowledged the entries beyond it.
	MaxLen int64
	// Interval is the time between two passes [5s].
	Interval time.Duration
	// ReadBudget bounds the entries one pass reads from a stream to count
	// a group's undelivered entries, which it does only when Redis cannot
	// (entries were deleted with XDEL after the group's last-delivered-id)
	// [1000].
	ReadBudget int
}

// trimLimit bounds the entries one pass removes from a stream (whole macro
// nodes, freed while Redis waits): up to 20,000 a second at the default
// interval.
const trimLimit = 100_000

var streamName = regexp.MustCompile(`^[a-z_]{1,64}$`)

// WithDefaults returns c with its zero-valued settings set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.ReadBudget <= 0 {
		c.ReadBudget = 1000
	}
	return c
}

// Validate checks c with its defaults applied (WithDefaults); it changes
// nothing.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if len(c.Streams) == 0 {
		return errors.New("retention: no streams")
	}
	for name, key := range c.Streams {
		if !streamName.MatchString(name) || key == "" {
			return fmt.Errorf("retention: stream %q (key %q): want a name of [a-z_] and a key", name, key)
		}
	}
	if c.MaxLen <= 0 {
		return fmt.Errorf("streams.maxlen: must be positive, got %d", c.MaxLen)
	}
	return nil
}

// Trimmer trims the output streams and exports their lengths and the lag of
// their consumer groups. Trim and Run are safe to call from several
// instances at once.
type Trimmer struct {
	cfg   Config
	rdb   redis.UniversalClient
	m     *metrics
	log   zerolog.Logger
	names []string // sorted stream names
}

// New returns a Trimmer for cfg on rdb, its metrics registered on reg.
func New(cfg Config, rdb redis.UniversalClient, reg prometheus.Registerer, log zerolog.Logger) (*Trimmer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(cfg.Streams))
	for n := range cfg.Streams {
		names = append(names, n)
	}
	sort.Strings(names)
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		m.maxlen.WithLabelValues(n).Set(float64(cfg.MaxLen))
	}
	return &Trimmer{cfg: cfg, rdb: rdb, m: m, log: log, names: names}, nil
}

// Group is what a pass found of one consumer group.
type Group struct {
	Name    string
	Pending int64 // delivered, not acknowledged
	// Undelivered counts the entries after the group's last-delivered-id;
	// an upper bound (the stream's length) when Exact is false.
	Undelivered int64
	Exact       bool
}

// Lag is the number of entries the group has not acknowledged.
func (g Group) Lag() int64 { return g.Pending + g.Undelivered }

// Stream is what a pass found and did on one stream.
type Stream struct {
	Name    string
	Length  int64 // after trimming
	Removed int64
	Groups  []Group
}

// Trim makes one pass over every stream, updates the metrics and returns
// what it found. An error on one stream does not stop the others.
func (t *Trimmer) Trim(ctx context.Context) ([]Stream, error) {
	var out []Stream
	var errs []error
	for _, name := range t.names {
		st, err := t.trim(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.m.observe(st)
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

func (t *Trimmer) trim(ctx context.Context, name string) (Stream, error) {
	key := t.cfg.Streams[name]
	res, err := trimScript.Run(ctx, t.rdb, []string{key}, t.cfg.MaxLen, t.cfg.ReadBudget, trimLimit).Slice()
	if err != nil {
		return Stream{}, fmt.Errorf("trimming stream %s: %w", name, err)
	}
	st, err := parseResult(name, res)
	if err != nil {
		return Stream{}, fmt.Errorf("trimming stream %s: %w", name, err)
	}
	return st, nil
}

func parseResult(name string, res []any) (Stream, error) {
	st := Stream{Name: name}
	if len(res) != 3 {
		return st, fmt.Errorf("script answered %d values, want 3", len(res))
	}
	var ok1, ok2 bool
	st.Length, ok1 = res[0].(int64)
	st.Removed, ok2 = res[1].(int64)
	groups, ok3 := res[2].([]any)
	if !ok1 || !ok2 || !ok3 {
		return st, fmt.Errorf("unexpected script answer %v", res)
	}
	for _, g := range groups {
		f, ok := g.([]any)
		if !ok || len(f) != 4 {
			return st, fmt.Errorf("unexpected group in script answer: %v", g)
		}
		var gr Group
		var okN, okP, okU bool
		var exact int64
		gr.Name, okN = f[0].(string)
		gr.Pending, okP = f[1].(int64)
		gr.Undelivered, okU = f[2].(int64)
		exact, _ = f[3].(int64)
		if !okN || !okP || !okU {
			return st, fmt.Errorf("unexpected group in script answer: %v", f)
		}
		gr.Exact = exact == 1
		st.Groups = append(st.Groups, gr)
	}
	return st, nil
}

// Run trims every Interval until ctx ends, logging failures; it returns nil
// on cancellation.
func (t *Trimmer) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := t.Trim(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn().Err(err).Msg("trimming the output streams")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
