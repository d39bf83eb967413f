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
	pos, ok := s.aheadOf(a.prev, a.field)
	// Campaigns that read people see the batch before in this partition
	// through its plan (still in flight when it is not finished).
	var before *plan
	if ok && a.prev != nil && !a.prev.finished {
		before = a.prev.p
	}
	ok = ok && s.aheadAllowed(ctx, before)
	if !ok {
		return a
	}
	// The lane: batches of every partition share the groups in flight.
	// Each is built on the groups as the batches before it will leave
	// them, whatever their partition, and sends its calls once those
	// batches, and the one before it in its partition, applied.
	l := &s.lane
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trim()
	resetting := true
	defer func() {
		if resetting { // planning or building failed or panicked: the groups it touched are unknown
			l.reset()
		}
	}()
	p, err := s.planAfter(ctx, items, l, before)
	if err != nil { // a read failed: ApplyBatch will retry it
		return a
	}
	txs, endPos := s.buildSlices(p, a.field, pos, items, nil)
	resetting = false
	after := p.after
	if a.prev != nil && !a.prev.finished {
		after = append(after, a.prev)
	}
	for _, g := range p.groups {
		g.owner = a
	}
	a.sync, a.p, a.txs, a.endPos = false, p, txs, endPos
	begun = true
	go a.execute(after)
	return a
}

// aheadOf says from which position a batch following last (the batch
// of the same partition begun before it) can be built; ok is false when it
// must be applied at its Wait instead.
func (s *Store) aheadOf(last *Applying, field string) (pos string, ok bool) {
	switch {
	case s.cfg.CacheGroups < 0:
		// No cache to carry the groups.
		return "", false
	case last == nil:
		// The partition's first batch: from the position read when it was
		// assigned (Position), if it was.
		return s.expect.get(field)
	case last.finished:
		pos, ok = s.expect.get(field)
		return pos, ok && last.waitErr == nil
	case last.sync || last.prev != nil && last.prev.finished && (last.prev.fellBack || last.prev.waitErr != nil):
		// The batch before is applied at its Wait, or will find that the
		// one before it failed: build on nothing of it.
		return "", false
	}
	return last.endPos, true
}

// lane holds the groups of the batches begun ahead, of every partition,
// as their calls leave them (no other plan takes them), with the batch that
// last wrote each (its owner), and the contact roles they taught. A batch
// that touches a group another partition's batch has in flight builds on
// it, and runs after that batch, instead of reading a revision that is
// about to move.
type lane struct {
	mu      sync.Mutex
	groups  map[string]*loaded
	roleOpp map[string]string
	max     int
}

// reset forgets every group: what the lane holds may be what no call
// wrote.
func (l *lane) reset() {
	l.groups = nil
}

// forget drops groups another path of this process wrote.
func (l *lane) forget(ids map[string]*loaded) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range ids {
		delete(l.groups, id)
	}
}

// trim bounds the lane's groups: past max, it drops about a tenth of
// those no batch in flight wrote.
func (l *lane) trim() {
	if len(l.roleOpp) > l.max {
		l.roleOpp = nil
	}
	if len(l.groups) <= l.max {
		return
	}
	drop := len(l.groups) - l.max + l.max/10
	for id, g := range l.groups {
		if drop <= 0 {
			break
		}
		if g.owner == nil || g.owner.ran() {
			delete(l.groups, id)
			drop--
		}
	}
}

// take returns the lane's group id for plan p (the group stays the
// lane's). A group written by a batch whose calls did not all apply is
// forgotten; one written by a batch still in flight makes p run after it.
// A group that is not own (only a multi-record event keyed by another
// opportunity names it, see planAfter) is read again unless a batch in
// flight wrote it: another instance may own its partition and have moved
// it since.
func (l *lane) take(s *Store, p *plan, id string, own bool) (*loaded, bool) {
	if g, ok := l.groups[id]; ok {
		inFlight := g.owner != nil && !g.owner.ran()
		switch {
		case g.owner != nil && g.owner.ran() && !g.owner.ok, !own && !inFlight:
			delete(l.groups, id)
			return nil, false
		case inFlight:
			p.after = append(p.after, g.owner)
		}
		return g, true
	}
	if !own {
		return nil, false
	}
	if g, ok := s.cache.get(id); ok { // now the lane's
		l.keep(id, g)
		return g, true
	}
	return nil, false
}

func (l *lane) keep(id string, g *loaded) {
	if l.groups == nil {
		l.groups = map[string]*loaded{}
	}
	l.groups[id] = g
}

func (l *lane) learn(id, opp string) {
	if l.roleOpp == nil {
		l.roleOpp = map[string]string{}
	}
	l.roleOpp[id] = opp
}

// ran reports a batch whose calls ran (or will never be sent); ok then
// says whether they all applied.
func (a *Applying) ran() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// execute sends the calls once the batches it was built on (after) ran
// all of theirs, in one pipeline: Redis runs them back to back while the
// next batch is still being built. A call that does not apply makes the
// ones after it refuse too (they expect the position it would have
// stored), and the batches built on this one send nothing.
func (a *Applying) execute(after []*Applying) {
	defer close(a.done)
	defer func() { a.panicked = caught(recover()) }()
	for _, b := range after {
		if <-b.done; !b.ok {
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
		a.release()
	}()
	if a.panicked != nil {
		panic(a.panicked)
	}
	res, err := a.finish()
	returned = true
	return res, err
}

// release drops what a finished batch no longer needs: the lane's groups
// keep pointing at the batch that last wrote them (owner), which must not
// keep its messages and calls alive.
func (a *Applying) release() {
	a.prev, a.items, a.p, a.txs = nil, nil, nil, nil
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
		return res, nil // its groups stay with the lane
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
	a.release()
	a.s.chains.swap(a.field, nil)
}
