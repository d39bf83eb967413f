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
	out := make([][]Activity, len(people))
	if len(people) == 0 {
		return out, nil
	}
	lo, hi := "-inf", "+inf"
	if since > -1<<62 {
		lo = strconv.FormatInt(since, 10)
	}
	if until < 1<<62 {
		hi = strconv.FormatInt(until, 10)
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(people))
	for i, p := range people {
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
// ActivityJSON writes it (a flat object of known keys whose strings have
// no escapes), exactly as DecodeActivity would; ok is false for anything
// else.
func decodePlainActivity(text string) (Activity, bool) {
	var a Activity
	p := 0
	peek := func(c byte) bool { return p < len(text) && text[p] == c }
	str := func() (string, bool) {
		if !peek('"') {
			return "", false
		}
		for i := p + 1; i < len(text); i++ {
			switch c := text[i]; {
			case c == '"':
				s := text[p+1 : i]
				p = i + 1
				return s, true
			case c == '\\' || c < 0x20 || c >= 0x80:
				return "", false
			}
		}
		return "", false
	}
	// scalar returns the text of a string, number, boolean or null.
	scalar := func() (string, bool) {
		from := p
		if peek('"') {
			_, ok := str()
			return text[from:p], ok
		}
		for p < len(text) && text[p] != ',' && text[p] != '}' {
			p++
		}
		return text[from:p], p > from
	}
	if !peek('{') {
		return a, false
	}
	p++
	seen := 0
	for !peek('}') {
		if seen > 0 {
			if !peek(',') {
				return a, false
			}
			p++
		}
		seen++
		key, ok := str()
		if !ok || !peek(':') {
			return a, false
		}
		p++
		var s string
		switch key {
		case "id", "k", "o", "cr", "r", "why", "f":
			if s, ok = str(); !ok {
				return a, false
			}
			switch key {
			case "id":
				a.EventID = s
			case "k":
				a.Kind = s
			case "o":
				a.Opp = s
			case "cr":
				a.RoleID = s
			case "r":
				a.Role = s
			case "why":
				a.Reason = s
			default:
				a.Field = s
			}
		case "p":
			s, ok = scalar()
			if !ok || (s != "true" && s != "false") {
				return a, false
			}
			a.IsPrimary = s == "true"
		case "t":
			s, ok = scalar()
			n, err := strconv.ParseInt(s, 10, 64)
			if !ok || err != nil || (len(s) > 1 && (s[0] == '0' || s[:2] == "-0")) || s == "-0" {
				return a, false
			}
			a.At = n
		case "ov", "nv":
			if s, ok = scalar(); !ok {
				return a, false
			}
			v, err := cdc.ParseJSON(s, cdc.KindString)
			if err != nil {
				return a, false
			}
			if key == "ov" {
				a.ActivityEntry.Old, a.Old = json.RawMessage(s), v
			} else {
				a.ActivityEntry.New, a.New = json.RawMessage(s), v
			}
		default:
			return a, false
		}
	}
	return a, p == len(text)-1
}
