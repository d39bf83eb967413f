package state

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// batchScript applies one or more record changes in one call: it checks the
// partition position once, then each change's group revision, and runs the
// writes the Go side computed, stopping at the first change whose group
// moved. Running a call twice is refused by the same guards.
// It stores the position after the last change it applied and returns how
// many it applied, or -2 when the position was not the expected one.
//
// KEYS[1] positions hash, then every key the changes name.
// ARGV[1] position field ("" = none), ARGV[2] expected position ("" =
// absent), ARGV[3] number of changes, then per change: revision key index
// (0 = unguarded), expected revision, position after it ("" = unchanged),
// m, and m operation elements: command, key index, n, n arguments; two
// pseudo-commands keep repeated trigger fields (the opportunity snapshot above
// all) out of the arguments: "C" <id> defines a set of fields, "T" <key> <id>
// <fields...> is an XADD of the fields plus set id.
var batchScript = redis.NewScript(`
if ARGV[1] ~= '' then
  local pos = redis.call('HGET', KEYS[1], ARGV[1]) or ''
  if pos ~= ARGV[2] then return -2 end
end
local i = 4
local applied = 0
local last = nil
for c = 1, tonumber(ARGV[3]) do
  local rk = tonumber(ARGV[i])
  if rk > 0 then
    local rev = redis.call('HGET', KEYS[rk], '_rev') or '0'
    if rev ~= ARGV[i + 1] then break end
  end
  local newPos = ARGV[i + 2]
  local stop = i + 3 + tonumber(ARGV[i + 3])
  local j = i + 4
  local common = {}
  while j <= stop do
    local cmd, n = ARGV[j], tonumber(ARGV[j + 2])
    if cmd == 'C' then
      common[ARGV[j + 1]] = {unpack(ARGV, j + 3, j + 2 + n)}
    elseif cmd == 'T' then
      local args = {unpack(ARGV, j + 4, j + 2 + n)}
      for _, v in ipairs(common[ARGV[j + 3]]) do args[#args + 1] = v end
      redis.call('XADD', KEYS[tonumber(ARGV[j + 1])], unpack(args))
    else
      redis.call(cmd, KEYS[tonumber(ARGV[j + 1])], unpack(ARGV, j + 3, j + 2 + n))
    end
    j = j + 3 + n
  end
  if rk > 0 then redis.call('HINCRBY', KEYS[rk], '_rev', 1) end
  if newPos ~= '' then last = newPos end
  applied = c
  i = stop + 1
end
if ARGV[1] ~= '' and last then redis.call('HSET', KEYS[1], ARGV[1], last) end
return applied
`)

// Bounds of one batch script call, so that Redis is never blocked long.
const (
	chunkChanges = 64
	chunkArgs    = 16384
)

// chunk is one batch script call built from consecutive planned changes.
type chunk struct {
	keys    []string
	keyIdx  map[string]int
	args    []any
	changes int
	first   int // index of its first change in the batch
}

func newChunk(positionsKey, field, expect string, first int) *chunk {
	return &chunk{
		keys:   []string{positionsKey},
		keyIdx: map[string]int{positionsKey: 1},
		args:   []any{field, expect, 0},
		first:  first,
	}
}

func (c *chunk) key(k string) int {
	if i, ok := c.keyIdx[k]; ok {
		return i
	}
	c.keys = append(c.keys, k)
	c.keyIdx[k] = len(c.keys)
	return len(c.keys)
}

// add appends one change, remapping its key indexes to the chunk's.
func (c *chunk) add(t *tx) {
	rk := 0
	if t.rev != "*" {
		rk = c.key(t.keys[0])
	}
	c.args = append(c.args, rk, t.rev, t.posNew, 0)
	lenAt := len(c.args) - 1
	start := len(c.args)
	for i := 0; i < len(t.ops); {
		cmd := t.ops[i].(string)
		n := t.ops[i+2].(int)
		ref := t.ops[i+1]
		if cmd != "C" {
			ref = c.key(t.keys[ref.(int)-1])
		}
		c.args = append(c.args, cmd, ref, n)
		c.args = append(c.args, t.ops[i+3:i+3+n]...)
		i += 3 + n
	}
	c.args[lenAt] = len(c.args) - start
	c.changes++
	c.args[2] = c.changes
}

// chunks groups planned changes into batch script calls; each expects the
// position the previous one leaves.
func (s *Store) chunks(txs []plannedTx, field, stored string) []*chunk {
	var out []*chunk
	var cur *chunk
	expect := stored
	for i, t := range txs {
		if cur == nil || cur.changes >= chunkChanges || len(cur.args) >= chunkArgs {
			cur = newChunk(s.k.positions(), field, expect, i)
			out = append(out, cur)
		}
		cur.add(t.tx)
		if t.tx.posField != "" {
			expect = t.tx.posNew
		}
	}
	return out
}

func (c *chunk) run(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	return batchScript.EvalSha(ctx, pipe, c.keys, c.args...)
}
