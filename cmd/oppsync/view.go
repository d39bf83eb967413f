package main

import (
	"context"
	"sync"

	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/view"
)

// lazyView starts the in-memory view of the replica on the first filter
// query, so an instance that only consumes never pays for following every
// change. Until the view has loaded, queries answer "not ready" (503) and
// the readiness check reports it; a query waits for the load within its
// deadline. Record lookups read Redis directly.
type lazyView struct {
	view  *view.View
	spawn func(run func(context.Context) error) bool
	once  sync.Once
	began chan struct{} // closed when the first query asked for the view

	loadOnce sync.Once
	loaded   chan struct{} // closed after the first load: queries answer
	stopOnce sync.Once
	stopped  chan struct{} // closed when the view ended, or could not start
}

// newLazyView returns the lazy view of the replica. spawn runs the view's
// Run as one of the service's actors; it returns false when the service is
// already stopping.
func newLazyView(r *replica.Replica, cfg view.Config, spawn func(run func(context.Context) error) bool) (*lazyView, error) {
	l := &lazyView{spawn: spawn, began: make(chan struct{}), loaded: make(chan struct{}), stopped: make(chan struct{})}
	onLoad := cfg.OnLoad
	cfg.OnLoad = func() {
		l.loadOnce.Do(func() { close(l.loaded) })
		if onLoad != nil {
			onLoad()
		}
	}
	v, err := view.New(r, cfg)
	if err != nil {
		return nil, err
	}
	l.view = v
	return l, nil
}

func (l *lazyView) start() {
	close(l.began)
	stop := func() { l.stopOnce.Do(func() { close(l.stopped) }) }
	if !l.spawn(func(ctx context.Context) error { defer stop(); return l.view.Run(ctx) }) {
		stop()
	}
}

func (l *lazyView) started() bool {
	select {
	case <-l.began:
		return true
	default:
		return false
	}
}

// Query starts the view if needed and waits for it to load, within the
// request's deadline, then answers from it. A view that is not loaded
// (the deadline passed, or the service is stopping) answers "still loading".
func (l *lazyView) Query(ctx context.Context, q *filters.Query) ([]string, string, error) {
	l.once.Do(l.start)
	select {
	case <-l.loaded:
	case <-l.stopped:
	case <-ctx.Done():
	}
	return l.view.Query(ctx, q)
}

func (l *lazyView) Catalog(ctx context.Context) (*filters.Catalog, error) {
	return l.view.Catalog(ctx)
}

func (l *lazyView) Opportunity(ctx context.Context, id string) (*filters.Opportunity, bool, error) {
	return l.view.Opportunity(ctx, id)
}

func (l *lazyView) PersonOpportunities(ctx context.Context, personID string) ([]*filters.Opportunity, bool, error) {
	return l.view.PersonOpportunities(ctx, personID)
}

// Ready is the "view" readiness check: fine while the view is not wanted.
func (l *lazyView) Ready(ctx context.Context) error {
	if !l.started() {
		return nil
	}
	return l.view.Ready(ctx)
}
