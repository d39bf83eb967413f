package view

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// ErrNotReady is returned by View queries before the first load completed.
var ErrNotReady error = notReady{}

type notReady struct{}

func (notReady) Error() string { return "the in-memory view is still loading" }

// Unavailable marks the error as "try again later" for the API.
func (notReady) Unavailable() bool { return true }

// Config tunes a View. Zero values take the defaults in brackets.
type Config struct {
	// Currency converts amounts as the write path's snapshots do.
	Currency triggers.Currency
	// ActivityRetention bounds the people a query considers (those with
	// activity within it) and the activity the filters see [8760h].
	ActivityRetention time.Duration
	// Now is the wall clock [time.Now].
	Now func() time.Time
	// Block is how long one XREAD of the changes stream waits [1s].
	Block time.Duration
	// Batch is how many changes one XREAD returns at most [1000].
	Batch int64
	// Chunk is how many groups one pipelined load reads [500].
	Chunk int
	// MaxBackoff caps the wait between retries after a Redis error [5s].
	MaxBackoff time.Duration
	// CatalogTTL is how long the field catalog is cached [1s].
	CatalogTTL time.Duration
	// PeopleRefresh is the least time between two full reads of the people
	// index. A full read happens when the index holds people the view does
	// not know: the one move the changes stream cannot show (a contact role
	// created and given another contact between two reads names only its
	// last contact) [2s].
	PeopleRefresh time.Duration
	// OnError sees every error Run retries (optional; must not block).
	OnError func(error)
	// OnLoad is called after every full load, once Ready returns nil
	// (optional; must not block).
	OnLoad func()
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with its zero values set to the defaults.
func (c Config) WithDefaults() Config {
	if c.ActivityRetention <= 0 {
		c.ActivityRetention = 8760 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Block <= 0 {
		c.Block = time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.Chunk <= 0 {
		c.Chunk = 500
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.CatalogTTL <= 0 {
		c.CatalogTTL = time.Second
	}
	if c.PeopleRefresh <= 0 {
		c.PeopleRefresh = 2 * time.Second
	}
	return c
}

// View is an in-memory copy of every opportunity group and person link of
// one org, loaded at start and kept current by tailing the changes stream,
// that answers person queries without scanning Redis. Its query methods are
// safe for concurrent use with Run and each other.
//
// Invariant: every opportunity in the view is immutable once published; an
// update replaces it, so readers never see a half-applied group.
type View struct {
	r   *replica.Replica
	cfg Config

	mu      sync.RWMutex
	opps    map[string]*filters.Opportunity
	persons map[string]*personEntry
	sorted  []*personEntry // the query universe (people with activity), by id; nil when it must be rebuilt
	lastID  string         // last changes-stream id applied

	loaded     atomic.Bool
	reloads    atomic.Int64
	known      int       // entries with last > 0 (under mu)
	peopleRead time.Time // when the people index was last read whole (Run's goroutine only)
	peopleDue  bool      // the index holds people the view does not know (Run's goroutine only)

	catMu sync.Mutex
	cat   *filters.Catalog
	catAt time.Time
}

// personEntry is one person of the view. Fields change only under the
// write lock; opps is replaced, never mutated, so readers may keep it.
type personEntry struct {
	id     string
	last   int64                  // last activity (ms); 0 = not in the people index
	opps   []*filters.Opportunity // opportunities with a live role of theirs
	totals filters.Totals         // TotalsOf(id, opps)
	acts   string                 // activity within the retention (see activity.go)
}

func (v *View) entry(p string) *personEntry {
	e := v.persons[p]
	if e == nil {
		p = strings.Clone(p) // not a substring of an opportunity's row
		e = &personEntry{id: p}
		v.persons[p] = e
	}
	return e
}

// setLast records a person's last activity; callers hold the write lock.
func (v *View) setLast(e *personEntry, last int64) {
	if last <= 0 {
		return
	}
	if e.last == 0 {
		v.sorted = nil
		v.known++
	}
	e.last = last
}

// New returns a View of the replica's org. Call Run to load and follow it.
func New(r *replica.Replica, cfg Config) (*View, error) {
	if r == nil {
		return nil, errors.New("view: New needs a replica")
	}
	cfg = cfg.WithDefaults()
	return &View{r: r, cfg: cfg}, nil
}

// Ready returns nil once the first load completed.
func (v *View) Ready(context.Context) error {
	if !v.loaded.Load() {
		return ErrNotReady
	}
	return nil
}

// Reloads returns how many full loads the view made (1 after start).
func (v *View) Reloads() int64 { return v.reloads.Load() }

// Run loads the view, then follows the changes stream until ctx ends; it
// returns nil on cancellation. Redis errors are retried with capped backoff
// (and reported to OnError); falling behind the stream's MAXLEN reloads
// everything.
func (v *View) Run(ctx context.Context) error {
	bo := backoff.Backoff{Min: 50 * time.Millisecond, Max: v.cfg.MaxBackoff}
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if v.cfg.OnError != nil {
			v.cfg.OnError(err)
		}
		return bo.Wait(ctx) == nil
	}
	needLoad := true
	trimmed := time.Now()
	for ctx.Err() == nil {
		if needLoad {
			if err := v.load(ctx); err != nil {
				if !fail(err) {
					return nil
				}
				continue
			}
			needLoad = false
			v.peopleRead = time.Now()
			if v.cfg.OnLoad != nil {
				v.cfg.OnLoad()
			}
		}
		if v.peopleDue && time.Since(v.peopleRead) > v.cfg.PeopleRefresh {
			if err := v.refreshPeople(ctx); err != nil {
				if !fail(err) {
					return nil
				}
				continue
			}
			v.peopleRead, v.peopleDue = time.Now(), false
		}
		if time.Since(trimmed) > trimEvery {
			v.trimAll()
			trimmed = time.Now()
		}
		lost, err := v.follow(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !fail(err) {
				return nil
			}
			continue
		case lost:
			needLoad = true
		}
		bo.Reset()
	}
	return nil
}

// trimEvery is how often the activity index drops what fell out of the
// retention.
const trimEvery = time.Minute

// loadWorkers is how many chunks a load reads and converts at once, so that
// Redis and the conversion overlap.
const loadWorkers = 4

// load reads every group, person link, person and activity log of the org
// and swaps them in. The stream position is taken first, so changes made
// during the load are applied again afterwards (applying a group or
// reading a log twice is harmless).
func (v *View) load(ctx context.Context) error {
	last, err := v.r.ChangesEnd(ctx)
	if err != nil {
		return err
	}
	list, err := v.r.GroupIDs(ctx)
	if err != nil {
		return err
	}
	people, err := v.r.People(ctx)
	if err != nil {
		return err
	}
	opps := make(map[string]*filters.Opportunity, len(list))
	parts := make([][]*filters.Opportunity, loadWorkers)
	err = v.parallel(ctx, len(list), func(ctx context.Context, w, lo, hi int) error {
		return v.readGroups(ctx, list[lo:hi], func(o *filters.Opportunity, _ []string) { parts[w] = append(parts[w], o) })
	})
	if err != nil {
		return err
	}
	for _, part := range parts {
		for _, o := range part {
			opps[o.ID] = o
		}
	}
	parts = nil
	active := make([]string, len(people))
	for i, p := range people {
		active[i] = p.ID
	}
	logs := make([]string, len(active))
	err = v.parallel(ctx, len(active), func(ctx context.Context, _, lo, hi int) error {
		l, err := v.readActivityLogs(ctx, active[lo:hi])
		copy(logs[lo:hi], l)
		return err
	})
	if err != nil {
		return err
	}
	persons := make(map[string]*personEntry, len(people))
	get := func(p string) *personEntry {
		e := persons[p]
		if e == nil {
			p = strings.Clone(p) // not a substring of an opportunity's row
			e = &personEntry{id: p}
			persons[p] = e
		}
		return e
	}
	var buf []string
	for _, o := range opps {
		buf = o.AppendContacts(buf[:0])
		for _, p := range buf {
			e := get(p)
			e.opps = append(e.opps, o)
		}
	}
	for _, e := range persons {
		if cap(e.opps) > len(e.opps) {
			e.opps = append([]*filters.Opportunity(nil), e.opps...) // no spare capacity
		}
		e.totals = filters.TotalsOf(e.id, e.opps)
	}
	inIndex := 0
	for _, p := range people {
		if e := get(p.ID); e.last == 0 {
			inIndex++
			e.last = p.Last
		}
	}
	for i, p := range active {
		persons[p].acts = logs[i]
	}
	v.mu.Lock()
	v.opps, v.persons, v.sorted, v.lastID, v.known = opps, persons, nil, last, inIndex
	v.mu.Unlock()
	v.reloads.Add(1)
	v.loaded.Store(true)
	return nil
}

// parallel calls fn for the chunks of [0, n), loadWorkers at a time (w is
// the worker), and returns the first error.
func (v *View) parallel(ctx context.Context, n int, fn func(ctx context.Context, w, lo, hi int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	errs := make([]error, loadWorkers)
	var wg sync.WaitGroup
	for w := range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				lo := int(next.Add(int64(v.cfg.Chunk))) - v.cfg.Chunk
				if lo >= n {
					return
				}
				if err := fn(ctx, w, lo, min(lo+v.cfg.Chunk, n)); err != nil {
					errs[w] = err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// refreshPeople re-reads the whole people index.
func (v *View) refreshPeople(ctx context.Context) error {
	people, err := v.r.People(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range people {
		v.setLast(v.entry(p.ID), p.Last)
	}
	return nil
}

// readGroups loads groups in pipelined chunks and hands each over
// converted, with every person any of its roles (deleted ones included)
// names: those whose links or activity the group's changes may have moved.
func (v *View) readGroups(ctx context.Context, ids []string, fn func(o *filters.Opportunity, named []string)) error {
	for i := 0; i < len(ids); i += v.cfg.Chunk {
		chunk := ids[i:min(i+v.cfg.Chunk, len(ids))]
		groups, err := v.r.LoadGroups(ctx, chunk)
		if err != nil {
			return err
		}
		for _, id := range chunk {
			l := groups[id]
			if !l.Written() && len(l.Group.Roles) == 0 {
				fn(&filters.Opportunity{ID: id}, nil) // gone (never seen): an empty placeholder
				continue
			}
			var named []string
			for _, r := range l.Group.SortedRoles() {
				if r.ContactID != "" {
					named = append(named, r.ContactID)
				}
			}
			fn(filters.CompactFromGroup(l.Group, v.cfg.Currency), named)
		}
	}
	return nil
}

// contacts returns the distinct persons holding a live role on o.
func contacts(o *filters.Opportunity) []string { return o.AppendContacts(nil) }

// follow reads one batch of the changes stream and applies it. lost is true
// when the stream was trimmed past the view's position.
func (v *View) follow(ctx context.Context) (lost bool, err error) {
	v.mu.RLock()
	last := v.lastID
	v.mu.RUnlock()
	ch, err := v.r.ReadChanges(ctx, last, v.cfg.Batch, v.cfg.Block)
	if err != nil || ch.Lost || ch.Last == "" {
		return ch.Lost, err
	}
	ids := ch.Groups
	fresh := make([]*filters.Opportunity, 0, len(ids))
	affected := map[string]bool{}
	if err := v.readGroups(ctx, ids, func(o *filters.Opportunity, named []string) {
		fresh = append(fresh, o)
		for _, p := range named {
			affected[p] = true
		}
	}); err != nil {
		return false, err
	}
	// The persons whose links or activity may have moved: the group's
	// contacts before and after (a role added and deleted between two reads
	// still names its contact).
	v.mu.RLock()
	for _, o := range fresh {
		if old := v.opps[o.ID]; old != nil {
			for _, p := range contacts(old) {
				affected[p] = true
			}
		}
	}
	v.mu.RUnlock()
	for _, p := range ch.People {
		affected[p] = true
	}
	who := make([]string, 0, len(affected))
	for p := range affected {
		who = append(who, p)
	}
	lasts, err := v.r.LastActivity(ctx, who)
	if err != nil {
		return false, err
	}
	// The people whose activity was written (those the entries list, or,
	// for entries of earlier versions, anyone the groups may have moved),
	// and from when on: their logs from then on are read again.
	from := make(map[string]int64, len(ch.People))
	for i, p := range ch.People {
		from[p] = ch.Since[i]
	}
	if ch.Unlisted {
		for _, p := range who {
			from[p] = math.MinInt64
		}
	}
	wrote := make([]string, 0, len(from))
	since := make([]int64, 0, len(from))
	for p, t := range from {
		wrote, since = append(wrote, p), append(since, t)
	}
	read, err := v.readActivityFrom(ctx, wrote, since)
	if err != nil {
		return false, err
	}
	// Only this goroutine writes the logs: merge them outside the lock.
	logs := make([]string, len(wrote))
	v.mu.RLock()
	for i, p := range wrote {
		if e := v.persons[p]; e != nil {
			logs[i] = e.acts
		}
	}
	v.mu.RUnlock()
	for i := range wrote {
		logs[i] = mergeActivity(logs[i], since[i], read[i])
	}
	indexed, err := v.r.PeopleCount(ctx)
	if err != nil {
		return false, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, o := range fresh {
		old := v.opps[o.ID]
		v.opps[o.ID] = o
		for _, p := range union(old, o) {
			v.relink(p, old, o)
		}
	}
	for i, p := range who {
		if lasts[i] > 0 {
			v.setLast(v.entry(p), lasts[i])
		}
	}
	for i, p := range wrote {
		v.entry(p).acts = logs[i]
	}
	if int(indexed) > v.known {
		v.peopleDue = true
	}
	v.lastID = ch.Last
	return false, nil
}

func union(a, b *filters.Opportunity) []string {
	var out []string
	if a != nil {
		out = contacts(a)
	}
	for _, p := range contacts(b) {
		dup := false
		for _, q := range out {
			if q == p {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, p)
		}
	}
	return out
}

// relink replaces old by o in person p's list (copy on write). Callers hold
// the write lock.
func (v *View) relink(p string, old, o *filters.Opportunity) {
	e := v.entry(p)
	cur := e.opps
	next := make([]*filters.Opportunity, 0, len(cur)+1)
	for _, x := range cur {
		if x != old && x.ID != o.ID {
			next = append(next, x)
		}
	}
	var buf [4]string
	if slices.Contains(o.AppendContacts(buf[:0]), p) {
		next = append(next, o)
	}
	e.opps = next
	e.totals = filters.TotalsOf(p, next)
}

// universe returns the people of the people index ordered by id (rebuilt
// when people were added).
func (v *View) universe() []*personEntry {
	v.mu.RLock()
	u := v.sorted
	v.mu.RUnlock()
	if u != nil {
		return u
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sorted == nil {
		list := make([]*personEntry, 0, len(v.persons))
		for _, e := range v.persons {
			if e.last > 0 {
				list = append(list, e)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
		v.sorted = list
	}
	return v.sorted
}

// lookup returns an opportunity of the view.
func (v *View) lookup(id string) (*filters.Opportunity, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	o, ok := v.opps[id]
	return o, ok && (o.Known || o.RoleCount() > 0)
}

// Position returns the id of the last changes-stream entry the view applied
// ("0-0" before any), for tests and diagnostics.
func (v *View) Position() string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lastID
}

// People returns how many people of the people index the view knows.
func (v *View) People() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.known
}
