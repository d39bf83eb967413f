package main

import (
	"context"
	"sync"
	"time"

	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/state"
)

// lazyView starts the in-memory view of the replica on the first filter
// query, so an instance that only consumes never pays for following every
// change. Until the view has loaded, queries answer "not ready" (503) and
// the readiness check reports it; a query waits for the load within its
// deadline. Record lookups read Redis directly.
type lazyView struct {
	view  *state.View
	start func()
	once  sync.Once
	began chan struct{}
}

func newLazyView(ctx context.Context, v *state.View, run func(context.Context)) *lazyView {
	l := &lazyView{view: v, began: make(chan struct{})}
	l.start = func() {
		close(l.began)
		go run(ctx)
	}
	return l
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
// request's deadline, then answers from it.
func (l *lazyView) Query(ctx context.Context, q *filters.Query) ([]string, string, error) {
	l.once.Do(l.start)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for l.view.Ready(ctx) != nil {
		select {
		case <-ctx.Done():
			return l.view.Query(ctx, q) // reports why: still loading
		case <-tick.C:
		}
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
