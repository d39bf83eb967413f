package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		want     []time.Duration // successive Next values
	}{
		{"doubles up to the cap", 100 * ms, time.Second, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"cap reached exactly", 50 * ms, 200 * ms, []time.Duration{50 * ms, 100 * ms, 200 * ms, 200 * ms}},
		{"min above max: min first, then the cap", 50 * ms, 10 * ms, []time.Duration{50 * ms, 10 * ms, 10 * ms}},
		{"min equals max", time.Second, time.Second, []time.Duration{time.Second, time.Second}},
		{"zero value", 0, 0, []time.Duration{0, 0, 0}},
		{"zero min stays zero", 0, time.Second, []time.Duration{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Backoff{Min: tc.min, Max: tc.max}
			for i, w := range tc.want {
				if got := b.Next(); got != w {
					t.Fatalf("Next #%d = %s, want %s", i+1, got, w)
				}
			}
			b.Reset()
			if got := b.Next(); got != tc.min {
				t.Fatalf("Next after Reset = %s, want %s", got, tc.min)
			}
		})
	}
}

func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cancel  bool
		wantErr error
	}{
		{"full wait", false, nil},
		{"cancelled context", true, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			min := time.Millisecond
			if tc.cancel {
				cancel()
				min = time.Hour // would block the test if the context were ignored
			}
			b := Backoff{Min: min, Max: time.Hour}
			if err := b.Wait(ctx); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Wait = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
