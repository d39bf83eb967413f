package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
)

// This file serves imports (pkg/bulk) and gap reconciliation
// (pkg/reconcile): reads of the stale sets and the resync stream, and small
// progress hashes outside the apply scripts.

// KnownOpportunities reports, for each id, whether the state knows the
// opportunity (it was created, imported or re-read, deleted or not).
func (s *Store) KnownOpportunities(ctx context.Context, ids []string) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	known, err := s.rdb.SMIsMember(ctx, s.k.Opps(), args...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading known opportunities: %w", err)
	}
	return known, nil
}

// StaleIDs returns up to max record ids of entity flagged stale.
func (s *Store) StaleIDs(ctx context.Context, entity string, max int) ([]string, error) {
	var out []string
	var cursor uint64
	seen := map[string]bool{}
	for {
		ids, next, err := s.rdb.SScan(ctx, s.k.Stale(entity), cursor, "", int64(max)).Result()
		if err != nil {
			return nil, fmt.Errorf("reading stale %s ids: %w", entity, err)
		}
		for _, id := range ids {
			if !seen[id] && len(out) < max {
				seen[id] = true
				out = append(out, id)
			}
		}
		cursor = next
		if cursor == 0 || len(out) >= max {
			return out, nil
		}
	}
}

// StaleMarks returns the stale marker of each id of entity: the version of
// the gap that made the record stale, "" when it is not stale (or was
// flagged before markers were kept). ids nil reads every marker.
func (s *Store) StaleMarks(ctx context.Context, entity string, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if ids == nil {
		m, err := s.rdb.HGetAll(ctx, s.k.StaleGaps(entity)).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("reading stale %s markers: %w", entity, err)
		}
		return m, nil
	}
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.k.StaleGaps(entity), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading stale %s markers: %w", entity, err)
	}
	for i, v := range vals {
		str, _ := v.(string)
		out[ids[i]] = str
	}
	return out, nil
}

// clearStaleScript removes ids from a stale set and their markers, each
// only if its marker is still the one given: a gap applied since the caller
// read the marker leaves its record stale. KEYS[1] the stale set, KEYS[2]
// the markers; ARGV id, marker pairs. It returns how many it removed.
var clearStaleScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i]) or ''
  if cur == ARGV[i + 1] then
    n = n + redis.call('SREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return n
`)

// ClearStale removes records of entity from its stale set once a re-read
// applied them, given the markers (StaleMarks) read before the re-read
// began: a record whose marker changed since (a newer gap came) stays
// stale. The record hashes are not touched: a re-read applied while the
// marker held already cleared their flag in its apply script.
func (s *Store) ClearStale(ctx context.Context, entity string, marks map[string]string) (int, error) {
	if len(marks) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(marks))
	for id := range marks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var cleared int
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, 0, 2*len(chunk))
		for _, id := range chunk {
			args = append(args, id, marks[id])
		}
		n, err := clearStaleScript.Run(ctx, s.rdb, []string{s.k.Stale(entity), s.k.StaleGaps(entity)}, args...).Int()
		if err != nil {
			return cleared, fmt.Errorf("clearing stale %s ids: %w", entity, err)
		}
		cleared += n
	}
	return cleared, nil
}

// ResyncNotice is one entry of the resync stream (CONTRACT §4).
type ResyncNotice struct {
	StreamID        string
	Entity          string
	RecordIDs       []string
	ChangeType      cdc.ChangeType
	CommitTimestamp int64 // ms since epoch; 0 when unreadable
	TransactionKey  string
}

// ResyncNotices returns up to count resync entries after the stream id
// after ("" or "0" for the beginning).
func (s *Store) ResyncNotices(ctx context.Context, after string, count int64) ([]ResyncNotice, error) {
	start := "-"
	if after != "" && after != "0" {
		start = "(" + after
	}
	msgs, err := s.rdb.XRangeN(ctx, s.k.Stream(replica.StreamResync), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("reading resync stream: %w", err)
	}
	out := make([]ResyncNotice, 0, len(msgs))
	for _, m := range msgs {
		n := ResyncNotice{StreamID: m.ID}
		n.Entity, _ = m.Values["entity"].(string)
		ct, _ := m.Values["change_type"].(string)
		n.ChangeType = cdc.ChangeType(ct)
		n.TransactionKey, _ = m.Values["transaction_key"].(string)
		if ids, ok := m.Values["record_ids"].(string); ok {
			_ = json.Unmarshal([]byte(ids), &n.RecordIDs)
		}
		if ts, ok := m.Values["commit_timestamp"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				n.CommitTimestamp = t.UnixMilli()
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// Progress reads the progress hash "oppsync:{org}:<name>" (e.g. "import",
// "reconcile"); it is empty when none was saved.
func (s *Store) Progress(ctx context.Context, name string) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.k.Progress(name)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading %s progress: %w", name, err)
	}
	return m, nil
}

// SaveProgress writes fields into the progress hash name; reset first
// deletes what was there.
func (s *Store) SaveProgress(ctx context.Context, name string, fields map[string]string, reset bool) error {
	pipe := s.rdb.TxPipeline()
	if reset {
		pipe.Del(ctx, s.k.Progress(name))
	}
	if len(fields) > 0 {
		pipe.HSet(ctx, s.k.Progress(name), fields)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("saving %s progress: %w", name, err)
	}
	return nil
}

// spendScript adds ARGV[2] to the counter field ARGV[1] of the hash
// KEYS[1] unless that would pass ARGV[3] (0 = no limit), and deletes the
// other fields starting with ARGV[4] (earlier days). It returns the counter
// and 1 when added, 0 when refused.
var spendScript = redis.NewScript(`
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if f ~= ARGV[1] and string.sub(f, 1, #ARGV[4]) == ARGV[4] then redis.call('HDEL', KEYS[1], f) end
end
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local n, max = tonumber(ARGV[2]), tonumber(ARGV[3])
if max > 0 and cur + n > max then return {cur, 0} end
return {redis.call('HINCRBY', KEYS[1], ARGV[1], n), 1}
`)

// SpendProgress adds n to the counter "<prefix><period>" of the progress
// hash name unless the counter would pass max (0 = no limit); counters of
// other periods are deleted. It returns the counter and whether n was
// added. Every instance of the org shares the counter.
func (s *Store) SpendProgress(ctx context.Context, name, prefix, period string, n, max int64) (int64, bool, error) {
	res, err := spendScript.Run(ctx, s.rdb, []string{s.k.Progress(name)}, prefix+period, n, max, prefix).Int64Slice()
	if err != nil {
		return 0, false, fmt.Errorf("counting %s%s in %s progress: %w", prefix, period, name, err)
	}
	return res[0], res[1] == 1, nil
}

// delIfEqualScript deletes field ARGV[1] of KEYS[1] if it holds ARGV[2].
var delIfEqualScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`)

// ClearProgress deletes field of the progress hash name if it still holds
// expect (a newer value written meanwhile stays); it reports whether it
// deleted.
func (s *Store) ClearProgress(ctx context.Context, name, field, expect string) (bool, error) {
	n, err := delIfEqualScript.Run(ctx, s.rdb, []string{s.k.Progress(name)}, field, expect).Int()
	if err != nil {
		return false, fmt.Errorf("clearing %s in %s progress: %w", field, name, err)
	}
	return n == 1, nil
}
