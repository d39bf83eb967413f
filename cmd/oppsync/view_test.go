package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/view"
)

// query runs l.Query without a deadline and fails the test if it does not
// return: a query must not outwait a view that loaded or stopped.
func query(t *testing.T, l *lazyView) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, _, err := l.Query(context.Background(), &filters.Query{}); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the query still waits for the view")
		return nil
	}
}

func TestLazyViewQueryWaitsForLoadOrStop(t *testing.T) {
	t.Run("loads", func(t *testing.T) {
		rdb := testenv.NewRedis(t)
		store, err := state.New(state.Config{Org: testenv.UniqueName(t, "org")}, rdb)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		g := newRunGroup(ctx, "view")
		l, err := newLazyView(store.Replica(), view.Config{}, func(run func(context.Context) error) bool { return g.spawn(0, "view", run) })
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Ready(ctx); err != nil {
			t.Fatalf("ready before the first query: %v", err)
		}
		if err := query(t, l); err != nil {
			t.Fatalf("query after the load: %v", err)
		}
		stop()
		if err := g.wait(time.Minute, time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("service stopping", func(t *testing.T) {
		// No Redis is needed: the view never runs.
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		defer rdb.Close()
		store, err := state.New(state.Config{Org: "org"}, rdb)
		if err != nil {
			t.Fatal(err)
		}
		l, err := newLazyView(store.Replica(), view.Config{}, func(func(context.Context) error) bool { return false })
		if err != nil {
			t.Fatal(err)
		}
		if err := query(t, l); !errors.Is(err, view.ErrNotReady) {
			t.Fatalf("query while stopping: %v, want %v", err, view.ErrNotReady)
		}
	})
}
