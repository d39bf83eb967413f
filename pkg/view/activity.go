package view

import (
	"context"
	"encoding/binary"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
)

// The activity index: each person's activity log, read from Redis at load
// and, for the people a changes entry lists ("acts"), again from the oldest
// time the entry names (mergeActivity), kept as one
// immutable string per person, oldest first. An entry is
//
//	at | head | opportunity id | fields by kind
//
// at is a uvarint: the first entry's time (ms, zigzag), then the time
// since the entry before. head is the kind (2 bits) and flags: primary
// (added/removed), and which of the texts that follow are shared.
// added/removed carry the role name; updated the field name and the old
// and new values. A text is a shared-table index (one byte) or a uvarint
// length and its bytes; a value is its kind and its payload (a number's 8
// bytes, a boolean's byte, a text). Decoding makes substrings of the log,
// so a query allocates nothing per entry. Role ids, event ids and reasons
// are not kept: no filter reads them.

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

// Entry head bits above the kind.
const (
	actPrimary byte = 1 << (2 + iota)
	actShared1      // the role name or the field name is shared
	actShared2      // the old value's text is shared
	actShared3      // the new value's text is shared
)

// names shares the short texts activity entries repeat (role names, field
// names, picklist values) in one table of at most 255, filled first come
// first served. Entries are added under mu and read without a lock (the
// table is replaced, never changed, and a log naming an entry is published
// after it).
var names struct {
	mu   sync.Mutex
	idx  map[string]byte
	list atomic.Pointer[[]string]
}

const namesMax, nameMaxLen = 255, 32

func shareName(s string) (byte, bool) {
	if len(s) > nameMaxLen {
		return 0, false
	}
	names.mu.Lock()
	defer names.mu.Unlock()
	if i, ok := names.idx[s]; ok {
		return i, true
	}
	var list []string
	if l := names.list.Load(); l != nil {
		list = *l
	}
	if len(list) >= namesMax {
		return 0, false
	}
	if names.idx == nil {
		names.idx = map[string]byte{}
	}
	s = strings.Clone(s)
	grown := append(append(make([]string, 0, len(list)+1), list...), s)
	names.list.Store(&grown)
	names.idx[s] = byte(len(list))
	return byte(len(list)), true
}

// encodeActivity renders a person's activity (any order) as an index log,
// leaving out entries of unknown kinds.
func encodeActivity(acts []replica.Activity) string {
	return string(appendActivity(nil, 0, true, acts))
}

// mergeActivity returns log with its entries from since on replaced by
// fresh (all of the person's activity from since on, any order).
func mergeActivity(log string, since int64, fresh []replica.Activity) string {
	r := actReader{s: log}
	keep, prev := 0, int64(0)
	for r.p < len(r.s) {
		at := r.time()
		if at >= since {
			break
		}
		r.body(at)
		keep, prev = r.p, at
	}
	b := make([]byte, 0, keep+64*len(fresh))
	return string(appendActivity(append(b, log[:keep]...), prev, keep == 0, fresh))
}

// appendActivity appends entries (any order) to a log whose last entry is
// at prev (first: the log is empty), leaving out entries of unknown kinds.
func appendActivity(b []byte, prev int64, first bool, acts []replica.Activity) []byte {
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].At < acts[j].At })
	for i := range acts {
		a := &acts[i]
		k, ok := actKind(a.Kind)
		if !ok {
			continue
		}
		if first {
			b = binary.AppendUvarint(b, uint64(a.At<<1)^uint64(a.At>>63))
			first = false
		} else {
			b = binary.AppendUvarint(b, uint64(a.At-prev))
		}
		prev = a.At
		at := len(b)
		b = append(b, k)
		b = appendText(b, a.Opp)
		if k == actUpdated {
			b = appendName(b, at, actShared1, a.Field)
			b = appendValue(b, at, actShared2, a.Old)
			b = appendValue(b, at, actShared3, a.New)
			continue
		}
		if a.IsPrimary {
			b[at] |= actPrimary
		}
		b = appendName(b, at, actShared1, a.Role)
	}
	return b
}

func appendText(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendName appends s shared (setting flag in the head at b[head]) or as
// a text.
func appendName(b []byte, head int, flag byte, s string) []byte {
	if i, ok := shareName(s); ok {
		b[head] |= flag
		return append(b, i)
	}
	return appendText(b, s)
}

func appendValue(b []byte, head int, flag byte, v cdc.Value) []byte {
	b = append(b, byte(v.Kind))
	switch v.Kind {
	case cdc.KindNull:
	case cdc.KindNumber:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Num))
	case cdc.KindBool:
		if v.Bool {
			return append(b, 1)
		}
		return append(b, 0)
	default:
		return appendName(b, head, flag, v.Str)
	}
	return b
}

// actReader walks an index log.
type actReader struct {
	s       string
	p       int
	at      int64 // the time of the entry read last
	started bool
	names   []string
}

func (r *actReader) uvarint() uint64 {
	var x uint64
	for shift := 0; ; shift += 7 {
		c := r.s[r.p]
		r.p++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
}

// time reads an entry's time.
func (r *actReader) time() int64 {
	x := r.uvarint()
	if !r.started {
		r.at, r.started = int64(x>>1)^-int64(x&1), true
	} else {
		r.at += int64(x)
	}
	return r.at
}

func (r *actReader) text() string {
	n := int(r.uvarint())
	t := r.s[r.p : r.p+n]
	r.p += n
	return t
}

func (r *actReader) name(shared bool) string {
	if !shared {
		return r.text()
	}
	if r.names == nil {
		r.names = *names.list.Load()
	}
	r.p++
	return r.names[r.s[r.p-1]]
}

func (r *actReader) value(shared bool) cdc.Value {
	kind := cdc.Kind(r.s[r.p])
	r.p++
	switch kind {
	case cdc.KindNull:
		return cdc.Null
	case cdc.KindNumber:
		r.p += 8
		return cdc.Value{Kind: kind, Num: math.Float64frombits(binary.LittleEndian.Uint64([]byte(r.s[r.p-8 : r.p])))}
	case cdc.KindBool:
		r.p++
		return cdc.Value{Kind: kind, Bool: r.s[r.p-1] == 1}
	}
	return cdc.Value{Kind: kind, Str: r.name(shared)}
}

// entry reads one entry.
func (r *actReader) entry() (filters.Activity, byte) {
	return r.body(r.time())
}

// body reads an entry after its time.
func (r *actReader) body(at int64) (filters.Activity, byte) {
	head := r.s[r.p]
	r.p++
	k := head & 3
	a := filters.Activity{Kind: actKinds[k], OpportunityID: r.text(), At: at}
	if k == actUpdated {
		a.Field = r.name(head&actShared1 != 0)
		a.Old = r.value(head&actShared2 != 0)
		a.New = r.value(head&actShared3 != 0)
	} else {
		a.IsPrimary = head&actPrimary != 0
		a.Role = r.name(head&actShared1 != 0)
	}
	return a, k
}

// decodeActivity appends the entries of log within [since, until] and
// not before cutoff whose kind is in mask.
func decodeActivity(log string, since, until, cutoff int64, mask uint8, out []filters.Activity) []filters.Activity {
	since = max(since, cutoff)
	r := actReader{s: log}
	for r.p < len(r.s) {
		a, k := r.entry()
		if a.At > until {
			break // the log is in time order
		}
		if a.At < since || mask&(1<<k) == 0 {
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
	for first := true; r.p < len(r.s); first = false {
		at := r.time()
		if at >= cutoff {
			if first {
				return log, false
			}
			// The first entry kept carries its time whole.
			b := binary.AppendUvarint(nil, uint64(at<<1)^uint64(at>>63))
			return string(append(b, log[r.p:]...)), true
		}
		r.body(at)
	}
	return "", log != ""
}

// readActivityFrom reads each person's activity from since[i] on.
func (v *View) readActivityFrom(ctx context.Context, people []string, since []int64) ([][]replica.Activity, error) {
	out := make([][]replica.Activity, 0, len(people))
	for i := 0; i < len(people); i += v.cfg.Chunk {
		hi := min(i+v.cfg.Chunk, len(people))
		acts, err := v.r.ReadActivitySince(ctx, people[i:hi], since[i:hi], math.MaxInt64)
		if err != nil {
			return nil, err
		}
		out = append(out, acts...)
	}
	return out, nil
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
			out[i+j] = encodeActivity(acts[j])
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
