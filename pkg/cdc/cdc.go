package cdc

import (
	"fmt"
	"strconv"
	"strings"
)

// Entity names the Salesforce objects oppsync understands.
const (
	EntityOpportunity = "Opportunity"
	EntityContactRole = "OpportunityContactRole"
)

// OverflowRecordID is the record id Salesforce puts in GAP_OVERFLOW events.
const OverflowRecordID = "000000000000000AAA"

// ChangeType is the changeType of a ChangeEventHeader.
type ChangeType string

// The change types Salesforce documents.
const (
	Create      ChangeType = "CREATE"
	Update      ChangeType = "UPDATE"
	Delete      ChangeType = "DELETE"
	Undelete    ChangeType = "UNDELETE"
	GapCreate   ChangeType = "GAP_CREATE"
	GapUpdate   ChangeType = "GAP_UPDATE"
	GapDelete   ChangeType = "GAP_DELETE"
	GapUndelete ChangeType = "GAP_UNDELETE"
	GapOverflow ChangeType = "GAP_OVERFLOW"
	Snapshot    ChangeType = "SNAPSHOT"
)

// ParseChangeType accepts the documented change types, case-insensitively.
func ParseChangeType(s string) (ChangeType, error) {
	ct := ChangeType(strings.ToUpper(strings.TrimSpace(s)))
	switch ct {
	case Create, Update, Delete, Undelete, GapCreate, GapUpdate, GapDelete,
		GapUndelete, GapOverflow, Snapshot:
		return ct, nil
	}
	return "", fmt.Errorf("unknown change type %q", s)
}

// IsGap reports whether the change carries no data (GAP_* and GAP_OVERFLOW).
func (c ChangeType) IsGap() bool { return strings.HasPrefix(string(c), "GAP_") }

// Version orders the changes of one record: commit timestamp, then commit
// number, then sequence number, compared lexicographically.
type Version struct {
	CommitTimestamp int64 // ms since epoch, UTC
	CommitNumber    int64
	SequenceNumber  int64
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.CommitTimestamp != o.CommitTimestamp:
		return cmp64(v.CommitTimestamp, o.CommitTimestamp)
	case v.CommitNumber != o.CommitNumber:
		return cmp64(v.CommitNumber, o.CommitNumber)
	default:
		return cmp64(v.SequenceNumber, o.SequenceNumber)
	}
}

// Newer reports whether v is strictly newer than o.
func (v Version) Newer(o Version) bool { return v.Compare(o) > 0 }

// IsZero reports whether v is the zero version (older than every real change).
func (v Version) IsZero() bool { return v == Version{} }

// String encodes v as "ts.commit.seq"; ParseVersion reverses it.
func (v Version) String() string {
	b := make([]byte, 0, 48)
	b = strconv.AppendInt(b, v.CommitTimestamp, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, v.CommitNumber, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, v.SequenceNumber, 10)
	return string(b)
}

// ParseVersion parses the String form. The empty string is the zero version.
func ParseVersion(s string) (Version, error) {
	var v Version
	if s == "" {
		return v, nil
	}
	a, rest, ok1 := strings.Cut(s, ".")
	b, c, ok2 := strings.Cut(rest, ".")
	var err1, err2, err3 error
	v.CommitTimestamp, err1 = strconv.ParseInt(a, 10, 64)
	v.CommitNumber, err2 = strconv.ParseInt(b, 10, 64)
	v.SequenceNumber, err3 = strconv.ParseInt(c, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
		return Version{}, fmt.Errorf("parsing version %q: want <commitTimestamp>.<commitNumber>.<sequenceNumber>", s)
	}
	return v, nil
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Field is one field an event carries.
type Field struct {
	Name    string // API name; "Parent.Child" for nested fields
	Value   Value  // Null when the field was set to null
	Changed bool   // the event says this field was written (always true on CREATE/UNDELETE)
}

// Nulled reports whether the event set the field to null.
func (f Field) Nulled() bool { return f.Changed && f.Value.IsNull() }

// FieldInfo describes a field of a writer schema, for the constraint catalog.
type FieldInfo struct {
	Name           string // API name; "Parent.Child" for nested
	Kind           Kind   // normalised value kind
	SalesforceType string // from the schema doc ("Currency", "DateOnly", ...) or Avro type
}

// EventHeader carries the ChangeEventHeader fields that travel to trigger entries.
type EventHeader struct {
	TransactionKey string
	SequenceNumber int64
	CommitUser     string
	ChangeOrigin   string
}

// Event is one decoded, normalised change event.
type Event struct {
	Entity     string
	ChangeType ChangeType
	RecordIDs  []string
	Version    Version
	Header     EventHeader

	// Fields holds what the body says. CREATE and UNDELETE: every field the
	// body carries (Changed=true). UPDATE: the changed and nulled fields
	// (Changed=true) plus non-null fields not listed as changed (Changed=false).
	// DELETE and GAP_*: empty.
	Fields []Field

	// Schema lists the writer schema's data fields (shared, read-only).
	Schema []FieldInfo
	// SchemaID identifies the writer schema ("registry:<id>" or the Salesforce id).
	SchemaID string
}

// Field returns the named field and whether the event carries it.
func (e *Event) Field(name string) (Field, bool) {
	for _, f := range e.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// HasSchemaField reports whether the writer schema has the named field.
func (e *Event) HasSchemaField(name string) bool {
	for _, f := range e.Schema {
		if f.Name == name {
			return true
		}
	}
	return false
}

// ChangedFields returns the names of the fields the event changed, in order.
func (e *Event) ChangedFields() []string {
	var out []string
	for _, f := range e.Fields {
		if f.Changed {
			out = append(out, f.Name)
		}
	}
	return out
}
