package state

import (
	"context"
	"errors"
	"sync"
)

// Applying is a batch begun ahead of the previous batch of its partition:
// built against the state that batch will leave, its script calls queued
// behind that batch's. See Begin.
type Applying struct {
	s     *Store
	ctx   context.Context
	field string
	items []Item

	prev *Applying // the batch begun before it, until it is finished
	sync bool      // not begun ahead: Wait applies it with ApplyBatch

	// Set by Begin for a batch begun ahead.
	p      *plan
	txs    []*tx
	endPos string // the position its last call stores

	done     chan struct{} // closed by its executor; then ok says whether
	ok       bool          // every call applied
	panicked *GoPanic      // or the executor panicked (Wait raises it again)

	// Set by Wait.
	finished bool
	fellBack bool // the calls did not all apply: it was applied again
	waitErr  error
}

// Sync reports a batch Begin did not begin ahead: Wait applies it, and it
// should be waited for before the next batch is begun.
func (a *Applying) Sync() bool { return a.sync }

// chains remembers, per partition, the last batch begun.
type chains struct {
	mu sync.Mutex
	m  map[string]*Applying
}

func newChains() chains { return chains{m: map[string]*Applying{}} }

func (c *chains) swap(field string, a *Applying) *Applying {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.m[field]
	if a == nil {
		delete(c.m, field)
	} else {
		c.m[field] = a
	}
	return last
}

// Begin starts applying a batch of one partition before the previous batch
// of that partition is durable, so that Redis runs one batch while the next
// is built: it plans and builds the batch against the state the previous
// batch will leave (the position it will store, the groups it wrote, the
// contact roles it taught) and queues its script calls behind that batch's.
// Nothing of it is written unless every call of the previous batch applied;
// a call that finds the position or a group moved stops it, as in
// ApplyBatch.
//
// Wait must be called for every Begin, in order, and the batch before must
// have been waited for before the batch after this one is begun; Begin may
// instead decide to apply the batch at Wait (the first batch of a
// partition, after a fallback). Abandon replaces Wait when a batch before
// failed.
func (s *Store) Begin(ctx context.Context, items []Item) *Applying {
	a := &Applying{s: s, ctx: ctx, items: items, done: make(chan struct{}), sync: true}
	if len(items) == 0 {
		close(a.done)
		return a
	}
	a.field = posField(items[0].Msg.Topic, items[0].Msg.Partition)
	a.prev = s.chains.swap(a.field, a)
	begun := false
	defer func() {
		if !begun { // also when planning or building panicked: the next batch does not build on it
			a.sync = true
			close(a.done)
		}
	}()
	pos, before, after, ok := s.aheadOf(a.prev, a.field)
	ok = ok && s.aheadAllowed(ctx, before)
	var p *plan
	if ok {
		var err error
		p, err = s.planAfter(ctx, items, before)
		ok = err == nil // a read failed: ApplyBatch will retry it
	}
	if !ok {
		return a
	}
	txs, endPos := s.buildSlices(p, a.field, pos, items, nil)
	a.sync, a.p, a.txs, a.endPos = false, p, txs, endPos
	// Its groups, as its calls will leave them, stay with it: the next
	// batch takes those it needs, Wait caches the others once durable.
	begun = true
	go a.execute(after)
	return a
}

// aheadOf says what a batch following last can be built on: the position
// it starts from, the plan of a batch still in flight (to take its groups
// and contact roles from), and that batch (to run after); ok is false when
// it must be applied at its Wait instead.
func (s *Store) aheadOf(last *Applying, field string) (pos string, before *plan, after *Applying, ok bool) {
	switch {
	case last == nil || s.cfg.CacheGroups < 0:
		// No known position to build on (nor a cache to carry the groups).
		return "", nil, nil, false
	case last.finished:
		pos, ok = s.expect.get(field)
		return pos, nil, nil, ok && last.waitErr == nil
	case last.sync || last.prev != nil && last.prev.finished && (last.prev.fellBack || last.prev.waitErr != nil):
		// The batch before is applied at its Wait, or will find that the
		// one before it failed: build on nothing of it.
		return "", nil, nil, false
	}
	return last.endPos, last.p, last, true
}

// execute sends the calls once the batch before (after, nil when it is
// durable) ran all of its, in one pipeline: Redis runs them back to back
// while the rest is still being written. A call that does not apply makes
// the ones after it refuse too (they expect the position it would have
// stored), and the batch after this one sends nothing.
func (a *Applying) execute(after *Applying) {
	defer close(a.done)
	defer func() { a.panicked = caught(recover()) }()
	if after != nil {
		if <-after.done; !after.ok {
			return
		}
	}
	if testHookBeforeSend != nil {
		testHookBeforeSend()
	}
	for _, c := range a.s.send(a.ctx, a.txs) {
		if ok, err := applied(c); err != nil || !ok {
			return
		}
	}
	a.ok = true
}

// testHookBeforeSend, set by tests, holds a batch's calls so that the next
// batch is built before they run.
var testHookBeforeSend func()

// Wait returns once the batch is durable in Redis, with ApplyBatch's
// contract. When its calls did not all apply (a concurrent writer, Redis
// lost writes or was unreachable) it applies the batch again with
// ApplyBatch, from what Redis holds.
func (a *Applying) Wait() (BatchResult, error) {
	<-a.done
	returned := false
	defer func() {
		if !returned { // it panicked: the batch after it builds on nothing of it
			a.waitErr = errPanicked
		}
		a.finished = true
		a.prev = nil
	}()
	if a.panicked != nil {
		panic(a.panicked)
	}
	res, err := a.finish()
	returned = true
	return res, err
}

// errPanicked is the outcome of a Wait that panicked.
var errPanicked = errors.New("applying the batch panicked")

// finish is Wait once the calls ran and did not panic.
func (a *Applying) finish() (BatchResult, error) {
	s := a.s
	if !a.sync && a.ok {
		var res BatchResult
		for _, t := range a.txs {
			res.add(t.counts)
		}
		res.Duplicates += a.p.duplicates
		res.Unresolved += a.p.unresolved
		if a.endPos != "" {
			s.expect.set(a.field, a.endPos)
		}
		s.cache.put(a.p.groups)
		return res, nil
	}
	// Its groups (and those the batch after it took) are speculative:
	// they are dropped, and the batch is applied from what Redis holds.
	a.fellBack = !a.sync
	res, err := s.ApplyBatch(a.ctx, a.items)
	a.waitErr = err
	if a.fellBack {
		res.Conflicts++
	}
	return res, err
}

// Abandon gives up a begun batch without applying it (the batch before it
// failed): it returns once none of its calls can still be sent. Its calls
// are never sent when the batch before did not apply, so nothing of it is
// written.
func (a *Applying) Abandon() {
	<-a.done
	a.finished = true
	a.waitErr = context.Canceled
	a.prev = nil
	a.s.chains.swap(a.field, nil)
}
