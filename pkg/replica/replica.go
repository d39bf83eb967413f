package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/triggers"
)

// Replica reads one org's replica in Redis. It is safe for concurrent use.
type Replica struct {
	rdb       redis.UniversalClient
	k         Keys
	onCorrupt func(Corrupt)
}

// New returns the reader of org's keys on rdb. onCorrupt (optional; must not
// block) is told of each stored record that could not be read and was
// skipped.
func New(org string, rdb redis.UniversalClient, onCorrupt func(Corrupt)) *Replica {
	return &Replica{rdb: rdb, k: NewKeys(org), onCorrupt: onCorrupt}
}

// Keys returns the org's key names.
func (r *Replica) Keys() Keys { return r.k }

// Stored is an opportunity group as read from Redis, with its revision.
type Stored struct {
	Group *triggers.Group
	Rev   int64
	// BadRev is the stored revision when it is not a number (corrupt): the
	// next write expects it, and replaces it with Rev+1.
	BadRev string
}

// Written reports whether any change was ever written to the group.
func (s Stored) Written() bool { return s.Rev > 0 || s.BadRev != "" }

// LoadGroups reads opportunity groups in one round trip. A group never
// written is returned empty, with revision 0. Records that do not parse are
// skipped and reported (see Corrupt).
func (r *Replica) LoadGroups(ctx context.Context, ids []string) (map[string]Stored, error) {
	out := make(map[string]Stored, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := r.rdb.Pipeline()
	opps := make([]*redis.MapStringStringCmd, len(ids))
	roles := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		opps[i] = pipe.HGetAll(ctx, r.k.Opp(id))
		roles[i] = pipe.HGetAll(ctx, r.k.Roles(id))
	}
	revs := pipe.HMGet(ctx, r.k.Revs(), ids...)
	cmds, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, redis.Nil) {
		// A key of another type answers an error of its own (corrupt
		// data, skipped below); any other failure fails the load.
		for _, c := range cmds {
			var reply redis.Error
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) {
				return nil, fmt.Errorf("loading %d opportunity groups: %w", len(ids), err)
			}
		}
		if revs.Err() != nil {
			return nil, fmt.Errorf("loading %d opportunity groups: revisions: %w", len(ids), revs.Err())
		}
	}
	for i, id := range ids {
		g := triggers.NewGroup(id)
		if opps[i].Err() != nil {
			r.corrupt(CorruptKey, id, "opportunity")
		}
		for _, f := range DecodeOpp(&g.Opp, opps[i].Val()) {
			r.corrupt(CorruptField, id, f)
		}
		var rev int64
		var badRev string
		if v, ok := revs.Val()[i].(string); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				r.corrupt(CorruptRevision, id, "")
				badRev = v
			}
			rev = n
		}
		if roles[i].Err() != nil {
			r.corrupt(CorruptKey, id, "roles")
		}
		for rid, text := range roles[i].Val() {
			role, err := DecodeRole(rid, text)
			if err != nil {
				r.corrupt(CorruptRole, id, rid)
				continue
			}
			g.Roles[rid] = role
		}
		out[id] = Stored{Group: g, Rev: rev, BadRev: badRev}
	}
	return out, nil
}

// LoadGroup reads one opportunity group; ok is false when nothing is known
// about the opportunity.
func (r *Replica) LoadGroup(ctx context.Context, oppID string) (*triggers.Group, bool, error) {
	m, err := r.LoadGroups(ctx, []string{oppID})
	if err != nil {
		return nil, false, err
	}
	l := m[oppID]
	return l.Group, l.Written(), nil
}

// GroupIDs lists every opportunity group of the org: the known
// opportunities and those contact roles point to.
func (r *Replica) GroupIDs(ctx context.Context) ([]string, error) {
	pipe := r.rdb.Pipeline()
	known := pipe.SMembers(ctx, r.k.Opps())
	roleOwners := pipe.HVals(ctx, r.k.RoleOpp())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("listing opportunities: %w", err)
	}
	seen := make(map[string]bool, len(known.Val()))
	var out []string
	for _, list := range [][]string{known.Val(), roleOwners.Val()} {
		for _, id := range list {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// PersonOpportunityIDs lists the opportunities a person's links name; seen
// is false when the person has neither links nor activity.
func (r *Replica) PersonOpportunityIDs(ctx context.Context, personID string) (ids []string, seen bool, err error) {
	pipe := r.rdb.Pipeline()
	links := pipe.HKeys(ctx, r.k.Person(personID))
	score := pipe.ZScore(ctx, r.k.People(), personID)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("reading person: %w", err)
	}
	ids = links.Val()
	return ids, len(ids) > 0 || !errors.Is(score.Err(), redis.Nil), nil
}
