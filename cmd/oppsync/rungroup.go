package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// runGroup runs the service's long-lived actors and stops them in stages,
// after Prometheus's run group (oklog/run) but with an order: each actor
// belongs to a stage, and stopping cancels the stages one at a time, each
// waited for before the next is cancelled, so an actor always stops before
// the actors and clients it depends on. An actor is a Run(ctx) error that
// returns nil once its context is cancelled; one that returns before its
// stage is stopped (with an error, or nil: "stopped unexpectedly") fails the
// group, which then stops everything in order and reports that error.
type runGroup struct {
	// ctx ends when the parent context ends or an actor fails: the signal to
	// stop.
	ctx    context.Context
	cancel context.CancelFunc
	stages []*runStage

	mu  sync.Mutex
	err error // the first failure
}

type runStage struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool // cancelled: no actor may start in it any more
	wg     sync.WaitGroup
}

// newRunGroup returns a group with the named stages, in stop order.
func newRunGroup(parent context.Context, stages ...string) *runGroup {
	g := &runGroup{}
	g.ctx, g.cancel = context.WithCancel(parent)
	for _, name := range stages {
		// A stage's context is not derived from the parent's: the group
		// cancels it, in order, when stopping.
		ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
		g.stages = append(g.stages, &runStage{name: name, ctx: ctx, cancel: cancel})
	}
	return g
}

// fail records err as the group's error (the first one wins) and starts the
// stop.
func (g *runGroup) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	g.cancel()
}

// failed returns the first actor failure, if any.
func (g *runGroup) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// spawn starts the actor named name in stage. It returns false, without
// starting it, when that stage has already been stopped.
func (g *runGroup) spawn(stage int, name string, run func(context.Context) error) bool {
	st := g.stages[stage]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		err := run(st.ctx)
		if err == nil && st.ctx.Err() == nil {
			err = fmt.Errorf("%s stopped unexpectedly", name)
		}
		if err != nil {
			g.fail(err)
		}
	}()
	return true
}

// wait blocks until the group's context ends (the parent's ended or an
// actor failed), then stops the stages in order. The whole stop is bounded:
// the stages are waited for until timeout has passed since the stop began;
// past it, the stages still to stop share one more grace, so that after a
// drain that overran the later stages are still cancelled and given a
// moment to return. wait returns the first actor failure, else a timeout
// error naming the stages that did not stop in time, else nil.
func (g *runGroup) wait(timeout, grace time.Duration) error {
	<-g.ctx.Done()
	start := time.Now()
	deadline, last := start.Add(timeout), start.Add(timeout+grace)
	var late []string
	for _, st := range g.stages {
		st.mu.Lock()
		st.closed = true
		st.cancel()
		st.mu.Unlock()
		done := make(chan struct{})
		go func() { st.wg.Wait(); close(done) }()
		bound := time.Until(deadline)
		if bound <= 0 {
			bound = time.Until(last)
		}
		t := time.NewTimer(max(bound, 0))
		select {
		case <-done:
		case <-t.C:
			select {
			case <-done:
			default:
				late = append(late, st.name)
			}
		}
		t.Stop()
	}
	if err := g.failed(); err != nil {
		return err
	}
	if len(late) > 0 {
		return fmt.Errorf("shutdown timed out after %s (%s still stopping)", timeout, strings.Join(late, ", "))
	}
	return nil
}
