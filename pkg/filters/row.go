package filters

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// columns numbers field names for compact rows; it only grows, with the
// (bounded) set of field names ever seen.
var columns struct {
	sync.RWMutex
	idx map[string]int
}

func column(name string) int {
	columns.RLock()
	i, ok := columns.idx[name]
	columns.RUnlock()
	if ok {
		return i
	}
	columns.Lock()
	defer columns.Unlock()
	if columns.idx == nil {
		columns.idx = map[string]int{}
	}
	if i, ok := columns.idx[name]; ok {
		return i
	}
	i = len(columns.idx)
	columns.idx[name] = i
	return i
}

// A compact row is one immutable string holding an opportunity's id and
// its fields by column:
//
//	id | w | n | n offsets | values
//
// w (one byte, 2 or 4) is the width of n and of each offset, little
// endian; the offset of column c (from the row's start) points at its
// value, 0 meaning null. A value is a tag byte and its payload:
//
//	rowNumber  8 bytes, the float64's bits
//	rowFalse, rowTrue  nothing
//	rowText    the kind (string, date or date-time), a uvarint length, the text
//	rowShared  one byte: the index of the value in the column's shared table
//
// Text values read back as substrings of the row, so reading a field never
// allocates. Short text values (picklists, dates) are kept once per column
// in a shared table of at most sharedMax values, filled first come first
// served: memory bounded whatever the data, and no per-opportunity copy
// of the values most opportunities repeat.
const (
	rowNumber byte = 1 + iota
	rowFalse
	rowTrue
	rowText
	rowShared
)

const (
	sharedMax    = 255 // values per column table
	sharedMaxLen = 64  // longest text value shared
	roleNamesMax = 4096
)

// shared holds the per-column tables of shared values. A table's entries
// are written once, under mu, before any row names them; rows are
// published to readers through their owner's synchronisation (the view's
// lock), so readers take no lock.
var shared struct {
	mu     sync.Mutex
	idx    map[sharedKey]byte
	used   []int
	tables atomic.Pointer[[]*[sharedMax]cdc.Value]
}

type sharedKey struct {
	col  int
	kind cdc.Kind
	str  string
}

// share returns the index of v in col's table, adding it when there is
// room; ok is false when the table is full.
func share(col int, v cdc.Value) (byte, bool) {
	k := sharedKey{col, v.Kind, v.Str}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if i, ok := shared.idx[k]; ok {
		return i, true
	}
	for len(shared.used) <= col {
		shared.used = append(shared.used, 0)
	}
	if shared.used[col] >= sharedMax {
		return 0, false
	}
	var tables []*[sharedMax]cdc.Value
	if t := shared.tables.Load(); t != nil {
		tables = *t
	}
	if col >= len(tables) || tables[col] == nil {
		grown := make([]*[sharedMax]cdc.Value, max(len(tables), col+1))
		copy(grown, tables)
		grown[col] = new([sharedMax]cdc.Value)
		tables = grown
		shared.tables.Store(&grown)
	}
	if shared.idx == nil {
		shared.idx = map[sharedKey]byte{}
	}
	i := byte(shared.used[col])
	k.str = strings.Clone(v.Str)
	tables[col][i] = cdc.Value{Kind: v.Kind, Str: k.str}
	shared.idx[k] = i
	shared.used[col]++
	return i, true
}

func sharedValue(col int, i byte) cdc.Value {
	return (*shared.tables.Load())[col][i]
}

// roleNames interns contact role names (a picklist): at most roleNamesMax.
var roleNames struct {
	sync.Mutex
	m map[string]string
}

func roleName(s string) string {
	roleNames.Lock()
	defer roleNames.Unlock()
	if c, ok := roleNames.m[s]; ok {
		return c
	}
	if roleNames.m == nil {
		roleNames.m = map[string]string{}
	}
	if len(roleNames.m) >= roleNamesMax {
		return s
	}
	c := strings.Clone(s)
	roleNames.m[c] = c
	return c
}

// Compact stores the id and fields as one compact row (see above), which
// takes a fraction of the memory of the Fields map and evaluates faster
// over many opportunities, drops the Fields map and interns the roles'
// names. Call it only on opportunities nobody reads Fields of again
// (Value and FieldMap keep working), before publishing o.
func (o *Opportunity) Compact() {
	if o.row != "" {
		return
	}
	type cell struct {
		col int
		v   cdc.Value
	}
	cells := make([]cell, 0, len(o.Fields))
	n, size := 0, len(o.ID)
	for k, v := range o.Fields {
		if v.IsNull() {
			continue // reads as null when absent
		}
		c := column(k)
		cells = append(cells, cell{c, v})
		n = max(n, c+1)
		size += 10 + len(v.Str)
	}
	w := 2
	if size+2*n+3 > math.MaxUint16 {
		w = 4
	}
	head := len(o.ID) + 1 + w
	b := make([]byte, head+w*n, head+w*n+size)
	copy(b, o.ID)
	b[len(o.ID)] = byte(w)
	putw(b[len(o.ID)+1:], w, n)
	for _, c := range cells {
		putw(b[head+w*c.col:], w, len(b))
		switch v := c.v; v.Kind {
		case cdc.KindNumber:
			bits := math.Float64bits(v.Num)
			b = append(b, rowNumber)
			for i := range 8 {
				b = append(b, byte(bits>>(8*i)))
			}
		case cdc.KindBool:
			if v.Bool {
				b = append(b, rowTrue)
			} else {
				b = append(b, rowFalse)
			}
		default:
			if len(v.Str) <= sharedMaxLen {
				if i, ok := share(c.col, v); ok {
					b = append(b, rowShared, i)
					break
				}
			}
			b = append(b, rowText, byte(v.Kind))
			for x := uint64(len(v.Str)); ; x >>= 7 {
				if x < 0x80 {
					b = append(b, byte(x))
					break
				}
				b = append(b, byte(x)|0x80)
			}
			b = append(b, v.Str...)
		}
	}
	o.row = string(b)
	o.ID = o.row[:len(o.ID)]
	o.Fields = nil
	for i := range o.Roles {
		o.Roles[i].Role = roleName(o.Roles[i].Role)
	}
}

func putw(b []byte, w, x int) {
	for i := range w {
		b[i] = byte(x >> (8 * i))
	}
}

func getw(r string, at, w int) int {
	x := 0
	for i := range w {
		x |= int(r[at+i]) << (8 * i)
	}
	return x
}

// at returns the value of column col of a compact opportunity.
func (o *Opportunity) at(col int) cdc.Value {
	r := o.row
	h := len(o.ID)
	w := int(r[h])
	if col >= getw(r, h+1, w) {
		return cdc.Null
	}
	off := getw(r, h+1+w*(col+1), w)
	if off == 0 {
		return cdc.Null
	}
	switch r[off] {
	case rowNumber:
		var bits uint64
		for i := range 8 {
			bits |= uint64(r[off+1+i]) << (8 * i)
		}
		return cdc.Value{Kind: cdc.KindNumber, Num: math.Float64frombits(bits)}
	case rowFalse:
		return cdc.Value{Kind: cdc.KindBool}
	case rowTrue:
		return cdc.Value{Kind: cdc.KindBool, Bool: true}
	case rowShared:
		return sharedValue(col, r[off+1])
	}
	kind := cdc.Kind(r[off+1])
	p := off + 2
	var n, shift int
	for {
		c := r[p]
		p++
		n |= int(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	return cdc.Value{Kind: kind, Str: r[p : p+n]}
}
