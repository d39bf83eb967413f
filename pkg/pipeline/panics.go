package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// Panics are contained here, and only here: a panic while handling one
// message (a bug that the message's content triggers) must not take the
// consumer down, nor make it read the same message and panic again after
// every restart. The boundary is the batch: HandleBatch, BeginBatch and
// Pending.Wait never panic for what one message holds. A message whose
// decoding panics is dead-lettered (stage decode); a batch whose applying
// panics is applied again one message at a time, and the message that
// panics alone is dead-lettered in its place (stage apply), the others
// being applied as usual, in order. Both use reason internal_error, log the
// stack at error level and count oppsync_panics_total{stage}.

// Panic stages: the closed label set of oppsync_panics_total.
const (
	stageDecode = "decode"
	stageApply  = "apply"
)

// panicked is a recovered panic.
type panicked struct {
	what  string // the panic, without record data
	stack []byte
}

// safely runs fn and returns the panic it raised, if any.
func safely(fn func()) (pv *panicked) {
	defer func() {
		if r := recover(); r != nil {
			pv = recovered(r)
		}
	}()
	fn()
	return nil
}

// recovered describes a recovered value: a runtime error's text (an index,
// a nil dereference), else only its type, since a value made by code may
// hold record data. A panic that a goroutine of the state store raised
// keeps that goroutine's stack.
func recovered(r any) *panicked {
	stack := debug.Stack()
	var gp *state.GoPanic
	if err, ok := r.(error); ok && errors.As(err, &gp) {
		r, stack = gp.Value, gp.Stack
	}
	if re, ok := r.(runtime.Error); ok {
		return &panicked{what: re.Error(), stack: stack}
	}
	return &panicked{what: fmt.Sprintf("a value of type %T", r), stack: stack}
}

// contain logs and counts a panic that handling m raised at stage, and
// returns the item that dead-letters m in its place.
func (p *Pipeline) contain(stage string, m *cdc.Message, pv *panicked) state.Item {
	p.m.panics.WithLabelValues(stage).Inc()
	p.log.Error().Str("stage", stage).Str("topic", m.Topic).Int("partition", m.Partition).Int64("offset", m.Offset).
		Str("panic", pv.what).Str("stack", string(pv.stack)).Msg("panic while handling a message: dead-lettering it")
	return state.Item{Msg: m, DeadLetter: &state.DeadLetter{
		Stage: stage, Reason: cdc.ReasonInternalError, Error: "panic while handling the message (" + stage + "): " + pv.what,
	}}
}

// decodeSafely is decode with its panics contained.
func (p *Pipeline) decodeSafely(ctx context.Context, m *cdc.Message) (state.Item, error) {
	var it state.Item
	var err error
	if pv := safely(func() { it, err = p.decode(ctx, m) }); pv != nil {
		return p.contain(stageDecode, m, pv), nil
	}
	return it, err
}

// isolate applies items one at a time after applying them together
// panicked (pv): each that panics again alone is dead-lettered in its
// place. Items already applied are redelivered ones for the store, so the
// order and exactly-once hold. It returns nil once all are durable, with
// HandleBatch's contract.
func (p *Pipeline) isolate(ctx context.Context, items []state.Item, pv *panicked, start time.Time) error {
	culprits := 0
	for i := range items {
		one := items[i : i+1]
		var res state.BatchResult
		var err error
		if again := safely(func() { res, err = p.apply(ctx, one) }); again != nil {
			culprits++
			one = []state.Item{p.contain(stageApply, items[i].Msg, again)}
			if again := safely(func() { res, err = p.apply(ctx, one) }); again != nil {
				return fmt.Errorf("dead-lettering %s/%d offset %d after a panic: panicked too: %s",
					items[i].Msg.Topic, items[i].Msg.Partition, items[i].Msg.Offset, again.what)
			}
		}
		if err != nil {
			return err
		}
		p.done(one, res, start)
	}
	if culprits == 0 {
		// Not one message panics alone: count and log the batch's panic,
		// with nothing to dead-letter.
		p.m.panics.WithLabelValues(stageApply).Inc()
		m := items[0].Msg
		p.log.Error().Str("stage", stageApply).Str("topic", m.Topic).Int("partition", m.Partition).
			Int64("first_offset", m.Offset).Int64("last_offset", items[len(items)-1].Msg.Offset).
			Str("panic", pv.what).Str("stack", string(pv.stack)).
			Msg("panic while applying a batch, not again one message at a time: nothing dead-lettered")
	}
	return nil
}
