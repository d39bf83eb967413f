package state

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
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

	// Set by its executor before done is closed.
	done chan struct{}
	ok   bool // every call applied
	cmds []*redis.Cmd

	// Set by Wait.
	finished   bool
	fellBack   bool // the calls did not all apply: it was applied again
	waitResult BatchResult
	waitErr    error
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
	a := &Applying{s: s, ctx: ctx, items: items, done: make(chan struct{})}
	if len(items) == 0 {
		a.sync = true
		close(a.done)
		return a
	}
	a.field = posField(items[0].Msg.Topic, items[0].Msg.Partition)
	last := s.chains.swap(a.field, a)
	a.prev = last

	var pos string
	var before *plan
	prevDone, prevOK := closedChan, func() bool { return true }
	switch {
	case last == nil || s.cfg.CacheGroups < 0:
		// No known position to build on (nor a cache to carry the groups).
		a.sync = true
	case last.finished:
		if last.waitErr != nil {
			a.sync = true
			break
		}
		exp, ok := s.expect.get(a.field)
		if !ok {
			a.sync = true
			break
		}
		pos = exp
	case last.sync || last.prev != nil && last.prev.finished && (last.prev.fellBack || last.prev.waitErr != nil):
		// The batch before is applied at its Wait, or will find that the
		// one before it failed: build on nothing of it.
		a.sync = true
	default:
		pos, before = last.endPos, last.p
		prevDone, prevOK = last.done, func() bool { return last.ok }
	}
	if a.sync {
		close(a.done)
		return a
	}

	p, err := s.planAfter(ctx, items, before)
	if err != nil {
		a.sync = true
		close(a.done)
		return a
	}
	a.p = p
	changesKey := s.k.stream(StreamChanges)
	for from, to := 0, 0; from < len(items); from = to {
		to = min(from+sliceItems, len(items))
		ts := s.build(p, a.field, pos, items[from:to])
		for _, t := range ts {
			if t.posNew != "" {
				pos = t.posNew
			}
			t.args(changesKey)
		}
		a.txs = append(a.txs, ts...)
	}
	a.endPos = pos
	// Its groups, as its calls will leave them, stay with it: the next
	// batch takes those it needs, Wait caches the others once durable.
	go a.execute(prevDone, prevOK)
	return a
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// execute sends the calls once the batch before ran all of its, in one
// pipeline: Redis runs them back to back while the rest is still being
// written (a round trip per slice left Redis idle a third of the time).
// A call that does not apply makes the ones after it refuse too (they
// expect the position it would have stored).
func (a *Applying) execute(prevDone <-chan struct{}, prevOK func() bool) {
	defer close(a.done)
	<-prevDone
	if !prevOK() {
		return
	}
	changesKey := a.s.k.stream(StreamChanges)
	pipe := a.s.rdb.Pipeline()
	a.cmds = make([]*redis.Cmd, len(a.txs))
	for i, t := range a.txs {
		a.cmds[i] = t.run(a.ctx, pipe, changesKey)
	}
	_, _ = pipe.Exec(a.ctx)
	for _, c := range a.cmds {
		if n, err := c.Int(); err != nil || n != scriptApplied {
			return
		}
	}
	a.ok = true
}

// Wait returns once the batch is durable in Redis, with ApplyBatch's
// contract. When its calls did not all apply (a concurrent writer, Redis
// lost writes or was unreachable) it applies the batch again with
// ApplyBatch, from what Redis holds.
func (a *Applying) Wait() (BatchResult, error) {
	s := a.s
	<-a.done
	defer func() {
		a.finished = true
		a.prev = nil
	}()
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
		a.waitResult = res
		return res, nil
	}
	if !a.sync {
		// Its groups (and those the batch after it took) are speculative:
		// they are dropped, and the batch is applied from what Redis holds.
		a.fellBack = true
		for _, c := range a.cmds {
			if c.Err() != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				if err := s.Init(a.ctx); err != nil {
					a.waitErr = err
					return BatchResult{}, err
				}
			}
		}
	}
	a.waitResult, a.waitErr = s.ApplyBatch(a.ctx, a.items)
	if a.fellBack {
		a.waitResult.Conflicts++
	}
	return a.waitResult, a.waitErr
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
