package state

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Script results of a one-change call (see batchScript): applied, or the
// partition position was not the expected one (a moved group returns 0).
const (
	scriptApplied     = 1
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

// run queues t as a one-change batch script call.
func (t *tx) run(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	c := newChunk(t.keys[1], t.posField, t.posExpect, 0)
	c.add(t)
	return c.run(ctx, pipe)
}
