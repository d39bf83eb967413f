package decode

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file holds a small Avro schema model and a binary reader driven by
// it. oppsync reads Avro with its own reader rather than goavro's generic
// maps because it must never trust lengths in hostile input (goavro
// preallocates arrays by the encoded block count), and because a typical
// event then decodes with a handful of allocations. goavro still validates
// every schema before it is used, and encodes the test payloads, so the two
// implementations are checked against each other.

type tkind uint8

const (
	tNull tkind = iota
	tBool
	tInt
	tLong
	tFloat
	tDouble
	tBytes
	tString
	tEnum
	tFixed
	tArray
	tMap
	tRecord
	tUnion
)

var primitives = map[string]tkind{
	"null": tNull, "boolean": tBool, "int": tInt, "long": tLong, "float": tFloat,
	"double": tDouble, "bytes": tBytes, "string": tString,
}

// avroType is one node of a parsed schema. Named types are shared by
// pointer, so recursive schemas are graphs; the reader bounds its depth.
type avroType struct {
	kind     tkind
	logical  string // logicalType, if any
	name     string // full name of a named type; primitive name otherwise
	symbols  []string
	size     int
	items    *avroType // array items, map values
	fields   []avroField
	branches []*avroType
}

type avroField struct {
	name string
	doc  string
	typ  *avroType
}

// validName reports whether s is an Avro name: a letter or underscore,
// then letters, digits and underscores.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// recordBranch returns the record t holds: t itself, or the one record
// branch of a union (nil when there is none or more than one). A union of
// a record with other types is how Salesforce types switchable compound
// fields (Account.Name: ["null", "string", Switchable_PersonName]).
func (t *avroType) recordBranch() *avroType {
	if t.kind == tRecord {
		return t
	}
	if t.kind != tUnion {
		return nil
	}
	var out *avroType
	for _, b := range t.branches {
		if b.kind == tRecord {
			if out != nil {
				return nil
			}
			out = b
		}
	}
	return out
}

// scalarBranches returns the non-null branches of union t other than
// record, and how many there are.
func (t *avroType) scalarBranches(record *avroType) (one *avroType, n int) {
	if t.kind != tUnion {
		return nil, 0
	}
	for _, b := range t.branches {
		if b.kind != tNull && b != record {
			one, n = b, n+1
		}
	}
	return one, n
}

// typeName is the Salesforce-catalog-friendly Avro name of t.
func (t *avroType) typeName() string {
	if t.logical != "" {
		return t.logical
	}
	if i := strings.LastIndexByte(t.name, '.'); i >= 0 {
		return t.name[i+1:]
	}
	return t.name
}

// nonNull returns the single non-null branch of a ["null", T] union (or t
// itself when t is not a union), and nil when there is no single branch.
func (t *avroType) nonNull() *avroType {
	if t.kind != tUnion {
		return t
	}
	var out *avroType
	for _, b := range t.branches {
		if b.kind == tNull {
			continue
		}
		if out != nil {
			return nil
		}
		out = b
	}
	return out
}

type schemaParser struct {
	named map[string]*avroType
}

// parseAvroSchema parses Avro schema JSON text into a type graph.
func parseAvroSchema(text string) (*avroType, error) {
	var raw any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	p := &schemaParser{named: map[string]*avroType{}}
	return p.parse(raw, "", 0)
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (p *schemaParser) parse(raw any, ns string, depth int) (*avroType, error) {
	if depth > 64 {
		return nil, errors.New("schema nests too deeply")
	}
	switch x := raw.(type) {
	case string:
		if k, ok := primitives[x]; ok {
			return &avroType{kind: k, name: x}, nil
		}
		if t, ok := p.named[fullName(x, ns)]; ok {
			return t, nil
		}
		if t, ok := p.named[x]; ok {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type name %q", x)
	case []any:
		u := &avroType{kind: tUnion, name: "union"}
		for _, b := range x {
			bt, err := p.parse(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			if bt.kind == tUnion {
				return nil, errors.New("union directly inside a union")
			}
			u.branches = append(u.branches, bt)
		}
		if len(u.branches) == 0 {
			return nil, errors.New("empty union")
		}
		return u, nil
	case map[string]any:
		return p.parseObject(x, ns, depth)
	}
	return nil, fmt.Errorf("unexpected schema element %T", raw)
}

func (p *schemaParser) parseObject(x map[string]any, ns string, depth int) (*avroType, error) {
	typ, _ := x["type"].(string)
	logical, _ := x["logicalType"].(string)
	if k, ok := primitives[typ]; ok {
		return &avroType{kind: k, name: typ, logical: logical}, nil
	}
	if typ == "" {
		// {"type": {...}} or {"type": [...]}: a wrapped type.
		if inner, ok := x["type"]; ok {
			return p.parse(inner, ns, depth+1)
		}
		return nil, errors.New("schema object without type")
	}
	name, _ := x["name"].(string)
	if n, ok := x["namespace"].(string); ok && n != "" && !strings.Contains(name, ".") {
		ns = n
	}
	full := fullName(name, ns)
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		ns = full[:i]
	}
	switch typ {
	case "record", "error":
		t := &avroType{kind: tRecord, name: full, logical: logical}
		if name == "" {
			return nil, errors.New("record without name")
		}
		p.named[full] = t
		fs, ok := x["fields"].([]any)
		if !ok {
			return nil, fmt.Errorf("record %s has no fields array", full)
		}
		seen := map[string]bool{}
		for i, f := range fs {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("record %s field %d is not an object", full, i)
			}
			fname, _ := fm["name"].(string)
			if fname == "" || seen[fname] {
				return nil, fmt.Errorf("record %s field %d has a missing or duplicate name", full, i)
			}
			if !validName(fname) {
				// goavro takes "a.b" as a full name; as a field name it would
				// pass for the nested field "a.b" in keys and the catalog.
				return nil, fmt.Errorf("record %s field %d: name %s is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)", full, i, strconv.QuoteToASCII(fname))
			}
			seen[fname] = true
			ft, err := p.parse(fm["type"], ns, depth+1)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", fname, err)
			}
			doc, _ := fm["doc"].(string)
			t.fields = append(t.fields, avroField{name: fname, doc: doc, typ: ft})
		}
		return t, nil
	case "enum":
		t := &avroType{kind: tEnum, name: full}
		syms, _ := x["symbols"].([]any)
		for _, s := range syms {
			str, ok := s.(string)
			if !ok {
				return nil, fmt.Errorf("enum %s has a non-string symbol", full)
			}
			t.symbols = append(t.symbols, str)
		}
		if len(t.symbols) == 0 {
			return nil, fmt.Errorf("enum %s has no symbols", full)
		}
		p.named[full] = t
		return t, nil
	case "fixed":
		n, _ := x["size"].(json.Number)
		size, err := n.Int64()
		if err != nil || size < 0 || size > 1<<20 {
			return nil, fmt.Errorf("fixed %s has a bad size", full)
		}
		t := &avroType{kind: tFixed, name: full, size: int(size), logical: logical}
		p.named[full] = t
		return t, nil
	case "array", "map":
		key := "items"
		k := tArray
		if typ == "map" {
			key, k = "values", tMap
		}
		it, err := p.parse(x[key], ns, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", typ, key, err)
		}
		return &avroType{kind: k, name: typ, items: it}, nil
	}
	if t, ok := p.named[fullName(typ, ns)]; ok {
		return t, nil
	}
	if t, ok := p.named[typ]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

// errShort and friends describe malformed input without quoting it.
var (
	errShort    = errors.New("unexpected end of data")
	errVarint   = errors.New("bad varint")
	errTooDeep  = errors.New("value nests too deeply")
	errTooMany  = errors.New("collection longer than the data")
	errBadIndex = errors.New("union or enum index out of range")
)

const maxDepth = 32

// reader decodes Avro binary. Every length and count is checked against
// the bytes left before anything is allocated.
type reader struct {
	buf   []byte
	pos   int
	depth int
	items int64 // collection items read so far, bounded by len(buf)
}

func (r *reader) long() (int64, error) {
	var u uint64
	var shift uint
	for i := 0; ; i++ {
		if r.pos >= len(r.buf) {
			return 0, errShort
		}
		if i == 10 {
			return 0, errVarint
		}
		b := r.buf[r.pos]
		r.pos++
		u |= uint64(b&0x7f) << shift
		if b < 0x80 {
			break
		}
		shift += 7
	}
	return int64(u>>1) ^ -int64(u&1), nil
}

func (r *reader) int() (int64, error) {
	v, err := r.long()
	if err == nil && (v > math.MaxInt32 || v < math.MinInt32) {
		return 0, errVarint
	}
	return v, err
}

func (r *reader) bytes() ([]byte, error) {
	n, err := r.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > int64(len(r.buf)-r.pos) {
		return nil, errShort
	}
	b := r.buf[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

func (r *reader) fixed(n int) ([]byte, error) {
	if n > len(r.buf)-r.pos {
		return nil, errShort
	}
	b := r.buf[r.pos : r.pos+n]
	r.pos += n
	return b, nil
}

// branch reads a union index and returns the chosen branch.
func (r *reader) branch(t *avroType) (*avroType, error) {
	i, err := r.long()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= int64(len(t.branches)) {
		return nil, errBadIndex
	}
	return t.branches[i], nil
}

// blockCount reads an array/map block count, checking it against the bytes
// left (every item but null takes at least one byte; a block of nulls is
// capped so a hostile count cannot spin).
func (r *reader) blockCount(item *avroType) (int64, error) {
	n, err := r.long()
	if err != nil {
		return 0, err
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, errTooMany
		}
		n = -n
		if _, err := r.long(); err != nil { // block size in bytes, unused
			return 0, err
		}
	}
	left := int64(len(r.buf) - r.pos)
	if (item == nil || item.kind != tNull) && n > left {
		return 0, errTooMany
	}
	r.items += n
	if r.items > int64(len(r.buf))+1024 {
		return 0, errTooMany
	}
	return n, nil
}

// skip reads past one value of type t.
func (r *reader) skip(t *avroType) error {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxDepth {
		return errTooDeep
	}
	switch t.kind {
	case tNull:
		return nil
	case tBool:
		_, err := r.fixed(1)
		return err
	case tInt, tLong, tEnum:
		_, err := r.long()
		return err
	case tFloat:
		_, err := r.fixed(4)
		return err
	case tDouble:
		_, err := r.fixed(8)
		return err
	case tBytes, tString:
		_, err := r.bytes()
		return err
	case tFixed:
		_, err := r.fixed(t.size)
		return err
	case tUnion:
		b, err := r.branch(t)
		if err != nil {
			return err
		}
		return r.skip(b)
	case tRecord:
		for _, f := range t.fields {
			if err := r.skip(f.typ); err != nil {
				return err
			}
		}
		return nil
	case tArray, tMap:
		for {
			n, err := r.blockCount(t.items)
			if err != nil || n == 0 {
				return err
			}
			for ; n > 0; n-- {
				if t.kind == tMap {
					if _, err := r.bytes(); err != nil {
						return err
					}
				}
				if err := r.skip(t.items); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("unsupported type kind %d", t.kind)
}

// generic reads one value of type t as plain Go data (for values oppsync
// renders as JSON text, e.g. an array in a data field).
func (r *reader) generic(t *avroType) (any, error) {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > maxDepth {
		return nil, errTooDeep
	}
	switch t.kind {
	case tNull:
		return nil, nil
	case tBool:
		b, err := r.fixed(1)
		if err != nil {
			return nil, err
		}
		return b[0] != 0, nil
	case tInt, tLong:
		return r.long()
	case tFloat:
		b, err := r.fixed(4)
		if err != nil {
			return nil, err
		}
		return float64(math.Float32frombits(le32(b))), nil
	case tDouble:
		b, err := r.fixed(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(le64(b)), nil
	case tBytes, tString:
		b, err := r.bytes()
		return string(b), err
	case tFixed:
		b, err := r.fixed(t.size)
		return string(b), err
	case tEnum:
		i, err := r.long()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(t.symbols)) {
			return nil, errBadIndex
		}
		return t.symbols[i], nil
	case tUnion:
		b, err := r.branch(t)
		if err != nil {
			return nil, err
		}
		return r.generic(b)
	case tRecord:
		m := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			v, err := r.generic(f.typ)
			if err != nil {
				return nil, err
			}
			m[f.name] = v
		}
		return m, nil
	case tArray, tMap:
		var arr []any
		var m map[string]any
		if t.kind == tMap {
			m = map[string]any{}
		}
		for {
			n, err := r.blockCount(t.items)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
			for ; n > 0; n-- {
				var key []byte
				if t.kind == tMap {
					if key, err = r.bytes(); err != nil {
						return nil, err
					}
				}
				v, err := r.generic(t.items)
				if err != nil {
					return nil, err
				}
				if t.kind == tMap {
					m[string(key)] = v
				} else {
					arr = append(arr, v)
				}
			}
		}
		if t.kind == tMap {
			return m, nil
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unsupported type kind %d", t.kind)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 {
	return uint64(le32(b[:4])) | uint64(le32(b[4:]))<<32
}
