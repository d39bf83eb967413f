package replica

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The changes stream has one entry per apply call, naming in its "opps"
// field the opportunity groups the call wrote (space-separated; "opp", one
// group, is what earlier versions wrote) and in its "acts" field the people
// whose activity log the call wrote, each with the time of the oldest entry
// it wrote ("<person>@<ms>", space-separated, possibly empty; see
// FormatActs; entries of earlier versions have no "acts"). It is capped at
// ChangesMaxLen.

// FormatActs renders the "acts" field of a changes entry: each person (in
// order) with the oldest activity time (ms) the call wrote for them.
func FormatActs(people []string, oldest map[string]*int64) string {
	b := make([]byte, 0, len(people)*32)
	for i, p := range people {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, p...)
		b = append(b, '@')
		b = strconv.AppendInt(b, *oldest[p], 10)
	}
	return string(b)
}

// ChangesEnd returns the id of the last entry of the changes stream ("0-0"
// when it is empty): a reader that loads everything and then follows from
// there misses nothing.
func (r *Replica) ChangesEnd(ctx context.Context) (string, error) {
	msgs, err := r.rdb.XRevRangeN(ctx, r.k.Stream(StreamChanges), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("reading the changes stream: %w", err)
	}
	if len(msgs) == 1 {
		return msgs[0].ID, nil
	}
	return "0-0", nil
}

// Changes is one read of the changes stream.
type Changes struct {
	Groups []string // the groups written, each once, in stream order
	// People are the people whose activity was written, each once, and
	// Since the oldest time (ms) written for each: their activity from
	// then on may have changed, what is older has not (math.MinInt64 when
	// the entry did not say).
	People []string
	Since  []int64
	// Unlisted is true when an entry read does not list the people whose
	// activity it wrote (written by an earlier version): any person of its
	// groups may have new activity.
	Unlisted bool
	Last     string // the id of the last entry read ("" when none was)
	// Lost is true when the stream was trimmed past the reader's position:
	// changes were missed, the reader must load everything again.
	Lost bool
}

// ReadChanges reads up to count entries after id after, waiting up to
// block for the first one.
func (r *Replica) ReadChanges(ctx context.Context, after string, count int64, block time.Duration) (Changes, error) {
	key := r.k.Stream(StreamChanges)
	res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return Changes{}, nil
	}
	if err != nil {
		return Changes{}, fmt.Errorf("reading the changes stream: %w", err)
	}
	if after != "0-0" {
		head, err := r.rdb.XRangeN(ctx, key, "-", "+", 1).Result()
		if err != nil {
			return Changes{}, fmt.Errorf("reading the changes stream: %w", err)
		}
		if len(head) == 1 && StreamIDLess(after, head[0].ID) {
			return Changes{Lost: true}, nil
		}
	}
	var out Changes
	seen, people := map[string]bool{}, map[string]int{}
	for _, s := range res {
		for _, m := range s.Messages {
			out.Last = m.ID
			list, _ := m.Values["opps"].(string)
			if one, ok := m.Values["opp"].(string); ok {
				list = one
			}
			for _, id := range strings.Fields(list) {
				if !seen[id] {
					seen[id] = true
					out.Groups = append(out.Groups, id)
				}
			}
			acts, ok := m.Values["acts"].(string)
			if !ok {
				out.Unlisted = true
			}
			for _, item := range strings.Fields(acts) {
				p, since := item, int64(math.MinInt64)
				if i := strings.LastIndexByte(item, '@'); i >= 0 {
					if n, err := strconv.ParseInt(item[i+1:], 10, 64); err == nil {
						p, since = item[:i], n
					}
				}
				if j, ok := people[p]; ok {
					out.Since[j] = min(out.Since[j], since)
					continue
				}
				people[p] = len(out.People)
				out.People = append(out.People, p)
				out.Since = append(out.Since, since)
			}
		}
	}
	return out, nil
}

// StreamIDLess compares two stream ids "<ms>-<seq>".
func StreamIDLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
