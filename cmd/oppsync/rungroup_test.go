package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitErr waits for g.wait's result, failing the test if it never comes.
func waitErr(t *testing.T, g *runGroup, timeout, grace time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- g.wait(timeout, grace) }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the run group did not stop")
		return nil
	}
}

// Stopping cancels the stages in order and waits for each before the next:
// every actor sees its cancellation only after every actor of the earlier
// stages has returned.
func TestRunGroupStopsStagesInOrder(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	g := newRunGroup(ctx, "a", "b", "c")
	var mu sync.Mutex
	var events []string
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, s)
	}
	for stage, name := range []string{"a", "b", "c"} {
		for i := 0; i < 2; i++ {
			if !g.spawn(stage, name, func(ctx context.Context) error {
				<-ctx.Done()
				record("cancel " + name)
				record("return " + name)
				return nil
			}) {
				t.Fatalf("stage %s refused an actor before the stop", name)
			}
		}
	}
	stop()
	if err := waitErr(t, g, time.Minute, time.Second); err != nil {
		t.Fatal(err)
	}
	// Each stage's events come after all of the previous stage's.
	rank := map[string]int{"a": 0, "b": 1, "c": 2}
	last := 0
	for _, e := range events {
		r := rank[e[strings.IndexByte(e, ' ')+1:]]
		if r < last {
			t.Fatalf("stages stopped out of order: %v", events)
		}
		last = r
	}
	if len(events) != 12 {
		t.Fatalf("events %v", events)
	}
	if g.spawn(0, "late", func(context.Context) error { return nil }) {
		t.Fatal("a stopped stage started an actor")
	}
}

func TestRunGroupActorEnds(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		ret  error
		want string
	}{
		{"fails", boom, "boom"},
		{"returns nil before the stop", nil, "worker stopped unexpectedly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newRunGroup(context.Background(), "first", "second")
			stopped := make(chan struct{})
			g.spawn(0, "other", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
			g.spawn(1, "worker", func(context.Context) error { return tt.ret })
			err := waitErr(t, g, time.Minute, time.Second)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			select {
			case <-stopped:
			default:
				t.Fatal("the other actors were not stopped")
			}
		})
	}
}

// An actor that overruns shutdown_timeout makes the stop fail with a timeout,
// but the later stages are still stopped and waited for.
func TestRunGroupTimeoutStillStopsLaterStages(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	g := newRunGroup(ctx, "stuck", "after")
	release := make(chan struct{})
	defer close(release)
	g.spawn(0, "stuck", func(context.Context) error { <-release; return nil })
	stopped := make(chan struct{})
	g.spawn(1, "after", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
	stop()
	err := waitErr(t, g, time.Millisecond, 50*time.Millisecond)
	if err == nil || !strings.HasPrefix(err.Error(), "shutdown timed out after 1ms (stuck") {
		t.Fatalf("error %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("the stage after the stuck one was not stopped")
	}
}
