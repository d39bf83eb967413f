package bulk

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// RowError is a rejected row or header: the file, the 1-based line and
// column (bytes) of the offending field, and why.
type RowError struct {
	File   string
	Line   int
	Column int
	Field  string // column name, "" when the row itself is malformed
	Err    error
}

func (e *RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("%s:%d:%d: column %s: %v", e.File, e.Line, e.Column, e.Field, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Errors the typer reports (wrapped in *RowError by the reader).
var (
	ErrUnknownColumn = errors.New("unknown column (not in the schema)")
	ErrBadValue      = errors.New("wrong type")
	ErrMissing       = errors.New("required value is empty")
	ErrUnknownRef    = errors.New("unknown opportunity")
)

// column roles.
const (
	colField    = iota // a schema field
	colID              // the record id
	colModstamp        // SystemModstamp: the version
	colDeleted         // IsDeleted: deleted rows are skipped
	colSkip            // a hidden field: dropped
)

type column struct {
	name  string
	role  int
	kind  cdc.Kind
	id    bool // a reference (EntityId): a Salesforce id or empty
	whole bool // an Integer: a whole number
}

// Typer turns CSV rows of one entity into change events. Field types come
// from the writer schema's FieldInfo list. It is safe for concurrent use
// once built; Bind returns per-file state.
type Typer struct {
	entity string
	fields map[string]cdc.FieldInfo
	hidden map[string]bool
	schema []cdc.FieldInfo // what events carry as Event.Schema (shared)
	id     string          // Event.SchemaID
}

// NewTyper returns a typer for entity ("Opportunity" or
// "OpportunityContactRole") over the schema fields. hidden names fields
// (plain API names) that must never reach the state: their columns are
// accepted and dropped. Contact roles also accept IsPrimary (a boolean the
// change-event schema lacks but Bulk API exports carry).
func NewTyper(entity string, fields []cdc.FieldInfo, hidden []string) (*Typer, error) {
	if entity != cdc.EntityOpportunity && entity != cdc.EntityContactRole {
		return nil, fmt.Errorf("entity %q: want %s or %s", entity, cdc.EntityOpportunity, cdc.EntityContactRole)
	}
	t := &Typer{entity: entity, fields: map[string]cdc.FieldInfo{}, hidden: map[string]bool{}}
	for _, h := range hidden {
		t.hidden[h] = true
	}
	add := func(f cdc.FieldInfo) {
		if _, dup := t.fields[f.Name]; dup || t.hidden[f.Name] || t.hidden[parentOf(f.Name)] {
			return
		}
		t.fields[f.Name] = f
		t.schema = append(t.schema, f)
	}
	for _, f := range fields {
		add(f)
	}
	if entity == cdc.EntityContactRole {
		add(cdc.FieldInfo{Name: "IsPrimary", Kind: cdc.KindBool, SalesforceType: "Boolean"})
		if _, ok := t.fields["OpportunityId"]; !ok {
			return nil, fmt.Errorf("the %s schema has no OpportunityId field", entity)
		}
	}
	names := make([]string, len(t.schema))
	for i, f := range t.schema {
		names[i] = f.Name
	}
	t.id = "bulk:" + entity + ":" + strconv.FormatUint(fnv64(strings.Join(names, ",")), 16)
	return t, nil
}

func parentOf(name string) string {
	p, _, _ := strings.Cut(name, ".")
	return p
}

// Entity returns the entity the typer builds events for.
func (t *Typer) Entity() string { return t.entity }

// Header is a bound header row.
type Header struct {
	cols        []column
	idCol       int
	versionCol  int
	oppCol      int // contact roles: OpportunityId
	hasModstamp bool
}

// Bind checks a header row. It returns the index of the first bad column
// with the error (unknown column, duplicate, or no Id / version column).
func (t *Typer) Bind(header []string) (*Header, int, error) {
	h := &Header{idCol: -1, versionCol: -1, oppCol: -1}
	seen := map[string]bool{}
	lastModified := -1
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff") // a byte order mark
		}
		name = strings.TrimSpace(name)
		if seen[name] {
			return nil, i, fmt.Errorf("column %q appears twice", name)
		}
		seen[name] = true
		c := column{name: name, role: colField}
		switch f, ok := t.fields[name]; {
		case name == "Id":
			c.role, c.kind = colID, cdc.KindString
			h.idCol = i
		case name == "SystemModstamp":
			c.role, c.kind = colModstamp, cdc.KindDateTime
			h.versionCol, h.hasModstamp = i, true
		case name == "IsDeleted":
			c.role, c.kind = colDeleted, cdc.KindBool
		case t.hidden[name] || t.hidden[parentOf(name)]:
			c.role = colSkip
		case ok:
			c.kind = f.Kind
			c.id = f.SalesforceType == "EntityId" || f.SalesforceType == "Reference"
			c.whole = f.SalesforceType == "Integer" || f.SalesforceType == "Int" || f.SalesforceType == "Long"
			if name == "LastModifiedDate" {
				lastModified = i
			}
			if name == "OpportunityId" && t.entity == cdc.EntityContactRole {
				h.oppCol = i
			}
		default:
			return nil, i, fmt.Errorf("%w: %q", ErrUnknownColumn, name)
		}
		h.cols = append(h.cols, c)
	}
	if h.versionCol < 0 {
		h.versionCol = lastModified
	}
	switch {
	case h.idCol < 0:
		return nil, 0, errors.New("the header has no Id column")
	case h.versionCol < 0:
		return nil, 0, errors.New("the header has neither a SystemModstamp nor a LastModifiedDate column (the version of each row)")
	case t.entity == cdc.EntityContactRole && h.oppCol < 0:
		return nil, 0, errors.New("the header has no OpportunityId column")
	}
	return h, -1, nil
}

// Row types one record (as many fields as the header). It returns nil
// without error for a row to skip (IsDeleted=true). On error it returns the
// index of the offending field. The returned event holds copies of the
// strings, so rec may be reused.
func (t *Typer) Row(h *Header, rec []string) (*cdc.Event, int, error) {
	if len(rec) != len(h.cols) {
		return nil, 0, fmt.Errorf("row has %d fields, the header %d", len(rec), len(h.cols))
	}
	ev := &cdc.Event{
		Entity:     t.entity,
		ChangeType: cdc.Create,
		Schema:     t.schema,
		SchemaID:   t.id,
		Fields:     make([]cdc.Field, 0, len(rec)),
	}
	for i, c := range h.cols {
		raw := rec[i]
		switch c.role {
		case colSkip:
			continue
		case colID:
			if !cdc.ValidID(raw) {
				return nil, i, fmt.Errorf("%w: %q is not a Salesforce id", ErrBadValue, clip(raw))
			}
			ev.RecordIDs = []string{strings.Clone(raw)}
			continue
		case colDeleted:
			v, err := parseValue(raw, cdc.KindBool)
			if err != nil {
				return nil, i, err
			}
			if v.Bool {
				return nil, -1, nil
			}
			continue
		}
		v, err := parseValue(raw, c.kind)
		if err != nil {
			return nil, i, err
		}
		if i == h.versionCol {
			if v.IsNull() {
				return nil, i, ErrMissing
			}
			ts, _ := time.Parse(cdc.DateTimeLayout, v.Str)
			ev.Version = cdc.Version{CommitTimestamp: ts.UnixMilli()}
		}
		switch {
		case i == h.oppCol && !cdc.ValidID(raw), c.id && raw != "" && !cdc.ValidID(raw):
			return nil, i, fmt.Errorf("%w: %q is not a Salesforce id", ErrBadValue, clip(raw))
		case c.whole && !v.IsNull() && v.Num != math.Trunc(v.Num):
			return nil, i, fmt.Errorf("%w: %q is not a whole number", ErrBadValue, clip(raw))
		}
		if c.role == colField {
			ev.Fields = append(ev.Fields, cdc.Field{Name: c.name, Value: v, Changed: true})
		}
	}
	return ev, -1, nil
}

// parseValue types one CSV value: empty is null.
func parseValue(raw string, kind cdc.Kind) (cdc.Value, error) {
	if raw == "" {
		return cdc.Null, nil
	}
	switch kind {
	case cdc.KindNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return cdc.Null, fmt.Errorf("%w: %q is not a number", ErrBadValue, clip(raw))
		}
		return cdc.Number(f), nil
	case cdc.KindBool:
		switch strings.ToLower(strings.TrimSpace(raw)) {
		case "true":
			return cdc.Bool(true), nil
		case "false":
			return cdc.Bool(false), nil
		}
		return cdc.Null, fmt.Errorf("%w: %q is not true or false", ErrBadValue, clip(raw))
	case cdc.KindDate:
		d, err := time.Parse(cdc.DateLayout, raw)
		if err != nil {
			return cdc.Null, fmt.Errorf("%w: %q is not a date (YYYY-MM-DD)", ErrBadValue, clip(raw))
		}
		return cdc.Value{Kind: cdc.KindDate, Str: d.Format(cdc.DateLayout)}, nil
	case cdc.KindDateTime:
		ts, err := ParseDateTime(raw)
		if err != nil {
			return cdc.Null, fmt.Errorf("%w: %q is not a datetime (2026-01-31T12:00:00.000Z)", ErrBadValue, clip(raw))
		}
		return cdc.DateTimeFromMillis(ts.UnixMilli()), nil
	}
	return cdc.String(strings.Clone(raw)), nil
}

// dateTimeLayouts are the forms Salesforce writes: Bulk API CSV ("Z") and
// REST JSON ("+0000").
var dateTimeLayouts = []string{"2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05.000-0700", time.RFC3339Nano}

// ParseDateTime parses a Salesforce datetime as Bulk API CSV or REST JSON
// write it.
func ParseDateTime(s string) (time.Time, error) {
	var err error
	for _, l := range dateTimeLayouts {
		var t time.Time
		if t, err = time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

// clip keeps error messages short (values may be long text).
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
