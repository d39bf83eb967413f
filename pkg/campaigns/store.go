package campaigns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
)

// DefaultMax is campaigns.max's default.
const DefaultMax = 1000

// Config configures a Store.
type Config struct {
	Org string
	// Max bounds the definitions of the org [DefaultMax].
	Max int
	// Ignored are triggers.ignore_fields (a trigger naming one is invalid).
	Ignored []string
	// Now stamps updated_at [time.Now].
	Now func() time.Time
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Org == "" {
		return errors.New("campaigns: Org is required")
	}
	if c.Max == 0 {
		c.Max = DefaultMax
	}
	if c.Max < 0 {
		return fmt.Errorf("campaigns.max: %d is negative", c.Max)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// CatalogSource returns the constraint catalog. It blocks, honours ctx and
// is safe for concurrent use.
type CatalogSource interface {
	Catalog(ctx context.Context) (*filters.Catalog, error)
}

// LimitError is a create refused because campaigns.max definitions exist.
type LimitError struct{ Max int }

func (e *LimitError) Error() string {
	return fmt.Sprintf("campaigns.max: %d campaigns already exist; delete one first", e.Max)
}

// Conflict marks the error as HTTP 409.
func (e *LimitError) Conflict() bool { return true }

// Store keeps the definitions of one org in Redis. It is safe for
// concurrent use; every method blocks for its round trips and honours ctx.
type Store struct {
	cfg Config
	rdb redis.UniversalClient
	cat CatalogSource
	k   Keys
}

// New returns a Store.
func New(cfg Config, rdb redis.UniversalClient, cat CatalogSource) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil || cat == nil {
		return nil, errors.New("campaigns: a Redis client and a catalog are required")
	}
	return &Store{cfg: cfg, rdb: rdb, cat: cat, k: NewKeys(cfg.Org)}, nil
}

// Keys names the Redis keys of one org's campaigns.
type Keys struct{ prefix string }

// NewKeys returns the keys of org, under the org's prefix (replica.Keys).
func NewKeys(org string) Keys { return Keys{prefix: replica.NewKeys(org).Prefix()} }

// Defs is the hash id → canonical definition.
func (k Keys) Defs() string { return k.prefix + "campaigns" }

// Meta is the hash id → {"version","updated_at"}.
func (k Keys) Meta() string { return k.prefix + "campaigns:meta" }

// Versions is the hash id → last version given (kept after a delete).
func (k Keys) Versions() string { return k.prefix + "campaigns:versions" }

// Rev is the revision counter, raised by every change of the definitions.
func (k Keys) Rev() string { return k.prefix + "campaigns:rev" }

// Qualified is the hash id → campaign entries written.
func (k Keys) Qualified() string { return k.prefix + "campaigns:qualified" }

// Marks is the hash person → occurred_at (ms) of their last entry.
func (k Keys) Marks(id string) string { return k.prefix + "campaign:" + id + ":marks" }

// Stream is the campaign's output stream.
func (k Keys) Stream(id string) string { return k.prefix + "campaign:" + id }

// putScript stores a definition unless it is the stored one. KEYS: defs,
// meta, versions, rev. ARGV: id, body, max, updated_at. Returns {1, meta}
// when stored, {0, meta} when unchanged, {-1, ""} at the limit.
var putScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == ARGV[2] then return {0, redis.call('HGET', KEYS[2], ARGV[1]) or ''} end
if not cur and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {-1, ''} end
local v = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
local meta = '{"version":' .. v .. ',"updated_at":"' .. ARGV[4] .. '"}'
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], meta)
redis.call('INCR', KEYS[4])
return {1, meta}
`)

// deleteScript forgets a definition, its marks and its total. KEYS: defs,
// meta, qualified, marks, rev. ARGV: id. Returns 1, or 0 for an unknown id.
var deleteScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
redis.call('INCR', KEYS[5])
return 1
`)

type meta struct {
	Version   int64  `json:"version"`
	UpdatedAt string `json:"updated_at"`
}

// Options returns the validation options with the current catalog.
func (s *Store) Options(ctx context.Context) (Options, error) {
	cat, err := s.cat.Catalog(ctx)
	if err != nil {
		return Options{}, err
	}
	return Options{Catalog: cat, Ignored: s.cfg.Ignored}, nil
}

// Put validates body as the definition of campaign id and stores it. changed
// is false when the stored definition was already the same (nothing is
// written). Errors: *InvalidError (400), *LimitError (409), or storage.
func (s *Store) Put(ctx context.Context, id string, body []byte) (st *Stored, changed bool, err error) {
	opts, err := s.Options(ctx)
	if err != nil {
		return nil, false, err
	}
	d, _, err := Parse(id, body, opts)
	if err != nil {
		return nil, false, err
	}
	return s.Store(ctx, d)
}

// Store stores a validated definition (see Put).
func (s *Store) Store(ctx context.Context, d *Definition) (*Stored, bool, error) {
	now := s.cfg.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	k := s.k
	res, err := putScript.Run(ctx, s.rdb, []string{k.Defs(), k.Meta(), k.Versions(), k.Rev()},
		d.CampaignID, d.Body(), s.cfg.Max, now).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("storing campaign %s: %w", d.CampaignID, err)
	}
	code, _ := res[0].(int64)
	if code == -1 {
		return nil, false, &LimitError{Max: s.cfg.Max}
	}
	var m meta
	text, _ := res[1].(string)
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return nil, false, fmt.Errorf("campaign %s: unreadable metadata %q", d.CampaignID, text)
	}
	return &Stored{Definition: *d, Version: m.Version, UpdatedAt: m.UpdatedAt}, code == 1, nil
}

// Delete forgets a campaign; ok is false for an id not stored.
func (s *Store) Delete(ctx context.Context, id string) (ok bool, err error) {
	if !ValidID(id) {
		return false, nil
	}
	k := s.k
	n, err := deleteScript.Run(ctx, s.rdb, []string{k.Defs(), k.Meta(), k.Qualified(), k.Marks(id), k.Rev()}, id).Int()
	if err != nil {
		return false, fmt.Errorf("deleting campaign %s: %w", id, err)
	}
	return n == 1, nil
}

// Get returns one campaign with its qualified total; ok is false for an id
// not stored.
func (s *Store) Get(ctx context.Context, id string) (*Stored, bool, error) {
	if !ValidID(id) {
		return nil, false, nil
	}
	pipe := s.rdb.TxPipeline()
	def := pipe.HGet(ctx, s.k.Defs(), id)
	mt := pipe.HGet(ctx, s.k.Meta(), id)
	total := pipe.HGet(ctx, s.k.Qualified(), id)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("reading campaign %s: %w", id, err)
	}
	if errors.Is(def.Err(), redis.Nil) {
		return nil, false, nil
	}
	st, err := decodeStored(id, def.Val(), mt.Val())
	if err != nil {
		return nil, false, err
	}
	n, _ := strconv.ParseInt(total.Val(), 10, 64)
	st.QualifiedTotal = &n
	return st, true, nil
}

// List returns every stored campaign ordered by id, and the revision they
// were read at (read atomically together).
func (s *Store) List(ctx context.Context) ([]*Stored, int64, error) {
	pipe := s.rdb.TxPipeline()
	defs := pipe.HGetAll(ctx, s.k.Defs())
	metas := pipe.HGetAll(ctx, s.k.Meta())
	rev := pipe.Get(ctx, s.k.Rev())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("reading campaigns: %w", err)
	}
	ids := make([]string, 0, len(defs.Val()))
	for id := range defs.Val() {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*Stored, 0, len(ids))
	for _, id := range ids {
		st, err := decodeStored(id, defs.Val()[id], metas.Val()[id])
		if err != nil {
			return nil, 0, err
		}
		out = append(out, st)
	}
	r, _ := strconv.ParseInt(rev.Val(), 10, 64)
	return out, r, nil
}

func decodeStored(id, def, mt string) (*Stored, error) {
	st := &Stored{}
	if err := json.Unmarshal([]byte(def), &st.Definition); err != nil {
		return nil, fmt.Errorf("campaign %s: unreadable definition: %w", id, err)
	}
	var m meta
	if err := json.Unmarshal([]byte(mt), &m); err != nil {
		return nil, fmt.Errorf("campaign %s: unreadable metadata: %w", id, err)
	}
	st.Version, st.UpdatedAt = m.Version, m.UpdatedAt
	if st.Filters == nil {
		st.Filters = []json.RawMessage{}
	}
	return st, nil
}

// Active compiles the active campaigns stored at revision rev. A stored
// definition that no longer validates (access.hidden_fields or
// triggers.ignore_fields changed since) is left out and reported in bad.
func (s *Store) Active(ctx context.Context) (set *Set, bad map[string]error, err error) {
	list, rev, err := s.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts, err := s.Options(ctx)
	if err != nil {
		return nil, nil, err
	}
	set = &Set{Rev: rev}
	for _, st := range list {
		if !st.Active {
			continue
		}
		c, err := st.Compile(opts)
		if err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[st.CampaignID] = err
			continue
		}
		set.Campaigns = append(set.Campaigns, c)
	}
	return set, bad, nil
}

// Set is the active campaigns at one revision.
type Set struct {
	Rev       int64
	Campaigns []*Campaign
}

// The methods below serve the HTTP API (api.Campaigns).

// PutCampaign is Put returning the stored definition.
func (s *Store) PutCampaign(ctx context.Context, id string, body []byte) (any, error) {
	st, _, err := s.Put(ctx, id, body)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// GetCampaign is Get.
func (s *Store) GetCampaign(ctx context.Context, id string) (any, bool, error) {
	st, ok, err := s.Get(ctx, id)
	if err != nil || !ok {
		return nil, ok, err
	}
	return st, true, nil
}

// ListCampaigns is List without the revision.
func (s *Store) ListCampaigns(ctx context.Context) ([]any, error) {
	list, _, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(list))
	for i, st := range list {
		out[i] = st
	}
	return out, nil
}

// DeleteCampaign is Delete.
func (s *Store) DeleteCampaign(ctx context.Context, id string) (bool, error) {
	return s.Delete(ctx, id)
}
