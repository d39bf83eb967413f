package main

import (
	"context"
	"sync"
	"time"

	"github.com/oppsync/oppsync/pkg/state"
)

// statsCache reads the Redis-backed gauges at most once a second, so a
// scrape never waits on more than one round trip.
type statsCache struct {
	store *state.Store
	mu    sync.Mutex
	at    time.Time
	last  state.Stats
}

func newStatsCache(s *state.Store) *statsCache { return &statsCache{store: s} }

func (c *statsCache) get() state.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < time.Second {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if st, err := c.store.Stats(ctx); err == nil {
		c.last = st
	}
	c.at = time.Now()
	return c.last
}
