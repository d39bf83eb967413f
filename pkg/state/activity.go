package state

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
)

// BadCursorError is an activity cursor this API did not issue.
type BadCursorError struct{}

func (BadCursorError) Error() string { return "cursor: not a cursor issued by this API" }

// Invalid marks the error as the client's (HTTP 400).
func (BadCursorError) Invalid() bool { return true }

// ActivityPage selects a page of a person's activity (CONTRACT §8).
type ActivityPage struct {
	Kind         string // a trigger name, "" for all
	Since, Until int64  // occurred_at bounds in ms, inclusive; 0 = unbounded
	Limit        int
	Cursor       string
}

// activityChunk is how many log entries one read fetches.
const activityChunk = 256

// PersonActivity reads a page of the person's activity log, newest first by
// occurred_at, within activity.retention: each entry with the fields it has
// in its trigger stream except those the log does not keep (the snapshot
// "opportunity", "roles" and the change header). ok is false for a person
// never seen. The next cursor is "" after the last page.
func (s *Store) PersonActivity(ctx context.Context, personID string, pg ActivityPage) (entries []map[string]string, next string, ok bool, err error) {
	if !cdc.KeySafeID(personID) {
		return nil, "", false, nil
	}
	maxScore, skip, err := decodeActivityCursor(pg.Cursor)
	if err != nil {
		return nil, "", false, err
	}
	if pg.Until != 0 && (maxScore == "" || pg.Until < parseScore(maxScore)) {
		maxScore, skip = strconv.FormatInt(pg.Until, 10), 0
	}
	if maxScore == "" {
		maxScore = "+inf"
	}
	minScore := s.cfg.Now().Add(-s.cfg.ActivityRetention).UnixMilli()
	if pg.Since > minScore {
		minScore = pg.Since
	}
	if _, err := s.rdb.ZScore(ctx, s.k.People(), personID).Result(); errors.Is(err, redis.Nil) {
		return nil, "", false, nil
	} else if err != nil {
		return nil, "", false, fmt.Errorf("reading person: %w", err)
	}
	limit := max(pg.Limit, 1)
	// Position: the score of the last entry passed and how many entries
	// with that score were passed (returned or filtered out).
	lastScore, passed := maxScore, skip
	offset := skip
	for {
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, s.k.Activity(personID), &redis.ZRangeBy{
			Max: maxScore, Min: strconv.FormatInt(minScore, 10), Offset: int64(offset), Count: activityChunk,
		}).Result()
		if err != nil {
			return nil, "", false, fmt.Errorf("reading activity: %w", err)
		}
		for _, z := range zs {
			member, _ := z.Member.(string)
			a, err := replica.DecodeActivity(member)
			match := err == nil && (pg.Kind == "" || a.Kind == pg.Kind)
			if match && len(entries) == limit {
				return entries, encodeActivityCursor(lastScore, passed), true, nil
			}
			score := strconv.FormatInt(int64(z.Score), 10)
			if score == lastScore {
				passed++
			} else {
				lastScore, passed = score, 1
			}
			if match {
				entries = append(entries, s.activityEntry(personID, &a))
			}
		}
		if len(zs) < activityChunk {
			return entries, "", true, nil
		}
		offset += len(zs)
	}
}

// activityEntry renders one log entry with its trigger stream field names
// and values (strings, JSON where the stream has JSON).
func (s *Store) activityEntry(personID string, a *replica.Activity) map[string]string {
	e := map[string]string{
		"trigger":        a.Kind,
		"event_id":       a.EventID,
		"org_id":         s.cfg.Org,
		"person_id":      personID,
		"opportunity_id": a.Opp,
		"occurred_at":    cdc.FormatMillis(a.At),
		"currency":       s.cfg.Currency,
	}
	if a.Kind == cdc.TriggerUpdated {
		e["field"] = a.Field
		e["old_value"], e["new_value"] = a.Old.JSON(), a.New.JSON()
	} else {
		e["contact_role_id"], e["role"], e["reason"] = a.RoleID, a.Role, a.Reason
		e["is_primary"] = strconv.FormatBool(a.IsPrimary)
	}
	return e
}

func parseScore(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func encodeActivityCursor(score string, passed int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a:" + score + ":" + strconv.Itoa(passed)))
}

func decodeActivityCursor(c string) (score string, passed int, err error) {
	if c == "" {
		return "", 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", 0, BadCursorError{}
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "a" {
		return "", 0, BadCursorError{}
	}
	if _, err := strconv.ParseInt(parts[1], 10, 64); err != nil {
		return "", 0, BadCursorError{}
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil || n < 0 {
		return "", 0, BadCursorError{}
	}
	return parts[1], n, nil
}
