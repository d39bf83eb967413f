package state

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// PruneActivity removes activity older than the retention from every
// person's log, and forgets people whose last activity is older than the
// retention and who hold no role any more (they leave the query universe).
// It walks the people index in pages and is safe to run on every instance.
func (s *Store) PruneActivity(ctx context.Context) (int64, error) {
	cutoff := s.cfg.Now().Add(-s.cfg.ActivityRetention).UnixMilli()
	max := "(" + strconv.FormatInt(cutoff, 10)
	var removed int64
	var cursor uint64
	for {
		people, next, err := s.rdb.ZScan(ctx, s.k.People(), cursor, "*", 500).Result()
		if err != nil {
			return removed, fmt.Errorf("scanning people: %w", err)
		}
		pipe := s.rdb.Pipeline()
		var cmds []*redis.IntCmd
		var stale []string
		for i := 0; i+1 < len(people); i += 2 {
			p := people[i]
			cmds = append(cmds, pipe.ZRemRangeByScore(ctx, s.k.Activity(p), "-inf", max))
			if score, err := strconv.ParseFloat(people[i+1], 64); err == nil && int64(score) < cutoff {
				stale = append(stale, p)
			}
		}
		holds := make([]*redis.IntCmd, len(stale))
		for i, p := range stale {
			holds[i] = pipe.HLen(ctx, s.k.Person(p))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return removed, fmt.Errorf("pruning activity: %w", err)
		}
		for _, c := range cmds {
			removed += c.Val()
		}
		var gone []any
		for i, p := range stale {
			if holds[i].Val() == 0 {
				gone = append(gone, p)
			}
		}
		if len(gone) > 0 {
			if err := s.rdb.ZRem(ctx, s.k.People(), gone...).Err(); err != nil {
				return removed, fmt.Errorf("forgetting people: %w", err)
			}
		}
		if next == 0 {
			return removed, nil
		}
		cursor = next
	}
}

// RunPruner calls PruneActivity every interval until ctx ends.
func (s *Store) RunPruner(ctx context.Context, interval time.Duration, onErr func(error)) error {
	every(ctx, interval, func() {
		if _, err := s.PruneActivity(ctx); err != nil && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
	})
	return nil
}
