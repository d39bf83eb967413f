package state

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// applyScript runs one tx: it checks the partition position and the
// revision of every group the tx writes, and writes nothing unless all of
// them are what the caller read; then it runs the tx's commands and stores
// the position after the last message the tx completed. Running a call twice
// is refused by the same guards.
//
// It returns 1 when it wrote, 0 when a group moved, -2 when the position was
// not the expected one.
//
// KEYS[1] positions hash, KEYS[2] revisions hash, then every key the
// commands name. ARGV[1] position field ("" = none), ARGV[2] expected
// position ("" = absent), ARGV[3] position to store ("" = unchanged),
// ARGV[4] number of guarded groups g, then the g group ids, then their g
// expected revisions, then commands:
// name, key index, n, n arguments. Two pseudo-commands keep repeated trigger
// fields (the opportunity snapshot above all) out of the arguments: "C" <id>
// defines a set of fields, "T" <key> <id> <18 fields> is an XADD of the 18
// fields followed by the set.
var applyScript = redis.NewScript(`
if ARGV[1] ~= '' then
  local pos = redis.call('HGET', KEYS[1], ARGV[1]) or ''
  if pos ~= ARGV[2] then return -2 end
end
local ng = tonumber(ARGV[4])
if ng > 0 then
  local revs = redis.call('HMGET', KEYS[2], unpack(ARGV, 5, 4 + ng))
  for g = 1, ng do
    if (revs[g] or '0') ~= ARGV[4 + ng + g] then return 0 end
  end
end
local i = 5 + 2 * ng
local common = {}
local last = #ARGV
while i <= last do
  local cmd, n = ARGV[i], tonumber(ARGV[i + 2])
  if cmd == 'T' then
    local a = i + 4
    redis.call('XADD', KEYS[tonumber(ARGV[i + 1])], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
      ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9], ARGV[a + 10],
      ARGV[a + 11], ARGV[a + 12], ARGV[a + 13], ARGV[a + 14], ARGV[a + 15], ARGV[a + 16], ARGV[a + 17],
      unpack(common[ARGV[i + 3]]))
  elseif cmd == 'C' then
    common[ARGV[i + 1]] = {unpack(ARGV, i + 3, i + 2 + n)}
  else
    redis.call(cmd, KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + n))
  end
  i = i + 3 + n
end
if ARGV[1] ~= '' and ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`)

// Script results (see applyScript).
const (
	scriptApplied     = 1
	scriptMoved       = 0
	scriptPosConflict = -2
)

// triggerFields is how many fields of its own a "T" entry carries.
const triggerFields = 18

// Bounds of one script call, so that Redis is never blocked long.
const (
	defaultTxChanges = 64
	txArgs           = 16384
	maxCommandArgs   = 1024
)

// tx is one script call: the writes of one or more consecutive record
// changes, merged so that each key is written once per call (the last write
// of a hash field, set or sorted-set member wins, increments add up, stream
// entries keep their order). Since the script writes all of them or none,
// merging cannot be observed.
type tx struct {
	keys   []string
	keyIdx map[string]int

	revsKey string
	guards  []any // group ids
	expects []any // their expected revisions
	guarded map[string]bool

	hashes   ordered[*memberSet] // HSET / HDEL
	sets     ordered[*memberSet] // SADD / SREM
	zsets    ordered[*memberSet] // ZADD / ZREM, value = score
	zmax     ordered[*maxSet]    // ZADD GT
	zincr    ordered[*incrSet]   // ZINCRBY
	zappend  ordered[*[]any]     // ZADD of new members (score, member pairs)
	entries  []any               // XADD, C and T commands in order
	notes    []string            // opportunities written, for the changes stream
	noted    map[string]bool
	nCommon  int
	rendered []any

	changes    int // record changes in the call
	maxChanges int
	groups     []string // opportunity groups it writes
	counts     BatchResult

	// position guard
	posField, posExpect, posNew string
}

func newTx(k keys, field, expect string) *tx {
	return &tx{
		maxChanges: defaultTxChanges,
		revsKey:    k.revs(),
		keys:       []string{k.positions(), k.revs()},
		keyIdx:     map[string]int{k.positions(): 1, k.revs(): 2},
		guarded:    map[string]bool{},
		noted:      map[string]bool{},
		posField:   field, posExpect: expect,
	}
}

func (t *tx) key(k string) int {
	if i, ok := t.keyIdx[k]; ok {
		return i
	}
	t.keys = append(t.keys, k)
	t.keyIdx[k] = len(t.keys)
	return len(t.keys)
}

// empty reports a tx with nothing to write and no position to store.
func (t *tx) empty() bool {
	return t.posNew == "" && len(t.guards) == 0 && len(t.entries) == 0 && t.hashes.len() == 0 &&
		t.sets.len() == 0 && t.zsets.len() == 0 && t.zmax.len() == 0 && t.zincr.len() == 0 && t.zappend.len() == 0
}

// full reports a tx that should not take more changes.
func (t *tx) full() bool {
	return t.changes >= t.maxChanges || len(t.entries) >= txArgs
}

// guard makes the call conditional on the group's revision (the first one
// given for a group in this call) and stores rev+1 as the new one.
func (t *tx) guard(group string, rev int64) {
	if !t.guarded[group] {
		t.guarded[group] = true
		t.guards = append(t.guards, group)
		t.expects = append(t.expects, strconv.FormatInt(rev, 10))
		t.groups = append(t.groups, group)
	}
	t.hset(t.revsKey, group, strconv.FormatInt(rev+1, 10))
}

func (t *tx) hset(key string, fv ...string) {
	h := t.hashes.get(key, newMemberSet)
	for i := 0; i+1 < len(fv); i += 2 {
		h.set(fv[i], fv[i+1])
	}
}

func (t *tx) hdel(key, field string)  { t.hashes.get(key, newMemberSet).del(field) }
func (t *tx) sadd(key, member string) { t.sets.get(key, newMemberSet).set(member, "") }
func (t *tx) srem(key, member string) { t.sets.get(key, newMemberSet).del(member) }
func (t *tx) zadd(key string, score int64, member string) {
	t.zsets.get(key, newMemberSet).set(member, strconv.FormatInt(score, 10))
}
func (t *tx) zrem(key, member string) { t.zsets.get(key, newMemberSet).del(member) }

// zaddGT raises member's score to at least score.
func (t *tx) zaddGT(key string, score int64, member string) {
	m := t.zmax.get(key, func() *maxSet { return &maxSet{m: map[string]int64{}} })
	if old, ok := m.m[member]; !ok {
		m.order = append(m.order, member)
		m.m[member] = score
	} else if score > old {
		m.m[member] = score
	}
}

func (t *tx) zincrby(key string, delta float64, member string) {
	m := t.zincr.get(key, func() *incrSet { return &incrSet{m: map[string]float64{}} })
	if _, ok := m.m[member]; !ok {
		m.order = append(m.order, member)
	}
	m.m[member] += delta
}

// zaddNew adds members that no other write of the call names (score,
// member pairs).
func (t *tx) zaddNew(key string, pairs ...any) {
	p := t.zappend.get(key, func() *[]any { return new([]any) })
	*p = append(*p, pairs...)
}

// xadd appends a stream entry.
func (t *tx) xadd(key string, args ...any) {
	t.entries = append(t.entries, "XADD", t.key(key), len(args))
	t.entries = append(t.entries, args...)
}

// common defines a shared field set for trigger entries and returns its id.
func (t *tx) common(fields ...any) string {
	id := strconv.Itoa(t.nCommon)
	t.nCommon++
	t.entries = append(t.entries, "C", id, len(fields))
	t.entries = append(t.entries, fields...)
	return id
}

// trigger appends an XADD of fields (exactly triggerFields of them)
// followed by the common set id.
func (t *tx) trigger(key, id string, fields ...any) {
	if len(fields) != triggerFields {
		panic("state: a trigger entry takes " + strconv.Itoa(triggerFields) + " fields, got " + strconv.Itoa(len(fields)))
	}
	t.entries = append(t.entries, "T", t.key(key), len(fields)+1, id)
	t.entries = append(t.entries, fields...)
}

// note records that the call wrote an opportunity group.
func (t *tx) note(oppID string) {
	if !t.noted[oppID] {
		t.noted[oppID] = true
		t.notes = append(t.notes, oppID)
	}
}

// args renders the call's arguments (see applyScript).
func (t *tx) args(changesKey string) []any {
	if t.rendered != nil {
		return t.rendered
	}
	if len(t.notes) > 0 {
		t.xadd(changesKey, "MAXLEN", "~", changesMaxLen, "*", "opps", strings.Join(t.notes, " "))
		t.notes, t.noted = nil, map[string]bool{}
	}
	args := make([]any, 0, 4+2*len(t.guards)+len(t.entries)+64)
	args = append(args, t.posField, t.posExpect, t.posNew, len(t.guards))
	args = append(args, t.guards...)
	args = append(args, t.expects...)
	// cmd appends one command, split into several when its arguments are
	// many (Lua's unpack has a limit); unit keeps pairs together and head
	// (a ZADD flag) is repeated.
	cmd := func(name, key string, a []any) {
		head, unit := 0, 1
		switch name {
		case "HSET", "ZADD":
			unit = 2
			if len(a)%2 == 1 {
				head = 1
			}
		}
		for from := head; from < len(a); {
			to := min(len(a), from+maxCommandArgs/unit*unit)
			args = append(args, name, t.key(key), head+to-from)
			args = append(args, a[:head]...)
			args = append(args, a[from:to]...)
			from = to
		}
	}
	for _, k := range t.hashes.keys {
		set, del := t.hashes.m[k].split(false)
		cmd("HSET", k, set)
		cmd("HDEL", k, del)
	}
	for _, k := range t.sets.keys {
		add, rem := t.sets.m[k].split(true)
		cmd("SADD", k, add)
		cmd("SREM", k, rem)
	}
	for _, k := range t.zsets.keys {
		add, rem := t.zsets.m[k].splitScored()
		cmd("ZADD", k, add)
		cmd("ZREM", k, rem)
	}
	for _, k := range t.zappend.keys {
		cmd("ZADD", k, *t.zappend.m[k])
	}
	for _, k := range t.zmax.keys {
		m := t.zmax.m[k]
		a := make([]any, 0, 1+2*len(m.order))
		a = append(a, "GT")
		for _, member := range m.order {
			a = append(a, m.m[member], member)
		}
		cmd("ZADD", k, a)
	}
	for _, k := range t.zincr.keys {
		m := t.zincr.m[k]
		for _, member := range m.order {
			if d := m.m[member]; d != 0 {
				cmd("ZINCRBY", k, []any{cdc.FormatNumber(d), member})
			}
		}
	}
	t.rendered = append(args, t.entries...)
	return t.rendered
}

// run queues the call on pipe.
func (t *tx) run(ctx context.Context, pipe redis.Pipeliner, changesKey string) *redis.Cmd {
	args := t.args(changesKey)
	return applyScript.EvalSha(ctx, pipe, t.keys, args...)
}

// ordered is a map that remembers the order its keys were first used in,
// so that the commands of a call come out in a stable order.
type ordered[V any] struct {
	keys []string
	m    map[string]V
}

func (o *ordered[V]) get(key string, mk func() V) V {
	if v, ok := o.m[key]; ok {
		return v
	}
	if o.m == nil {
		o.m = map[string]V{}
	}
	v := mk()
	o.m[key] = v
	o.keys = append(o.keys, key)
	return v
}

func (o *ordered[V]) len() int { return len(o.keys) }

// memberSet holds the last write of each field or member: a value, or a
// removal.
type memberSet struct {
	order []string
	m     map[string]memberWrite
}

type memberWrite struct {
	val     string
	removed bool
}

func newMemberSet() *memberSet { return &memberSet{m: map[string]memberWrite{}} }

func (s *memberSet) set(k, v string) {
	if _, ok := s.m[k]; !ok {
		s.order = append(s.order, k)
	}
	s.m[k] = memberWrite{val: v}
}

func (s *memberSet) del(k string) {
	if _, ok := s.m[k]; !ok {
		s.order = append(s.order, k)
	}
	s.m[k] = memberWrite{removed: true}
}

// split returns the field/value pairs (or, for sets, the members) to write
// and the fields or members to remove.
func (s *memberSet) split(membersOnly bool) (set, del []any) {
	for _, k := range s.order {
		w := s.m[k]
		switch {
		case w.removed:
			del = append(del, k)
		case membersOnly:
			set = append(set, k)
		default:
			set = append(set, k, w.val)
		}
	}
	return set, del
}

// splitScored returns score/member pairs to add and members to remove.
func (s *memberSet) splitScored() (add, rem []any) {
	for _, k := range s.order {
		if w := s.m[k]; w.removed {
			rem = append(rem, k)
		} else {
			add = append(add, w.val, k)
		}
	}
	return add, rem
}

type maxSet struct {
	order []string
	m     map[string]int64
}

type incrSet struct {
	order []string
	m     map[string]float64
}
