package replica

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// PersonActivity is a member of the people index: a person and the time
// (ms) of their last activity.
type PersonActivity struct {
	ID   string
	Last int64
}

// People reads the whole people index.
func (r *Replica) People(ctx context.Context) ([]PersonActivity, error) {
	zs, err := r.rdb.ZRangeWithScores(ctx, r.k.People(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading people: %w", err)
	}
	out := make([]PersonActivity, 0, len(zs))
	for _, z := range zs {
		if m, ok := z.Member.(string); ok && z.Score > 0 {
			out = append(out, PersonActivity{ID: m, Last: int64(z.Score)})
		}
	}
	return out, nil
}

// LastActivity returns each person's last activity (ms; 0 when the person
// is not in the people index), reading in chunks of 1,000.
func (r *Replica) LastActivity(ctx context.Context, people []string) ([]int64, error) {
	out := make([]int64, len(people))
	for i := 0; i < len(people); i += 1000 {
		chunk := people[i:min(i+1000, len(people))]
		vals, err := r.rdb.ZMScore(ctx, r.k.People(), chunk...).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("reading people: %w", err)
		}
		// ZMSCORE reports missing members as 0; a real score is a commit
		// time.
		for j := range chunk {
			if j < len(vals) && vals[j] > 0 {
				out[i+j] = int64(vals[j])
			}
		}
	}
	return out, nil
}

// PeopleCount returns the size of the people index.
func (r *Replica) PeopleCount(ctx context.Context) (int64, error) {
	n, err := r.rdb.ZCard(ctx, r.k.People()).Result()
	if err != nil {
		return 0, fmt.Errorf("reading people: %w", err)
	}
	return n, nil
}
