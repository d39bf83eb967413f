package view

import (
	"context"
	"runtime"
	"sort"
	"sync"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
)

// queryChunk is how many people one evaluation step takes: the unit of ctx
// checks.
const queryChunk = 1024

// Query returns one page of the people matching q, in id order, and the
// cursor of the next page ("" after the last). The people are those with
// activity within activity.retention. It honours ctx between steps.
func (v *View) Query(ctx context.Context, q *filters.Query) ([]string, string, error) {
	if !v.loaded.Load() {
		return nil, "", ErrNotReady
	}
	after := q.After
	limit := q.Limit
	if limit <= 0 {
		limit = filters.DefaultLimit
	}
	ids := v.universe()
	start := 0
	if after != "" {
		start = sort.Search(len(ids), func(i int) bool { return ids[i].id > after })
	}
	cutoff := v.cfg.Now().Add(-v.cfg.ActivityRetention).UnixMilli()
	since, until, needActivity := q.ActivityWindow()
	workers := max(1, min(runtime.GOMAXPROCS(0), 4))
	bufs := make([]evalBuf, workers)
	found := make([][]string, workers)
	errs := make([]error, workers)
	ev := evaluation{v: v, q: q, cutoff: cutoff, since: since, until: until, activity: needActivity, kinds: kindMask(q), lookup: v.lookup}
	out := make([]string, 0, min(limit+1, 1024))
	// Each step evaluates up to workers chunks in parallel; the results are
	// taken in id order, so a page stops exactly after limit+1 matches.
	for i := start; i < len(ids) && len(out) <= limit; i += queryChunk * workers {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			lo := i + w*queryChunk
			found[w], errs[w] = found[w][:0], nil
			if lo >= len(ids) {
				continue
			}
			hi := min(lo+queryChunk, len(ids))
			wg.Add(1)
			go func(w int, chunk []*personEntry) {
				defer wg.Done()
				found[w], errs[w] = ev.chunk(ctx, chunk, &bufs[w], found[w])
			}(w, ids[lo:hi])
		}
		wg.Wait()
		for w := 0; w < workers && len(out) <= limit; w++ {
			if errs[w] != nil {
				return nil, "", errs[w]
			}
			for _, id := range found[w] {
				out = append(out, id)
				if len(out) > limit {
					break
				}
			}
		}
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = filters.EncodeCursor(out[limit-1])
	}
	return out, next, nil
}

var kindByName = map[string]cdc.Kind{
	"string": cdc.KindString, "number": cdc.KindNumber, "boolean": cdc.KindBool,
	"date": cdc.KindDate, "datetime": cdc.KindDateTime, "null": cdc.KindNull,
}

// Catalog returns the constraint catalog: the fields of every schema seen
// so far, cached for CatalogTTL.
func (v *View) Catalog(ctx context.Context) (*filters.Catalog, error) {
	v.catMu.Lock()
	defer v.catMu.Unlock()
	now := v.cfg.Now()
	if v.cat != nil && now.Sub(v.catAt) < v.cfg.CatalogTTL && now.Sub(v.catAt) >= 0 {
		return v.cat, nil
	}
	cat, err := ReadCatalog(ctx, v.r)
	if err != nil {
		return nil, err
	}
	v.cat, v.catAt = cat, now
	return cat, nil
}

// ReadCatalog reads the constraint catalog of the schemas seen, uncached.
func ReadCatalog(ctx context.Context, r *replica.Replica) (*filters.Catalog, error) {
	fields, err := r.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]filters.Field, len(fields))
	for i, f := range fields {
		list[i] = filters.Field{Entity: f.Entity, Name: f.Name, Kind: kindByName[f.Type], SalesforceType: f.SalesforceType}
	}
	return filters.NewCatalog(list), nil
}

// Opportunity reads one opportunity from Redis; ok is false when the id was
// never seen. A deleted opportunity is returned with Deleted set.
func (v *View) Opportunity(ctx context.Context, id string) (*filters.Opportunity, bool, error) {
	if !cdc.KeySafeID(id) { // never stored, and "<id>:roles" would read another key
		return nil, false, nil
	}
	g, ok, err := v.r.LoadGroup(ctx, id)
	if err != nil || !ok {
		return nil, false, err
	}
	return filters.FromGroup(g, v.cfg.Currency), true, nil
}

// PersonOpportunities reads, from Redis, the opportunities a person holds a
// live role on, excluding deleted ones, ordered by id; ok is false when the
// person was never seen.
func (v *View) PersonOpportunities(ctx context.Context, personID string) ([]*filters.Opportunity, bool, error) {
	if !cdc.KeySafeID(personID) {
		return nil, false, nil
	}
	ids, seen, err := v.r.PersonOpportunityIDs(ctx, personID)
	if err != nil || !seen {
		return nil, false, err
	}
	sort.Strings(ids)
	groups, err := v.r.LoadGroups(ctx, ids)
	if err != nil {
		return nil, false, err
	}
	out := make([]*filters.Opportunity, 0, len(ids))
	for _, id := range ids {
		o := filters.FromGroup(groups[id].Group, v.cfg.Currency)
		if (o.Known && o.Deleted) || len(filters.PersonRoles(o, personID)) == 0 {
			continue
		}
		out = append(out, o)
	}
	return out, true, nil
}

// evaluation is one query's fixed inputs.
type evaluation struct {
	v            *View
	q            *filters.Query
	cutoff       int64
	since, until int64
	activity     bool
	kinds        uint8 // the activity kinds the query reads
	lookup       func(string) (*filters.Opportunity, bool)
}

// evalBuf is one worker's reusable memory.
type evalBuf struct {
	batch  []filters.Person
	totals []filters.Totals
	logs   []string
	acts   []filters.Activity
}

// chunk evaluates the query for one chunk of people and appends the ids
// that match to out.
func (e *evaluation) chunk(ctx context.Context, chunk []*personEntry, b *evalBuf, out []string) ([]string, error) {
	if b.totals == nil {
		b.totals = make([]filters.Totals, queryChunk)
		b.batch = make([]filters.Person, 0, queryChunk)
		b.logs = make([]string, queryChunk)
	}
	b.batch = b.batch[:0]
	e.v.mu.RLock()
	for _, p := range chunk {
		if p.last < e.cutoff {
			continue
		}
		n := len(b.batch)
		b.totals[n] = p.totals
		b.logs[n] = p.acts
		b.batch = append(b.batch, filters.Person{ID: p.id, Opportunities: p.opps, Lookup: e.lookup, Totals: &b.totals[n]})
	}
	e.v.mu.RUnlock()
	if e.activity {
		// Activity within the query's window and the retention, from the
		// index (logs are immutable: read outside the lock).
		b.acts = b.acts[:0]
		for j := range b.batch {
			from := len(b.acts)
			b.acts = decodeActivity(b.logs[j], e.since, e.until, e.cutoff, e.kinds, b.acts)
			b.batch[j].Activity = b.acts[from:len(b.acts):len(b.acts)]
		}
	}
	for j := range b.batch {
		if e.q.Match(&b.batch[j]) {
			out = append(out, b.batch[j].ID)
		}
	}
	return out, nil
}
