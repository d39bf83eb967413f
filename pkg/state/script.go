package state

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// applyScript is a guarded executor: it checks the group revision and the
// partition position it is given, and only then runs the writes the Go side
// computed, bumps the revision and stores the new position. Returns 1 when
// applied, -1 on a revision conflict, -2 on a position conflict.
//
// KEYS[1] revision holder (opportunity hash), KEYS[2] positions hash, then
// the keys the operations name by index.
// ARGV[1] expected revision ("*" = no revision check and no bump),
// ARGV[2] position field ("" = none), ARGV[3] expected position ("" = absent),
// ARGV[4] new position, then operations: command, key index, n, n arguments.
// Two pseudo-commands keep repeated trigger fields (the opportunity
// snapshot above all) out of the arguments: "C" <id> defines a set of
// fields, "T" <key> <id> <fields...> is an XADD of fields plus set id.
var applyScript = redis.NewScript(`
if ARGV[1] ~= '*' then
  local rev = redis.call('HGET', KEYS[1], '_rev') or '0'
  if rev ~= ARGV[1] then return -1 end
end
if ARGV[2] ~= '' then
  local pos = redis.call('HGET', KEYS[2], ARGV[2]) or ''
  if pos ~= ARGV[3] then return -2 end
end
local i = 5
local n = #ARGV
local common = {}
while i <= n do
  local cmd, c = ARGV[i], tonumber(ARGV[i + 2])
  if cmd == 'C' then
    -- Define a set of fields shared by the trigger entries that follow.
    common[ARGV[i + 1]] = {unpack(ARGV, i + 3, i + 2 + c)}
  elseif cmd == 'T' then
    -- XADD whose first argument names a common set appended to the rest.
    local args = {unpack(ARGV, i + 4, i + 2 + c)}
    for _, v in ipairs(common[ARGV[i + 3]]) do args[#args + 1] = v end
    redis.call('XADD', KEYS[tonumber(ARGV[i + 1])], unpack(args))
  else
    redis.call(cmd, KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + c))
  end
  i = i + 3 + c
end
if ARGV[1] ~= '*' then redis.call('HINCRBY', KEYS[1], '_rev', 1) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) end
return 1
`)

// Script results.
const (
	scriptApplied     = 1
	scriptRevConflict = -1
	scriptPosConflict = -2
)

// tx collects the guarded writes of one script call.
type tx struct {
	keys   []string
	keyIdx map[string]int
	ops    []any
	nops   int
	rev    string // expected revision or "*"
	// position guard
	posField, posExpect, posNew string
}

func newTx(revKey string, rev int64, positionsKey string) *tx {
	t := &tx{keys: []string{revKey, positionsKey}, keyIdx: map[string]int{revKey: 1, positionsKey: 2}}
	t.rev = strconv.FormatInt(rev, 10)
	return t
}

// newUnguardedTx builds a script with no revision check (dead letters,
// position-only writes).
func newUnguardedTx(positionsKey string) *tx {
	t := &tx{keys: []string{positionsKey, positionsKey}, keyIdx: map[string]int{positionsKey: 1}, rev: "*"}
	return t
}

func (t *tx) key(k string) int {
	if i, ok := t.keyIdx[k]; ok {
		return i
	}
	t.keys = append(t.keys, k)
	t.keyIdx[k] = len(t.keys)
	return len(t.keys)
}

// op appends one Redis command to run on key.
func (t *tx) op(cmd, key string, args ...any) {
	t.ops = append(t.ops, cmd, t.key(key), len(args))
	t.ops = append(t.ops, args...)
	t.nops++
}

// common defines a shared field set for trigger entries; "C" ignores its key.
func (t *tx) common(id string, fields ...any) {
	t.ops = append(t.ops, "C", id, len(fields))
	t.ops = append(t.ops, fields...)
	t.nops++
}

// trigger appends an XADD of fields followed by the common set id.
func (t *tx) trigger(key, id string, fields ...any) {
	t.ops = append(t.ops, "T", t.key(key), len(fields)+1, id)
	t.ops = append(t.ops, fields...)
	t.nops++
}

func (t *tx) guardPosition(field, expect, next string) {
	t.posField, t.posExpect, t.posNew = field, expect, next
}

func (t *tx) argv() []any {
	a := make([]any, 0, 4+len(t.ops))
	a = append(a, t.rev, t.posField, t.posExpect, t.posNew)
	return append(a, t.ops...)
}

func (t *tx) run(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return applyScript.EvalSha(ctx, pipe, t.keys, t.argv()...)
}
