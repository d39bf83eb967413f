package synth

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// avroType is the part of an Avro type the encoder needs to turn a
// normalised cdc.Value back into goavro's native form.
type avroType struct {
	nullable bool   // a ["null", T] union
	branch   string // goavro union key of T ("string", "long.timestamp-millis", full record name)
	prim     string // string, int, long, float, double, boolean, bytes, enum, record, array
	logical  string // logicalType of T, if any
	fields   []*avroField
	items    *avroType
}

// avroField is one field of a record type.
type avroField struct {
	name   string
	pos    int
	sfType string // second part of the doc ("DateOnly", "Currency"), or ""
	typ    *avroType
}

// writerSchema is a parsed writer schema with its codec.
type writerSchema struct {
	text   string
	codec  *goavro.Codec
	fields []*avroField // top level, by position
	byName map[string]*avroField
	header *avroField // ChangeEventHeader, nil if absent
}

var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true, "float": true,
	"double": true, "bytes": true, "string": true,
}

func parseWriterSchema(text string) (*writerSchema, error) {
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("compiling writer schema: %w", err)
	}
	var raw any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return nil, fmt.Errorf("parsing writer schema: %w", err)
	}
	p := &typeParser{named: map[string]*avroType{}}
	top, err := p.parse(raw, "")
	if err != nil {
		return nil, err
	}
	if top.prim != "record" || top.nullable {
		return nil, fmt.Errorf("writer schema is not a record")
	}
	ws := &writerSchema{text: text, codec: codec, fields: top.fields, byName: map[string]*avroField{}}
	for _, f := range top.fields {
		ws.byName[f.name] = f
		if f.name == "ChangeEventHeader" {
			ws.header = f
		}
	}
	if ws.header == nil || ws.header.typ.prim != "record" {
		return nil, fmt.Errorf("writer schema has no ChangeEventHeader record")
	}
	return ws, nil
}

// field finds a top-level field, or a nested one by "Parent.Child", and
// returns it with its parent (nil at top level).
func (ws *writerSchema) field(name string) (f, parent *avroField) {
	if f, ok := ws.byName[name]; ok {
		return f, nil
	}
	pn, cn, ok := strings.Cut(name, ".")
	if !ok {
		return nil, nil
	}
	p, ok := ws.byName[pn]
	if !ok || p.typ.prim != "record" {
		return nil, nil
	}
	for _, c := range p.typ.fields {
		if c.name == cn {
			return c, p
		}
	}
	return nil, nil
}

// dataFieldNames lists the data fields ("Parent.Child" for nested ones) in
// schema order, skipping the header and connector bookkeeping fields.
func (ws *writerSchema) dataFieldNames() []string {
	var out []string
	for _, f := range ws.fields {
		if f == ws.header || connectorSpecial[f.name] {
			continue
		}
		if f.typ.prim == "record" {
			for _, c := range f.typ.fields {
				out = append(out, f.name+"."+c.name)
			}
			continue
		}
		out = append(out, f.name)
	}
	return out
}

type typeParser struct {
	named map[string]*avroType
}

func fullName(name, ns string) string {
	if strings.Contains(name, ".") || ns == "" {
		return name
	}
	return ns + "." + name
}

func (p *typeParser) parse(raw any, ns string) (*avroType, error) {
	switch t := raw.(type) {
	case string:
		if primitives[t] {
			return &avroType{prim: t, branch: t}, nil
		}
		if n, ok := p.named[fullName(t, ns)]; ok {
			return n, nil
		}
		if n, ok := p.named[t]; ok {
			return n, nil
		}
		return nil, fmt.Errorf("unknown type %q", t)
	case []any:
		var inner *avroType
		nullable := false
		for _, b := range t {
			if s, ok := b.(string); ok && s == "null" {
				nullable = true
				continue
			}
			if inner != nil {
				return nil, fmt.Errorf("unions of several non-null types are not supported")
			}
			it, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			inner = it
		}
		if inner == nil {
			return nil, fmt.Errorf("union without a non-null branch")
		}
		cp := *inner
		cp.nullable = nullable
		return &cp, nil
	case map[string]any:
		typ, _ := t["type"].(string)
		logical, _ := t["logicalType"].(string)
		switch typ {
		case "record", "enum", "fixed":
			name, _ := t["name"].(string)
			if space, ok := t["namespace"].(string); ok && !strings.Contains(name, ".") {
				ns = space
			}
			fn := fullName(name, ns)
			if i := strings.LastIndex(fn, "."); i >= 0 {
				ns = fn[:i]
			}
			at := &avroType{prim: typ, branch: fn}
			p.named[fn] = at
			if typ != "record" {
				return at, nil
			}
			rawFields, _ := t["fields"].([]any)
			for i, rf := range rawFields {
				fm, ok := rf.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s: field %d is not an object", fn, i)
				}
				fname, _ := fm["name"].(string)
				ft, err := p.parse(fm["type"], ns)
				if err != nil {
					return nil, fmt.Errorf("record %s field %s: %w", fn, fname, err)
				}
				doc, _ := fm["doc"].(string)
				at.fields = append(at.fields, &avroField{name: fname, pos: i, sfType: docType(doc), typ: ft})
			}
			return at, nil
		case "array":
			it, err := p.parse(t["items"], ns)
			if err != nil {
				return nil, err
			}
			return &avroType{prim: "array", branch: "array", items: it}, nil
		case "map":
			return &avroType{prim: "map", branch: "map"}, nil
		case "":
			return nil, fmt.Errorf("type object without a type")
		default:
			at, err := p.parse(typ, ns)
			if err != nil {
				return nil, err
			}
			cp := *at
			if logical != "" {
				cp.logical = logical
				cp.branch = typ + "." + logical
			}
			return &cp, nil
		}
	}
	return nil, fmt.Errorf("unsupported type description %T", raw)
}

// docType returns the Salesforce type of a "<Role>:<Type>[:<id>]" doc.
func docType(doc string) string {
	parts := strings.Split(doc, ":")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// wrap puts a native value into its union, if the type is one.
func (t *avroType) wrap(native any) any {
	if native == nil || !t.nullable {
		return native
	}
	return map[string]any{t.branch: native}
}

// native converts a normalised value to the goavro native form of t
// (wrapped in its union), using the Salesforce doc type to tell dates.
func native(t *avroType, sfType string, v cdc.Value) (any, error) {
	if v.IsNull() {
		if !t.nullable {
			return nil, fmt.Errorf("null for non-nullable %s", t.prim)
		}
		return nil, nil
	}
	var out any
	switch t.prim {
	case "string", "enum":
		switch v.Kind {
		case cdc.KindNumber:
			out = cdc.FormatNumber(v.Num)
		case cdc.KindBool:
			out = fmt.Sprint(v.Bool)
		default:
			out = v.Str
		}
	case "boolean":
		if v.Kind != cdc.KindBool {
			return nil, fmt.Errorf("%s value for boolean", v.Kind)
		}
		out = v.Bool
	case "double", "float":
		if v.Kind != cdc.KindNumber {
			return nil, fmt.Errorf("%s value for %s", v.Kind, t.prim)
		}
		if t.prim == "float" {
			out = float32(v.Num)
		} else {
			out = v.Num
		}
	case "int", "long":
		n, err := integer(t, sfType, v)
		if err != nil {
			return nil, err
		}
		out = n
	default:
		return nil, fmt.Errorf("cannot write a %s value into a %s", v.Kind, t.prim)
	}
	return t.wrap(out), nil
}

func integer(t *avroType, sfType string, v cdc.Value) (any, error) {
	switch {
	case t.logical == "date" || t.logical == "timestamp-millis":
		tm, err := parseTime(v)
		if err != nil {
			return nil, err
		}
		return tm, nil
	case v.Kind == cdc.KindDate || v.Kind == cdc.KindDateTime ||
		sfType == "DateOnly" || sfType == "DateTime" || sfType == "Date":
		tm, err := parseTime(v)
		if err != nil {
			return nil, err
		}
		if t.prim == "int" {
			return int32(tm.Unix() / 86400), nil
		}
		return tm.UnixMilli(), nil
	case v.Kind == cdc.KindNumber:
		if t.prim == "int" {
			return int32(v.Num), nil
		}
		return int64(v.Num), nil
	}
	return nil, fmt.Errorf("%s value for %s", v.Kind, t.prim)
}

func parseTime(v cdc.Value) (time.Time, error) {
	switch v.Kind {
	case cdc.KindDate:
		tm, err := time.Parse(cdc.DateLayout, v.Str)
		if err != nil {
			return time.Time{}, fmt.Errorf("parsing date %q: %w", v.Str, err)
		}
		return tm, nil
	case cdc.KindDateTime, cdc.KindString:
		tm, err := time.Parse(time.RFC3339Nano, v.Str)
		if err != nil {
			if d, derr := time.Parse(cdc.DateLayout, v.Str); derr == nil {
				return d, nil
			}
			return time.Time{}, fmt.Errorf("parsing date-time %q: %w", v.Str, err)
		}
		return tm.UTC(), nil
	case cdc.KindNumber:
		return time.UnixMilli(int64(v.Num)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%s value for a date", v.Kind)
}
