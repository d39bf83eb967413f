// Package backoff is the wait between the attempts of every retry loop of
// oppsync: capped exponential, without jitter (each loop retries against
// its own connection, so there is nothing to decorrelate). It does no I/O
// besides timers.
package backoff

import (
	"context"
	"time"
)

// Backoff yields Min, then twice the previous wait, capped at Max, until
// Reset. The zero value waits 0 every time. A Backoff is not safe for
// concurrent use: each retry loop keeps its own.
type Backoff struct {
	Min, Max time.Duration

	cur time.Duration
}

// Next returns the wait before the next attempt: Min the first time (even
// when Min exceeds Max), then min(2 × the previous wait, Max).
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(2*b.cur, b.Max)
	}
	return b.cur
}

// Reset makes the next wait Min again (after a success).
func (b *Backoff) Reset() { b.cur = 0 }

// Wait sleeps Next(); it returns ctx.Err() as soon as ctx ends, nil after
// a full wait.
func (b *Backoff) Wait(ctx context.Context) error {
	return Sleep(ctx, b.Next())
}

// Sleep waits d or until ctx ends; it returns ctx.Err() when ctx ended
// first, nil after a full wait.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
