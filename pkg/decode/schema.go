package decode

import (
	"strings"

	"github.com/linkedin/goavro/v2"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Schema is one compiled writer schema: its body shape, its data fields
// flattened to "Parent.Child", and the position tables its bitmap field
// lists are read against. Positions belong to this schema only: another
// schema id (even of the same entity) gets its own Schema. A Schema is
// read-only once built and safe for concurrent use.
type Schema struct {
	root      *avroType
	connector bool
	entity    string // from the record name, "Opportunity" for OpportunityChangeEvent
	headerPos int
	header    []headerSlot // per field of the ChangeEventHeader record
	top       []topField   // per top-level field position
	flat      []flatField
	byName    map[string][]int // flat name or nested parent name → flat indices
	info      []cdc.FieldInfo  // one per flat field
}

type role uint8

const (
	roleData role = iota
	roleNested
	roleHeader
	roleID         // connector Id
	roleObjectType // connector _ObjectType
	roleIgnored    // connector ReplayId, _EventType
)

type topField struct {
	name string
	typ  *avroType
	role role
	// flat is the flat index of the field's value: a roleData field's, or
	// a roleNested field's own value when its union has branches besides
	// null and the record (the string of a switchable compound field).
	// -1 when none.
	flat     int
	children []int // roleNested: flat indices of its record's fields, in order
}

type flatField struct {
	name string
	norm norm
}

// norm says how a field's value is normalised, from the doc type.
type norm uint8

const (
	normAuto     norm = iota // by Avro type and logical type
	normDate                 // DateOnly: epoch ms
	normDateTime             // DateTime: epoch ms
	normNumber
	normBool
	normString
)

// docType returns the Salesforce type of a "<Role>:<Type>[:<id>]" doc.
func docType(doc string) string {
	parts := strings.SplitN(doc, ":", 3)
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

func normOf(sfType string) norm {
	switch sfType {
	case "":
		return normAuto
	case "DateOnly", "Date":
		return normDate
	case "DateTime":
		return normDateTime
	case "Currency", "Percent", "Double", "Integer", "Int", "Long", "Number":
		return normNumber
	case "Boolean":
		return normBool
	}
	return normString
}

// kindOf is the normalised kind values of type t (the non-null branch) get
// under n.
func kindOf(t *avroType, n norm) cdc.Kind {
	if t == nil {
		return cdc.KindString
	}
	switch t.logical {
	case "date":
		return cdc.KindDate
	case "timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros":
		return cdc.KindDateTime
	}
	switch t.kind {
	case tInt, tLong:
		switch n {
		case normDate:
			return cdc.KindDate
		case normDateTime:
			return cdc.KindDateTime
		case normString:
			return cdc.KindString
		}
		return cdc.KindNumber
	case tFloat, tDouble:
		return cdc.KindNumber
	case tBool:
		return cdc.KindBool
	case tNull:
		return cdc.KindNull
	}
	return cdc.KindString
}

// headerSlot says where a ChangeEventHeader field goes.
type headerSlot uint8

const (
	hSkip headerSlot = iota
	hEntity
	hRecordIDs
	hChangeType
	hOrigin
	hTxKey
	hSeq
	hCommitTS
	hCommitNum
	hCommitUser
	hNulled
	hDiff
	hChanged
)

var headerSlots = map[string]headerSlot{
	"entityName": hEntity, "recordIds": hRecordIDs, "changeType": hChangeType,
	"changeOrigin": hOrigin, "transactionKey": hTxKey, "sequenceNumber": hSeq,
	"commitTimestamp": hCommitTS, "commitNumber": hCommitNum, "commitUser": hCommitUser,
	"nulledFields": hNulled, "diffFields": hDiff, "changedFields": hChanged,
}

// ParseSchema compiles a writer schema text. It fails with a *cdc.Error:
// schema_invalid when the text is not a valid Avro schema, and
// not_a_change_event when it is not a Salesforce change event schema (no
// ChangeEventHeader record with at least changeType, recordIds and
// commitTimestamp).
func ParseSchema(text string) (*Schema, error) {
	// goavro is the reference for what a valid schema is.
	if _, err := goavro.NewCodec(text); err != nil {
		return nil, cdc.Permanent(cdc.ReasonSchemaInvalid, "invalid Avro schema: %w", err)
	}
	root, err := parseAvroSchema(text)
	if err != nil {
		return nil, cdc.Permanent(cdc.ReasonSchemaInvalid, "invalid Avro schema: %w", err)
	}
	if root.kind != tRecord {
		return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "schema %s is not a record", root.name)
	}
	s := &Schema{root: root, headerPos: -1, byName: map[string][]int{}}
	short := root.name[strings.LastIndexByte(root.name, '.')+1:]
	s.entity = strings.TrimSuffix(short, "ChangeEvent")
	for _, f := range root.fields {
		switch f.name {
		case "_ObjectType", "ReplayId":
			s.connector = true
		}
	}
	for i, f := range root.fields {
		tf := topField{name: f.name, typ: f.typ, flat: -1}
		switch {
		case f.name == "ChangeEventHeader":
			tf.role = roleHeader
			s.headerPos = i
		case s.connector && f.name == "Id":
			tf.role = roleID
		case s.connector && f.name == "_ObjectType":
			tf.role = roleObjectType
		case s.connector && (f.name == "ReplayId" || f.name == "_EventType"):
			tf.role = roleIgnored
		default:
			// A record, or a union with one record branch, is a nested
			// field "Parent.Child" whose bitmaps "P-0x.." name the record's
			// fields, as Salesforce's reference decoders read them. The
			// union's other branches (the string of a switchable compound
			// field) hold the value under the parent's own name, and the
			// children are null then.
			if rec := f.typ.recordBranch(); rec != nil {
				tf.role = roleNested
				var all []int
				if other, n := f.typ.scalarBranches(rec); n > 0 {
					if n > 1 {
						other = nil
					}
					tf.flat = s.addFlat(f.name, f.doc, other)
					all = append(all, tf.flat)
				}
				for _, c := range rec.fields {
					cnn := c.typ.nonNull()
					tf.children = append(tf.children, s.addFlat(f.name+"."+c.name, c.doc, cnn))
				}
				s.byName[f.name] = append(all, tf.children...)
			} else {
				tf.role = roleData
				tf.flat = s.addFlat(f.name, f.doc, f.typ.nonNull())
			}
		}
		s.top = append(s.top, tf)
	}
	if s.headerPos < 0 || (!s.connector && s.headerPos != 0) {
		return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "schema %s has no ChangeEventHeader at field 0", root.name)
	}
	hdr := root.fields[s.headerPos].typ.nonNull()
	if hdr == nil || hdr.kind != tRecord {
		return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "ChangeEventHeader of schema %s is not a record", root.name)
	}
	have := map[headerSlot]bool{}
	for _, f := range hdr.fields {
		slot := headerSlots[f.name]
		if slot != hSkip && !headerTypeOK(slot, f.typ) {
			return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "ChangeEventHeader.%s of schema %s has an unexpected type", f.name, root.name)
		}
		have[slot] = true
		s.header = append(s.header, slot)
	}
	for _, need := range []headerSlot{hChangeType, hRecordIDs, hCommitTS} {
		if !have[need] {
			return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "ChangeEventHeader of schema %s lacks changeType, recordIds or commitTimestamp", root.name)
		}
	}
	return s, nil
}

func (s *Schema) addFlat(name, doc string, t *avroType) int {
	sf := docType(doc)
	n := normOf(sf)
	if sf == "" && t != nil {
		sf = t.typeName()
	}
	s.flat = append(s.flat, flatField{name: name, norm: n})
	s.info = append(s.info, cdc.FieldInfo{Name: name, Kind: kindOf(t, n), SalesforceType: sf})
	i := len(s.flat) - 1
	s.byName[name] = []int{i}
	return i
}

func headerTypeOK(slot headerSlot, t *avroType) bool {
	nn := t.nonNull()
	if nn == nil {
		return false
	}
	switch slot {
	case hEntity, hChangeType, hOrigin, hTxKey, hCommitUser:
		return nn.kind == tString || nn.kind == tEnum
	case hSeq, hCommitTS, hCommitNum:
		return nn.kind == tInt || nn.kind == tLong
	case hRecordIDs, hNulled, hDiff, hChanged:
		if nn.kind != tArray {
			return false
		}
		it := nn.items.nonNull()
		return it != nil && it.kind == tString
	}
	return true
}

// Fields describes the schema's data fields, nested ones flattened to
// "Parent.Child", in schema order. The slice is shared: do not modify it.
func (s *Schema) Fields() []cdc.FieldInfo { return s.info }

// Entity is the entity the schema's record name is for ("Opportunity" for
// com.sforce.eventbus.OpportunityChangeEvent).
func (s *Schema) Entity() string { return s.entity }

// Connector reports whether the schema has the Confluent connector shape
// (plain field names, only changed fields) rather than the Pub/Sub shape.
func (s *Schema) Connector() bool { return s.connector }
