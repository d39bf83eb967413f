package view

import (
	"context"
	"math"
	"sort"
	"strings"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
)

// The activity index: each person's activity log within the retention,
// read from Redis at load and again for the people a change names (the
// changes stream's "acts"), kept as one immutable string per person, oldest
// first. An entry is
//
//	at (8 bytes, little endian) | kind | opportunity id | fields by kind
//
// added/removed: a flags byte (1 = primary) and the role name; updated: the
// field name and the old and new values. Strings are a uvarint length and
// their bytes; a value is its kind and its payload (a number's 8 bytes, a
// boolean's byte, a text). Decoding makes substrings of the log, so a
// query allocates nothing per entry. The role id, event id and reason of
// an entry are not kept: no filter reads them.

// Activity kinds as stored in the index.
const (
	actAdded byte = iota
	actRemoved
	actUpdated
)

var actKinds = [...]string{actAdded: cdc.TriggerAdded, actRemoved: cdc.TriggerRemoved, actUpdated: cdc.TriggerUpdated}

func actKind(kind string) (byte, bool) {
	for i, k := range actKinds {
		if k == kind {
			return byte(i), true
		}
	}
	return 0, false
}

// kindMask returns the kinds q's activity filters read, one bit each.
func kindMask(q *filters.Query) uint8 {
	var m uint8
	for _, f := range q.Filters {
		switch f.Name {
		case filters.WasAdded:
			m |= 1 << actAdded
		case filters.WasRemoved:
			m |= 1 << actRemoved
		case filters.Updated:
			m |= 1 << actUpdated
		}
	}
	return m
}

// encodeActivity renders a person's activity (any order) as an index log,
// leaving out entries before cutoff and of unknown kinds.
func encodeActivity(acts []replica.Activity, cutoff int64) string {
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].At < acts[j].At })
	var b []byte
	for i := range acts {
		a := &acts[i]
		k, ok := actKind(a.Kind)
		if !ok || a.At < cutoff {
			continue
		}
		for s := 0; s < 64; s += 8 {
			b = append(b, byte(uint64(a.At)>>s))
		}
		b = append(b, k)
		b = appendText(b, a.Opp)
		if k == actUpdated {
			b = appendText(b, a.Field)
			b = appendValue(b, a.Old)
			b = appendValue(b, a.New)
			continue
		}
		var flags byte
		if a.IsPrimary {
			flags = 1
		}
		b = append(b, flags)
		b = appendText(b, a.Role)
	}
	return string(b)
}

func appendText(b []byte, s string) []byte {
	for x := uint64(len(s)); ; x >>= 7 {
		if x < 0x80 {
			b = append(b, byte(x))
			break
		}
		b = append(b, byte(x)|0x80)
	}
	return append(b, s...)
}

func appendValue(b []byte, v cdc.Value) []byte {
	b = append(b, byte(v.Kind))
	switch v.Kind {
	case cdc.KindNull:
	case cdc.KindNumber:
		bits := math.Float64bits(v.Num)
		for s := 0; s < 64; s += 8 {
			b = append(b, byte(bits>>s))
		}
	case cdc.KindBool:
		if v.Bool {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	default:
		b = appendText(b, v.Str)
	}
	return b
}

// actReader walks an index log.
type actReader struct {
	s string
	p int
}

func (r *actReader) int64() int64 {
	var x uint64
	for i := 0; i < 8; i++ {
		x |= uint64(r.s[r.p+i]) << (8 * i)
	}
	r.p += 8
	return int64(x)
}

func (r *actReader) text() string {
	var n, shift int
	for {
		c := r.s[r.p]
		r.p++
		n |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	t := r.s[r.p : r.p+n]
	r.p += n
	return t
}

func (r *actReader) value() cdc.Value {
	kind := cdc.Kind(r.s[r.p])
	r.p++
	switch kind {
	case cdc.KindNull:
		return cdc.Null
	case cdc.KindNumber:
		return cdc.Value{Kind: kind, Num: math.Float64frombits(uint64(r.int64()))}
	case cdc.KindBool:
		r.p++
		return cdc.Value{Kind: kind, Bool: r.s[r.p-1] == 1}
	}
	return cdc.Value{Kind: kind, Str: r.text()}
}

// decodeActivity appends the entries of log within [since, until] and
// not before cutoff whose kind is in mask.
func decodeActivity(log string, since, until, cutoff int64, mask uint8, out []filters.Activity) []filters.Activity {
	since = max(since, cutoff)
	r := actReader{s: log}
	for r.p < len(r.s) {
		at := r.int64()
		k := r.s[r.p]
		r.p++
		opp := r.text()
		var a filters.Activity
		if k == actUpdated {
			a = filters.Activity{Kind: actKinds[k], OpportunityID: opp, Field: r.text(), At: at}
			a.Old = r.value()
			a.New = r.value()
		} else {
			flags := r.s[r.p]
			r.p++
			a = filters.Activity{Kind: actKinds[k], OpportunityID: opp, IsPrimary: flags&1 != 0, Role: r.text(), At: at}
		}
		if at > until {
			break // the log is in time order
		}
		if at < since || mask&(1<<k) == 0 {
			continue
		}
		out = append(out, a)
	}
	return out
}

// trimActivity drops the entries before cutoff; ok is false when there
// were none (log is returned as is).
func trimActivity(log string, cutoff int64) (string, bool) {
	r := actReader{s: log}
	start := 0
	for r.p < len(r.s) {
		start = r.p
		if r.int64() >= cutoff {
			break
		}
		start = len(r.s)
		k := r.s[r.p]
		r.p++
		r.text()
		if k == actUpdated {
			r.text()
			r.value()
			r.value()
		} else {
			r.p++
			r.text()
		}
	}
	if start == 0 {
		return log, false
	}
	return strings.Clone(log[start:]), true
}

// readActivityLogs reads the activity logs of people as index logs. What
// the pruner has not removed yet of the activity older than the retention
// is kept too: queries skip it, and trimAll drops it.
func (v *View) readActivityLogs(ctx context.Context, people []string) ([]string, error) {
	out := make([]string, len(people))
	for i := 0; i < len(people); i += v.cfg.Chunk {
		chunk := people[i:min(i+v.cfg.Chunk, len(people))]
		acts, err := v.r.ReadActivity(ctx, chunk, math.MinInt64, math.MaxInt64)
		if err != nil {
			return nil, err
		}
		for j := range chunk {
			out[i+j] = encodeActivity(acts[j], math.MinInt64)
		}
	}
	return out, nil
}

// cutoff is the oldest activity time (ms) within the retention.
func (v *View) cutoff() int64 {
	return v.cfg.Now().Add(-v.cfg.ActivityRetention).UnixMilli()
}

// trimAll drops activity older than the retention from every log, a chunk
// of people per write lock.
func (v *View) trimAll() {
	v.mu.RLock()
	list := make([]*personEntry, 0, len(v.persons))
	for _, e := range v.persons {
		if e.acts != "" {
			list = append(list, e)
		}
	}
	v.mu.RUnlock()
	cutoff := v.cutoff()
	for i := 0; i < len(list); i += queryChunk {
		v.mu.Lock()
		for _, e := range list[i:min(i+queryChunk, len(list))] {
			if t, ok := trimActivity(e.acts, cutoff); ok {
				e.acts = t
			}
		}
		v.mu.Unlock()
	}
}

// ActivityBytes returns the size of the activity index: the bytes of every
// person's log.
func (v *View) ActivityBytes() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := 0
	for _, e := range v.persons {
		n += len(e.acts)
	}
	return n
}
