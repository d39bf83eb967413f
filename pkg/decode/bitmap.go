package decode

import (
	"github.com/oppsync/oppsync/pkg/cdc"
)

// fieldSet is a set of flat field indices of one Schema.
type fieldSet []uint64

func newFieldSet(n int, backing *[4]uint64) fieldSet {
	words := (n + 63) / 64
	if words <= len(backing) {
		return backing[:words:words]
	}
	return make(fieldSet, words)
}

func (f fieldSet) add(i int)      { f[i/64] |= 1 << (uint(i) % 64) }
func (f fieldSet) has(i int) bool { return f[i/64]&(1<<(uint(i)%64)) != 0 }
func (f fieldSet) empty() bool {
	for _, w := range f {
		if w != 0 {
			return false
		}
	}
	return true
}

// ExpandBitmaps expands one changedFields / nulledFields / diffFields list
// against the schema into field names, in schema order, without
// duplicates. Elements are:
//
//   - "0x<hex>": a big-endian bitmap over the top-level fields (bit i =
//     field position i; bit 0, the ChangeEventHeader, is ignored); a bit on a
//     nested record field names all of its children;
//   - "<P>-0x<hex>": a bitmap over the fields of the nested record held by
//     top-level field P, naming "Parent.Child";
//   - anything else: a plain field name ("Amount", "Billing_Address__c.City"
//     or a nested parent); names the schema does not have are ignored.
//
// Hex is read case-insensitively and may have any length. A bit past the
// schema's fields, a P that is not a nested record field, or bad hex is a
// *cdc.Error with reason bad_bitmap.
func (s *Schema) ExpandBitmaps(list []string) ([]string, error) {
	var backing [4]uint64
	set := newFieldSet(len(s.flat), &backing)
	for _, e := range list {
		if err := s.expand(set, []byte(e)); err != nil {
			return nil, err
		}
	}
	var out []string
	for i, f := range s.flat {
		if set.has(i) {
			out = append(out, f.name)
		}
	}
	return out, nil
}

// expand adds the fields one list element names to set.
func (s *Schema) expand(set fieldSet, e []byte) error {
	if len(e) >= 2 && e[0] == '0' && (e[1] == 'x' || e[1] == 'X') {
		return s.expandTop(set, e[2:])
	}
	// "<P>-0x<hex>"
	p, i := 0, 0
	for i < len(e) && e[i] >= '0' && e[i] <= '9' {
		if p > 1<<20 {
			return cdc.Permanent(cdc.ReasonBadBitmap, "nested bitmap position too large")
		}
		p = p*10 + int(e[i]-'0')
		i++
	}
	if i > 0 && len(e) >= i+3 && e[i] == '-' && e[i+1] == '0' && (e[i+2] == 'x' || e[i+2] == 'X') {
		return s.expandNested(set, p, e[i+3:])
	}
	if idx, ok := s.byName[string(e)]; ok {
		for _, f := range idx {
			set.add(f)
		}
	}
	return nil
}

func hexVal(c byte) (uint, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint(c - '0'), true
	case c >= 'a' && c <= 'f':
		return uint(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return uint(c-'A') + 10, true
	}
	return 0, false
}

// eachBit calls fn with the position of every set bit of the big-endian hex
// digits, lowest position first.
func eachBit(hex []byte, fn func(pos int) error) error {
	if len(hex) == 0 {
		return cdc.Permanent(cdc.ReasonBadBitmap, "bitmap has no hex digits")
	}
	for j := len(hex) - 1; j >= 0; j-- {
		v, ok := hexVal(hex[j])
		if !ok {
			return cdc.Permanent(cdc.ReasonBadBitmap, "bitmap has a non-hex character at offset %d", j)
		}
		for b := 0; v != 0; b, v = b+1, v>>1 {
			if v&1 != 0 {
				if err := fn((len(hex)-1-j)*4 + b); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *Schema) expandTop(set fieldSet, hex []byte) error {
	return eachBit(hex, func(pos int) error {
		if pos >= len(s.top) {
			return cdc.Permanent(cdc.ReasonBadBitmap, "bitmap bit %d is past the %d fields of the schema", pos, len(s.top))
		}
		tf := &s.top[pos]
		switch tf.role {
		case roleData:
			set.add(tf.flat)
		case roleNested:
			if tf.flat >= 0 {
				set.add(tf.flat)
			}
			for _, c := range tf.children {
				set.add(c)
			}
		}
		return nil // header (bit 0) and connector metadata name no data field
	})
}

func (s *Schema) expandNested(set fieldSet, p int, hex []byte) error {
	if p >= len(s.top) || s.top[p].role != roleNested {
		return cdc.Permanent(cdc.ReasonBadBitmap, "nested bitmap position %d is not a nested record field", p)
	}
	children := s.top[p].children
	return eachBit(hex, func(pos int) error {
		if pos >= len(children) {
			return cdc.Permanent(cdc.ReasonBadBitmap, "nested bitmap bit %d is past the %d fields of %s", pos, len(children), s.top[p].name)
		}
		set.add(children[pos])
		return nil
	})
}
