package filters

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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

// A compact row is one immutable string holding an opportunity's id, its
// fields by column and its live roles:
//
//	id | w | n | n offsets | roles offset | values | roles
//
// w (one byte, 1, 2 or 4) is the width of n and of each offset, little
// endian; the offset of column c (from the row's start) points at its
// value, 0 meaning null. A value is a tag byte and its payload:
//
//	rowNumber  8 bytes, the float64's bits
//	rowFalse, rowTrue  nothing
//	rowText    the kind (string, date or date-time), a uvarint length, the text
//	rowShared  one byte: the index of the value in the column's shared table
//	rowInt     a number that is an integer (|x| < 2^53, not -0): zigzag uvarint
//	rowMillis  a date-time that reads back exactly from its milliseconds
//	           since the epoch (≥ 0): uvarint; reading it formats a string
//
// The roles are a uvarint count, then per role a flags byte (roleFlag...),
// the contact id as a text (uvarint length, bytes) and the role name: one
// byte indexing the shared table of role names with roleShared, else a
// text. Role ids are not kept: no filter reads them.
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
	rowInt
	rowMillis
)

const (
	roleIsPrimary byte = 1 << iota
	rolePending
	roleShared
)

const (
	sharedMax    = 255 // values per column table
	sharedMaxLen = 64  // longest text value shared
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
// room; ok is false when the table is full. Column -1 is the role names.
func share(col int, v cdc.Value) (byte, bool) {
	col++ // table 0 holds the role names
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
	return (*shared.tables.Load())[col+1][i]
}

// Compact stores the id, the fields and the roles as one compact row (see
// above), which takes a fraction of the memory of the Fields map and the
// Roles slice and evaluates faster over many opportunities, and drops
// Fields and Roles. Call it only on opportunities nobody reads Fields or
// Roles of again (Value, FieldMap, RoleCount, AppendContacts and the
// filters keep working; role ids are dropped), before publishing o.
func (o *Opportunity) Compact() {
	if o.row != "" {
		return
	}
	// The values and roles first, at offsets from their start; then the
	// narrowest offset width that fits.
	var body []byte
	n := 0
	type cell struct{ col, off int }
	cells := make([]cell, 0, len(o.Fields))
	for k, v := range o.Fields {
		if v.IsNull() {
			continue // reads as null when absent
		}
		c := column(k)
		cells = append(cells, cell{c, len(body)})
		n = max(n, c+1)
		body = appendRowValue(body, c, v)
	}
	rolesAt := -1
	if len(o.Roles) > 0 {
		rolesAt = len(body)
		body = appendUvarint(body, uint64(len(o.Roles)))
		for _, r := range o.Roles {
			var flags byte
			if r.IsPrimary {
				flags |= roleIsPrimary
			}
			if r.Pending {
				flags |= rolePending
			}
			i, shared := byte(0), false
			if len(r.Role) <= sharedMaxLen {
				i, shared = share(-1, cdc.String(r.Role))
			}
			if shared {
				body = append(body, flags|roleShared)
				body = appendText(body, r.ContactID)
				body = append(body, i)
			} else {
				body = append(body, flags)
				body = appendText(body, r.ContactID)
				body = appendText(body, r.Role)
			}
		}
	}
	w := 1
	for ; ; w *= 2 {
		if w == 4 || len(o.ID)+1+w*(n+2)+len(body) < 1<<(8*w) {
			break
		}
	}
	head := len(o.ID) + 1 + w*(n+2) // id, w, n, n offsets, roles offset
	b := make([]byte, head, head+len(body))
	copy(b, o.ID)
	b[len(o.ID)] = byte(w)
	putw(b[len(o.ID)+1:], w, n)
	for _, c := range cells {
		putw(b[len(o.ID)+1+w*(c.col+1):], w, head+c.off)
	}
	if rolesAt >= 0 {
		putw(b[len(o.ID)+1+w*(n+1):], w, head+rolesAt)
	}
	b = append(b, body...)
	o.row = string(b)
	o.ID = o.row[:len(o.ID)]
	o.Fields, o.Roles = nil, nil
}

// appendRowValue appends the encoding of a value of column col.
func appendRowValue(b []byte, col int, v cdc.Value) []byte {
	switch v.Kind {
	case cdc.KindNumber:
		if i := int64(v.Num); float64(i) == v.Num && i > -1<<53 && i < 1<<53 && !(i == 0 && math.Signbit(v.Num)) {
			return appendUvarint(append(b, rowInt), uint64(i<<1)^uint64(i>>63)) // zigzag
		}
		bits := math.Float64bits(v.Num)
		b = append(b, rowNumber)
		for i := range 8 {
			b = append(b, byte(bits>>(8*i)))
		}
		return b
	case cdc.KindBool:
		if v.Bool {
			return append(b, rowTrue)
		}
		return append(b, rowFalse)
	}
	if len(v.Str) <= sharedMaxLen {
		if i, ok := share(col, v); ok {
			return append(b, rowShared, i)
		}
	}
	if v.Kind == cdc.KindDateTime && len(v.Str) == len(cdc.DateTimeLayout) {
		if t, err := time.Parse(cdc.DateTimeLayout, v.Str); err == nil && t.UnixMilli() >= 0 && cdc.FormatMillis(t.UnixMilli()) == v.Str {
			return appendUvarint(append(b, rowMillis), uint64(t.UnixMilli()))
		}
	}
	return appendText(append(b, rowText, byte(v.Kind)), v.Str)
}

func appendUvarint(b []byte, x uint64) []byte {
	for ; x >= 0x80; x >>= 7 {
		b = append(b, byte(x)|0x80)
	}
	return append(b, byte(x))
}

func appendText(b []byte, s string) []byte {
	return append(appendUvarint(b, uint64(len(s))), s...)
}

func uvarint(r string, p int) (x, next int) {
	for shift := 0; ; shift += 7 {
		c := r[p]
		p++
		x |= int(c&0x7f) << shift
		if c < 0x80 {
			return x, p
		}
	}
}

// roleCursor walks the roles of an opportunity, compact or not.
type roleCursor struct {
	o       *Opportunity
	i, n, p int
}

func (o *Opportunity) roleCursor() roleCursor {
	if o.row == "" {
		return roleCursor{o: o, n: len(o.Roles)}
	}
	h := len(o.ID)
	w := int(o.row[h])
	off := getw(o.row, h+1+w*(getw(o.row, h+1, w)+1), w)
	if off == 0 {
		return roleCursor{o: o}
	}
	n, p := uvarint(o.row, off)
	return roleCursor{o: o, n: n, p: p}
}

// next reads the next role into r; false after the last.
func (c *roleCursor) next(r *Role) bool {
	if c.i >= c.n {
		return false
	}
	c.i++
	if c.o.row == "" {
		*r = c.o.Roles[c.i-1]
		return true
	}
	row := c.o.row
	flags := row[c.p]
	n, p := uvarint(row, c.p+1)
	r.ID, r.ContactID = "", row[p:p+n]
	p += n
	if flags&roleShared != 0 {
		r.Role = sharedValue(-1, row[p]).Str
		p++
	} else {
		n, p = uvarint(row, p)
		r.Role = row[p : p+n]
		p += n
	}
	r.IsPrimary, r.Pending = flags&roleIsPrimary != 0, flags&rolePending != 0
	c.p = p
	return true
}

// RoleCount returns the number of live roles of the opportunity.
func (o *Opportunity) RoleCount() int {
	c := o.roleCursor()
	return c.n
}

// AppendContacts appends the distinct persons holding a live role on o, in
// role order.
func (o *Opportunity) AppendContacts(dst []string) []string {
	from := len(dst)
	c := o.roleCursor()
	var r Role
	for c.next(&r) {
		dup := false
		for _, p := range dst[from:] {
			if p == r.ContactID {
				dup = true
				break
			}
		}
		if !dup {
			dst = append(dst, r.ContactID)
		}
	}
	return dst
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
	case rowInt:
		x, _ := uvarint(r, off+1)
		return cdc.Value{Kind: cdc.KindNumber, Num: float64(int64(uint64(x)>>1) ^ -int64(x&1))}
	case rowMillis:
		ms, _ := uvarint(r, off+1)
		return cdc.Value{Kind: cdc.KindDateTime, Str: cdc.FormatMillis(int64(ms))}
	}
	n, p := uvarint(r, off+2)
	return cdc.Value{Kind: cdc.Kind(r[off+1]), Str: r[p : p+n]}
}
