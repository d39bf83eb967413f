package state

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/triggers"
)

// ReleaseExpired emits the added entries of contact roles whose opportunity
// did not arrive within the pending timeout, at most limit opportunities per
// call. Any instance may call it: the revision check makes sure each entry is
// written once. It returns the number of entries written.
func (s *Store) ReleaseExpired(ctx context.Context, limit int) (int, error) {
	now := s.cfg.Now()
	members, err := s.rdb.ZRangeByScore(ctx, s.k.Pending(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("reading pending roles: %w", err)
	}
	want := map[string]bool{}
	for _, m := range members {
		if opp, _, ok := strings.Cut(m, "|"); ok {
			want[opp] = true
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	groups, err := s.loadGroups(ctx, ids)
	if err != nil {
		return 0, err
	}
	cs, err := s.releaseCampaigns(ctx, groups)
	if err != nil {
		return 0, err
	}
	var txs []*tx
	var counts []int
	for _, id := range ids {
		l := groups[id]
		before := holdersOf(l.g)
		pr := priorOf(l.g)
		res := triggers.ReleaseExpired(s.tcfg, l.g, now.UnixMilli())
		t := newTx(s.k, "", "")
		t.cs = cs
		t.guard(id, l)
		if res.Duplicate {
			// Stale index entries (role deleted or released elsewhere).
			stale := false
			for _, m := range members {
				if strings.HasPrefix(m, id+"|") {
					rid := strings.TrimPrefix(m, id+"|")
					if r, ok := l.g.Roles[rid]; !ok || !r.Pending {
						t.zrem(s.k.Pending(), m)
						stale = true
					}
				}
			}
			if !stale {
				continue
			}
		} else {
			s.writeRoles(t, l.g, res.Roles, "", pr)
			s.writeHolders(t, id, before, holdersOf(l.g), now.UnixMilli())
			s.writeTriggers(t, l, res.Triggers)
			t.note(id)
		}
		txs = append(txs, t)
		counts = append(counts, len(res.Triggers))
	}
	if len(txs) == 0 {
		return 0, nil
	}
	written := 0
	for i, c := range s.send(ctx, txs) {
		ok, err := applied(c)
		if err != nil {
			return written, fmt.Errorf("releasing pending roles: %w", err)
		}
		if ok {
			written += counts[i]
		}
	}
	return written, nil
}

// RunReleaser calls ReleaseExpired every interval until ctx ends. Errors are
// reported to onErr and retried on the next tick.
func (s *Store) RunReleaser(ctx context.Context, interval time.Duration, onRelease func(int), onErr func(error)) error {
	every(ctx, interval, func() {
		for {
			n, err := s.ReleaseExpired(ctx, 100)
			if err != nil {
				if ctx.Err() == nil && onErr != nil {
					onErr(err)
				}
				return
			}
			if n == 0 {
				return
			}
			if onRelease != nil {
				onRelease(n)
			}
		}
	})
	return nil
}

// every calls fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// Stats are the gauges the store serves.
type Stats struct {
	PendingRoles int64
	StaleRecords int64
}

// Stats reads the current gauges.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	pipe := s.rdb.Pipeline()
	p := pipe.ZCard(ctx, s.k.Pending())
	so := pipe.SCard(ctx, s.k.Stale("Opportunity"))
	sr := pipe.SCard(ctx, s.k.Stale("OpportunityContactRole"))
	if _, err := pipe.Exec(ctx); err != nil {
		return Stats{}, fmt.Errorf("reading stats: %w", err)
	}
	return Stats{PendingRoles: p.Val(), StaleRecords: so.Val() + sr.Val()}, nil
}
