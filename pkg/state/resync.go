package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
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
	known, err := s.rdb.SMIsMember(ctx, s.k.opps(), args...).Result()
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
		ids, next, err := s.rdb.SScan(ctx, s.k.stale(entity), cursor, "", int64(max)).Result()
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

// ClearStale removes ids from entity's stale set once a re-read applied
// them. The record hashes are not touched: a re-read that was newer than the
// state already cleared their flag in its apply script.
func (s *Store) ClearStale(ctx context.Context, entity string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if err := s.rdb.SRem(ctx, s.k.stale(entity), args...).Err(); err != nil {
		return fmt.Errorf("clearing stale %s ids: %w", entity, err)
	}
	return nil
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
	msgs, err := s.rdb.XRangeN(ctx, s.k.stream(StreamResync), start, "+", count).Result()
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
	m, err := s.rdb.HGetAll(ctx, s.k.prefix+name).Result()
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
		pipe.Del(ctx, s.k.prefix+name)
	}
	if len(fields) > 0 {
		pipe.HSet(ctx, s.k.prefix+name, fields)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("saving %s progress: %w", name, err)
	}
	return nil
}
