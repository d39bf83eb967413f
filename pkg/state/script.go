package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/replica"
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
// defines a set of fields, "T" <key> <id> <15 fields> is an XADD of the 15
// fields (the id "*" first) followed by the set. Two more serve campaigns
// (state/campaigns.go): "R" <key> 1 <rev>, first when present, refuses the
// call (-3) unless the campaigns revision is rev; "Q" <stream> <n> <marks>
// <qualified> <campaign> <rule> <window> <person> <at> <maxlen> <common id>
// <field, value pairs> writes a campaign entry unless the qualification
// rule (e every time, o once, w every window ms) keeps the person out, and
// then the call returns {1, one flag per Q: 1 written, 0 not}.
var applyScript = redis.NewScript(applyScriptSource)

const applyScriptSource = `
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
local qs = {}
local last = #ARGV
while i <= last do
  local cmd, n = ARGV[i], tonumber(ARGV[i + 2])
  if cmd == 'R' then
    if (redis.call('GET', KEYS[tonumber(ARGV[i + 1])]) or '0') ~= ARGV[i + 3] then return -3 end
  elseif cmd == 'Q' then
    local a = i + 3
    local marks, person, at = KEYS[tonumber(ARGV[a])], ARGV[a + 5], tonumber(ARGV[a + 6])
    local rule, go = ARGV[a + 3], true
    if rule ~= 'e' then
      local seen = tonumber(redis.call('HGET', marks, person) or '')
      if seen and (rule == 'o' or seen > at - tonumber(ARGV[a + 4])) then go = false end
      if go and (not seen or at > seen) then redis.call('HSET', marks, person, ARGV[a + 6]) end
    end
    if go then
      local f = {unpack(ARGV, a + 9, i + 2 + n)}
      local c = common[ARGV[a + 8]]
      for j = 1, #c, 2 do
        if c[j] ~= 'opportunity_id' and c[j] ~= 'occurred_at' then
          f[#f + 1] = c[j]
          f[#f + 1] = c[j + 1]
        end
      end
      redis.call('XADD', KEYS[tonumber(ARGV[i + 1])], 'MAXLEN', '~', ARGV[a + 7], '*', unpack(f))
      redis.call('HINCRBY', KEYS[tonumber(ARGV[a + 1])], ARGV[a + 2], 1)
      qs[#qs + 1] = 1
    else
      qs[#qs + 1] = 0
    end
  elseif cmd == 'T' then
    local a = i + 4
    redis.call('XADD', KEYS[tonumber(ARGV[i + 1])], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
      ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9], ARGV[a + 10],
      ARGV[a + 11], ARGV[a + 12], ARGV[a + 13], ARGV[a + 14],
      unpack(common[ARGV[i + 3]]))
  elseif cmd == 'C' then
    common[ARGV[i + 1]] = {unpack(ARGV, i + 3, i + 2 + n)}
  else
    redis.call(cmd, KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + n))
  end
  i = i + 3 + n
end
if ARGV[1] ~= '' and ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
if #qs > 0 then
  table.insert(qs, 1, 1)
  return qs
end
return 1
`

// Script results (see applyScript).
const (
	scriptApplied     = 1
	scriptMoved       = 0
	scriptPosConflict = -2
	// scriptCampaignsMoved: the campaign definitions changed since the
	// call was built.
	scriptCampaignsMoved = -3
)

// triggerFields is how many fields of its own a "T" entry carries.
const triggerFields = 15

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
	k      replica.Keys
	keys   []string
	keyIdx map[string]int

	groups  []string // the groups it writes, guarded by their revision
	expects []any    // the revision each of them must have
	guarded map[string]bool

	hashes  ordered[ordered[write]] // HSET / HDEL
	sets    ordered[ordered[write]] // SADD / SREM
	zsets   ordered[ordered[write]] // ZADD / ZREM, value = score
	zmax    ordered[ordered[int64]] // ZADD GT
	zappend ordered[[]any]          // ZADD of new members (score, member pairs)
	entries []any                   // XADD, C and T commands in order
	notes   ordered[struct{}]       // groups written, for the changes stream
	acts    ordered[int64]          // people whose activity it writes → the oldest time written, for the changes stream
	nCommon int

	changes  int // record changes in the call
	counts   BatchResult
	rendered []any

	// position guard
	posField, posExpect, posNew string

	// campaigns: what they are evaluated with, and what the call carries
	// for them (nil: none).
	cs   *campaignState
	camp *campaignTx
}

func newTx(k replica.Keys, field, expect string) *tx {
	return &tx{
		k:        k,
		keys:     []string{k.Positions(), k.Revs()},
		keyIdx:   map[string]int{k.Positions(): 1, k.Revs(): 2},
		guarded:  map[string]bool{},
		posField: field, posExpect: expect,
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

// full reports a tx that should not take more changes than max.
func (t *tx) full(max int) bool {
	return t.changes >= max || len(t.entries) >= txArgs
}

// guard makes the call conditional on the group's revision (the first one
// given for a group in this call) and stores rev+1 as the new one.
func (t *tx) guard(group string, l *loaded) {
	if !t.guarded[group] {
		t.guarded[group] = true
		t.groups = append(t.groups, group)
		expect := strconv.FormatInt(l.rev, 10)
		if l.badRev != "" {
			expect = l.badRev
		}
		t.expects = append(t.expects, expect)
	}
	l.badRev = "" // replaced by this call
	t.hset(t.k.Revs(), group, strconv.FormatInt(l.rev+1, 10))
}

func (t *tx) hset(key string, fv ...string) {
	h := t.hashes.at(key)
	for i := 0; i+1 < len(fv); i += 2 {
		*h.at(fv[i]) = write{val: fv[i+1]}
	}
}

func (t *tx) hdel(key, field string)  { *t.hashes.at(key).at(field) = write{removed: true} }
func (t *tx) sadd(key, member string) { *t.sets.at(key).at(member) = write{} }
func (t *tx) srem(key, member string) { *t.sets.at(key).at(member) = write{removed: true} }
func (t *tx) zadd(key string, score int64, member string) {
	*t.zsets.at(key).at(member) = write{val: strconv.FormatInt(score, 10)}
}
func (t *tx) zrem(key, member string) { *t.zsets.at(key).at(member) = write{removed: true} }

// zaddGT raises member's score to at least score.
func (t *tx) zaddGT(key string, score int64, member string) {
	m := t.zmax.at(key)
	_, seen := m.m[member]
	if v := m.at(member); !seen || score > *v {
		*v = score
	}
}

// zaddNew adds members that no other write of the call names (score,
// member pairs).
func (t *tx) zaddNew(key string, pairs ...any) {
	p := t.zappend.at(key)
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
func (t *tx) note(oppID string) { t.notes.at(oppID) }

// wroteActivity records that the call writes a person's activity, the
// oldest entry at time at (ms).
func (t *tx) wroteActivity(person string, at int64) {
	_, seen := t.acts.m[person]
	if v := t.acts.at(person); !seen || at < *v {
		*v = at
	}
}

// args renders the call's arguments (see applyScript) the first time it is
// called; the tx takes no more writes after that.
func (t *tx) args() []any {
	if t.rendered != nil {
		return t.rendered
	}
	args := make([]any, 0, 4+2*len(t.groups)+len(t.entries)+64)
	args = append(args, t.posField, t.posExpect, t.posNew, len(t.groups))
	for _, g := range t.groups {
		args = append(args, g)
	}
	args = append(args, t.expects...)
	if t.camp != nil {
		// First of the commands: the script checks it before any write.
		args = append(args, "R", t.key(t.camp.k.Rev()), 1, t.camp.rev)
	}
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
	// writeRemove renders a set of last writes as one command for the
	// written members and one for the removed ones.
	writeRemove := func(w ordered[ordered[write]], set, remove string, pair func(m string, w write) []any) {
		for _, k := range w.keys {
			var add, rem []any
			for _, m := range w.m[k].keys {
				if v := w.m[k].m[m]; v.removed {
					rem = append(rem, m)
				} else {
					add = append(add, pair(m, *v)...)
				}
			}
			cmd(set, k, add)
			cmd(remove, k, rem)
		}
	}
	writeRemove(t.hashes, "HSET", "HDEL", func(m string, w write) []any { return []any{m, w.val} })
	writeRemove(t.sets, "SADD", "SREM", func(m string, _ write) []any { return []any{m} })
	writeRemove(t.zsets, "ZADD", "ZREM", func(m string, w write) []any { return []any{w.val, m} })
	for _, k := range t.zappend.keys {
		cmd("ZADD", k, *t.zappend.m[k])
	}
	for _, k := range t.zmax.keys {
		m := t.zmax.m[k]
		a := make([]any, 0, 1+2*len(m.keys))
		a = append(a, "GT")
		for _, member := range m.keys {
			a = append(a, *m.m[member], member)
		}
		cmd("ZADD", k, a)
	}
	args = append(args, t.entries...)
	if len(t.notes.keys) > 0 {
		// Readers of the replica tail the changes stream: one entry per call.
		entry := []any{"MAXLEN", "~", replica.ChangesMaxLen, "*", "opps", strings.Join(t.notes.keys, " "),
			"acts", replica.FormatActs(t.acts.keys, t.acts.m)}
		args = append(args, "XADD", t.key(t.k.Stream(replica.StreamChanges)), len(entry))
		args = append(args, entry...)
	}
	t.rendered = args
	return args
}

// send is the one executor of script calls: it runs txs in order in one
// pipeline and returns one reply per call (read it with applied).
//
// Its NOSCRIPT policy: Redis answers NOSCRIPT when it lost its script
// cache (a restart, a failover, SCRIPT FLUSH) and then runs nothing of the
// call. send loads the script again (Init) and sends the calls that got
// NOSCRIPT once more, in their order, in one pipeline. Sending one of them
// again cannot write twice: it did not run, and even a call that did is
// refused by its guards (see applyScript). A call still failing after
// that keeps its error (the reload's, if the reload failed); callers treat
// it like any other error of the call.
func (s *Store) send(ctx context.Context, txs []*tx) []*redis.Cmd {
	cmds := s.pipeline(ctx, txs)
	if s.camps != nil {
		defer func() { campaignReplies(txs, cmds, s.cfg.Now()) }()
	}
	var lost []int // calls answered NOSCRIPT
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			lost = append(lost, i)
		}
	}
	if len(lost) == 0 {
		return cmds
	}
	if err := s.Init(ctx); err != nil {
		for _, i := range lost {
			cmds[i].SetErr(fmt.Errorf("%w (after NOSCRIPT)", err))
		}
		return cmds
	}
	again := make([]*tx, len(lost))
	for j, i := range lost {
		again[j] = txs[i]
	}
	for j, c := range s.pipeline(ctx, again) {
		cmds[lost[j]] = c
	}
	return cmds
}

// pipeline sends txs in order in one pipeline and returns their replies.
func (s *Store) pipeline(ctx context.Context, txs []*tx) []*redis.Cmd {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(txs))
	for i, t := range txs {
		args := t.args() // may add keys
		cmds[i] = s.script.EvalSha(ctx, pipe, t.keys, args...)
	}
	_, _ = pipe.Exec(ctx)
	return cmds
}

// applied reads a reply of send: true when the call wrote, false with a
// nil error when a guard refused it (a group or the position moved).
func applied(c *redis.Cmd) (bool, error) {
	if flags, ok := c.Val().([]any); ok && c.Err() == nil && len(flags) > 0 {
		n, _ := flags[0].(int64) // a call that wrote campaign entries
		return n == scriptApplied, nil
	}
	n, err := c.Int()
	if err != nil {
		return false, err
	}
	return n == scriptApplied, nil
}

// ordered is a map that remembers the order its keys were first used in,
// so that the commands of a call come out in a stable order.
type ordered[V any] struct {
	keys []string
	m    map[string]*V
}

// at returns key's value, adding a zero one when the key is new.
func (o *ordered[V]) at(key string) *V {
	if v, ok := o.m[key]; ok {
		return v
	}
	if o.m == nil {
		o.m = map[string]*V{}
	}
	v := new(V)
	o.m[key] = v
	o.keys = append(o.keys, key)
	return v
}

// write is the last write of a hash field or set member: a value, or a
// removal.
type write struct {
	val     string
	removed bool
}
