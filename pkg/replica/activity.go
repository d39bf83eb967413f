package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// ActivityEntry is one entry of a person's activity log.
type ActivityEntry struct {
	EventID   string          `json:"id"`
	Kind      string          `json:"k"`
	Opp       string          `json:"o"`
	RoleID    string          `json:"cr,omitempty"`
	Role      string          `json:"r,omitempty"`
	IsPrimary bool            `json:"p,omitempty"`
	Reason    string          `json:"why,omitempty"`
	Field     string          `json:"f,omitempty"`
	Old       json.RawMessage `json:"ov,omitempty"`
	New       json.RawMessage `json:"nv,omitempty"`
	At        int64           `json:"t"`
}

// ActivityJSON renders the activity entry of a trigger at time at (ms): the
// JSON form of ActivityEntry, written by hand for the hot path.
func ActivityJSON(tr triggers.Trigger, at int64) string {
	b := make([]byte, 0, 192)
	b = append(b, `{"id":`...)
	b = cdc.AppendJSONString(b, tr.EventID)
	b = append(b, `,"k":`...)
	b = cdc.AppendJSONString(b, tr.Kind)
	b = append(b, `,"o":`...)
	b = cdc.AppendJSONString(b, tr.OpportunityID)
	str := func(key, v string) {
		if v != "" {
			b = append(b, ',', '"')
			b = append(b, key...)
			b = append(b, '"', ':')
			b = cdc.AppendJSONString(b, v)
		}
	}
	if tr.Kind == cdc.TriggerUpdated {
		str("f", tr.Field)
		b = append(b, `,"ov":`...)
		b = tr.Old.AppendJSON(b)
		b = append(b, `,"nv":`...)
		b = tr.New.AppendJSON(b)
	} else {
		str("cr", tr.ContactRoleID)
		str("r", tr.Role)
		if tr.IsPrimary {
			b = append(b, `,"p":true`...)
		}
		str("why", tr.Reason)
	}
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, at, 10)
	return string(append(b, '}'))
}

// Activity is an activity entry as read back: ActivityEntry with its old
// and new values parsed.
type Activity struct {
	ActivityEntry
	Old, New cdc.Value
}

// DecodeActivity parses one member of an activity log.
func DecodeActivity(text string) (Activity, error) {
	if a, ok := decodePlainActivity(text); ok {
		return a, nil
	}
	var a Activity
	if err := json.Unmarshal([]byte(text), &a.ActivityEntry); err != nil {
		return a, fmt.Errorf("activity entry: %w", err)
	}
	var err error
	if len(a.ActivityEntry.Old) > 0 {
		if a.Old, err = cdc.ParseJSON(string(a.ActivityEntry.Old), cdc.KindString); err != nil {
			return a, err
		}
	}
	if len(a.ActivityEntry.New) > 0 {
		if a.New, err = cdc.ParseJSON(string(a.ActivityEntry.New), cdc.KindString); err != nil {
			return a, err
		}
	}
	return a, nil
}

// ReadActivity reads, in one round trip, the activity of each person
// within [since, until] (ms; beyond ±2^62 means unbounded), oldest first.
// An entry this version cannot read is skipped: it matches nothing.
func (r *Replica) ReadActivity(ctx context.Context, people []string, since, until int64) ([][]Activity, error) {
	sinces := make([]int64, len(people))
	for i := range sinces {
		sinces[i] = since
	}
	return r.ReadActivitySince(ctx, people, sinces, until)
}

// ReadActivitySince is ReadActivity with each person's own lower bound.
func (r *Replica) ReadActivitySince(ctx context.Context, people []string, since []int64, until int64) ([][]Activity, error) {
	out := make([][]Activity, len(people))
	if len(people) == 0 {
		return out, nil
	}
	hi := "+inf"
	if until < 1<<62 {
		hi = strconv.FormatInt(until, 10)
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(people))
	for i, p := range people {
		lo := "-inf"
		if since[i] > -1<<62 {
			lo = strconv.FormatInt(since[i], 10)
		}
		cmds[i] = pipe.ZRangeByScore(ctx, r.k.Activity(p), &redis.ZRangeBy{Min: lo, Max: hi})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading activity: %w", err)
	}
	for i := range people {
		entries := cmds[i].Val()
		acts := make([]Activity, 0, len(entries))
		for _, e := range entries {
			a, err := DecodeActivity(e)
			if err != nil {
				continue
			}
			acts = append(acts, a)
		}
		out[i] = acts
	}
	return out, nil
}

// decodePlainActivity reads, without encoding/json, an entry as
// ActivityJSON writes it, exactly as DecodeActivity would; ok is false for
// anything else.
func decodePlainActivity(text string) (Activity, bool) {
	var a Activity
	ok := flatObject(text, func(key, raw string) bool {
		var ok bool
		switch key {
		case "id":
			a.EventID, ok = plainString(raw)
		case "k":
			a.Kind, ok = plainString(raw)
		case "o":
			a.Opp, ok = plainString(raw)
		case "cr":
			a.RoleID, ok = plainString(raw)
		case "r":
			a.Role, ok = plainString(raw)
		case "why":
			a.Reason, ok = plainString(raw)
		case "f":
			a.Field, ok = plainString(raw)
		case "p":
			a.IsPrimary, ok = plainBool(raw)
		case "t":
			a.At, ok = plainInt(raw)
		case "ov", "nv":
			v, err := cdc.ParseJSON(raw, cdc.KindString)
			if ok = err == nil; ok && key == "ov" {
				a.ActivityEntry.Old, a.Old = json.RawMessage(raw), v
			} else if ok {
				a.ActivityEntry.New, a.New = json.RawMessage(raw), v
			}
		}
		return ok
	})
	return a, ok
}
