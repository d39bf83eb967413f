package synth

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

// Change is one record change to encode: what a Salesforce change event
// says, in normalised form.
type Change struct {
	Entity    string // cdc.EntityOpportunity or cdc.EntityContactRole
	Type      cdc.ChangeType
	RecordIDs []string
	// OpportunityID is the opportunity the change belongs to: the record id
	// for Opportunity changes (defaulted from RecordIDs[0]), the role's
	// OpportunityId for contact-role changes (which DELETE events do not
	// carry in their body). It becomes the Kafka key. A multi-record event
	// spans opportunities; it is keyed by its first record's opportunity.
	OpportunityID string
	Version       cdc.Version
	Header        cdc.EventHeader
	// Fields are normalised values; only Changed ones are written. A Changed
	// field with a Null value is a nulled field. Nested fields are named
	// "Parent.Child".
	Fields []cdc.Field

	// hidden holds changes a gap event hides from the body: the generator
	// applies them to the truth, the encoder ignores them.
	hidden []cdc.Field
}

// Key returns the Kafka key of the change: its opportunity id.
func (c Change) Key() string {
	if c.OpportunityID != "" {
		return c.OpportunityID
	}
	if c.Entity == cdc.EntityOpportunity && len(c.RecordIDs) > 0 {
		return c.RecordIDs[0]
	}
	return ""
}

// Field returns the named field of the change and whether it carries it.
func (c Change) Field(name string) (cdc.Field, bool) {
	for _, f := range c.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return cdc.Field{}, false
}

// Framing selects how a payload travels on Kafka.
type Framing int

const (
	// FramingPubSub is a raw Pub/Sub Avro payload with the schema id in a header.
	FramingPubSub Framing = iota
	// FramingConfluent is the Confluent wire format: 0x00, 4-byte registry id, Avro.
	FramingConfluent
)

func (f Framing) String() string {
	if f == FramingConfluent {
		return "confluent"
	}
	return "pubsub"
}

// Shape selects the body shape of a change event.
type Shape int

const (
	// ShapePubSub carries every field (unchanged ones null) and hex bitmap
	// field lists over the writer schema.
	ShapePubSub Shape = iota
	// ShapeConnector is the Confluent Salesforce CDC connector shape: Id,
	// ReplayId, plain field names, _ObjectType, _EventType.
	ShapeConnector
)

func (s Shape) String() string {
	if s == ShapeConnector {
		return "connector"
	}
	return "pubsub"
}

// SchemaIDs registers a writer schema under a subject and returns its
// registry id. Implementations may block on the network, must honour ctx, and
// must be safe for concurrent use; the same (subject, schema) yields the same id.
type SchemaIDs interface {
	ID(ctx context.Context, subject, schemaJSON string) (int, error)
}

// DefaultSchemaHeader is the header that carries a Pub/Sub schema id.
const DefaultSchemaHeader = "sf-schema-id"

// Topic returns the conventional topic of an entity's change events
// ("salesforce.OpportunityChangeEvent"), the default of kafka.topics.
func Topic(entity string) string { return "salesforce." + entity + "ChangeEvent" }

// EncoderConfig configures an Encoder. The zero value encodes Pub/Sub-shaped
// raw payloads with the embedded schemas.
type EncoderConfig struct {
	Framing Framing
	Shape   Shape
	// SchemaHeader names the header of Pub/Sub framing [sf-schema-id].
	SchemaHeader string
	// Schemas maps entity → writer schema JSON. Missing entities default to
	// the embedded schema of Shape (schemas.PubSub or schemas.Connector).
	Schemas map[string]string
	// Registry resolves registry ids; required for FramingConfluent.
	Registry SchemaIDs
	// Subject names the registry subject of an entity [Topic(entity)+"-value"].
	Subject func(entity string) string
	// Topic names the topic written into Message.Topic [Topic].
	Topic func(entity string) string
}

// Validate reports a configuration the encoder cannot work with.
func (c EncoderConfig) Validate() error {
	if c.Framing != FramingPubSub && c.Framing != FramingConfluent {
		return fmt.Errorf("synth: unknown framing %d", c.Framing)
	}
	if c.Shape != ShapePubSub && c.Shape != ShapeConnector {
		return fmt.Errorf("synth: unknown shape %d", c.Shape)
	}
	if c.Framing == FramingConfluent && c.Registry == nil {
		return fmt.Errorf("synth: confluent framing needs a Registry")
	}
	return nil
}

// Encoder turns Changes into Kafka messages. It is safe for concurrent use.
type Encoder struct {
	cfg     EncoderConfig
	schemas map[string]*writerSchema
	ids     map[string]string // entity → Salesforce-style schema id

	mu         sync.Mutex
	registryID map[string]int // entity → registry id, cached

	replay atomic.Int64
}

// NewEncoder compiles the writer schemas and returns an Encoder.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SchemaHeader == "" {
		cfg.SchemaHeader = DefaultSchemaHeader
	}
	if cfg.Topic == nil {
		cfg.Topic = Topic
	}
	if cfg.Subject == nil {
		cfg.Subject = func(entity string) string { return Topic(entity) + "-value" }
	}
	texts := map[string]string{}
	for _, e := range schemas.Entities {
		if cfg.Shape == ShapeConnector {
			texts[e] = schemas.Connector(e)
		} else {
			texts[e] = schemas.PubSub(e)
		}
	}
	for e, s := range cfg.Schemas {
		texts[e] = s
	}
	enc := &Encoder{cfg: cfg, schemas: map[string]*writerSchema{}, ids: map[string]string{}, registryID: map[string]int{}}
	for e, s := range texts {
		if s == "" {
			continue
		}
		ws, err := parseWriterSchema(s)
		if err != nil {
			return nil, fmt.Errorf("synth: %s schema: %w", e, err)
		}
		enc.schemas[e] = ws
		enc.ids[e] = schemas.ID(s)
	}
	return enc, nil
}

// Schemas returns the writer schemas by their Pub/Sub schema id (the value of
// the schema header), for a decoder's map schema source.
func (e *Encoder) Schemas() map[string]string {
	out := make(map[string]string, len(e.schemas))
	for ent, ws := range e.schemas {
		out[e.ids[ent]] = ws.text
	}
	return out
}

// Schema returns the writer schema text of an entity ("" if none); pass it
// to GenConfig so generated traffic only sets fields this encoder can write.
func (e *Encoder) Schema(entity string) string {
	if ws, ok := e.schemas[entity]; ok {
		return ws.text
	}
	return ""
}

// SchemaID returns the Pub/Sub schema id of an entity's writer schema.
func (e *Encoder) SchemaID(entity string) string { return e.ids[entity] }

// Encode encodes one change as a Kafka message (Topic, Key, Value, Headers,
// Time). It blocks only when Confluent framing registers a schema for the
// first time.
func (e *Encoder) Encode(ctx context.Context, ch Change) (cdc.Message, error) {
	ws, ok := e.schemas[ch.Entity]
	if !ok {
		return cdc.Message{}, fmt.Errorf("synth: no writer schema for entity %q", ch.Entity)
	}
	if len(ch.RecordIDs) == 0 {
		return cdc.Message{}, fmt.Errorf("synth: %s change without record ids", ch.Entity)
	}
	rec, err := e.body(ws, ch)
	if err != nil {
		return cdc.Message{}, fmt.Errorf("synth: encoding %s %s %s: %w", ch.Entity, ch.Type, ch.RecordIDs[0], err)
	}
	msg := cdc.Message{
		Topic: e.cfg.Topic(ch.Entity),
		Key:   []byte(ch.Key()),
		Time:  time.UnixMilli(ch.Version.CommitTimestamp).UTC(),
	}
	switch e.cfg.Framing {
	case FramingConfluent:
		id, err := e.registryIDFor(ctx, ch.Entity, ws)
		if err != nil {
			return cdc.Message{}, err
		}
		buf := make([]byte, 5, 5+256)
		binary.BigEndian.PutUint32(buf[1:], uint32(id))
		msg.Value, err = ws.codec.BinaryFromNative(buf, rec)
		if err != nil {
			return cdc.Message{}, fmt.Errorf("synth: avro encoding %s: %w", ch.Entity, err)
		}
	default:
		msg.Value, err = ws.codec.BinaryFromNative(nil, rec)
		if err != nil {
			return cdc.Message{}, fmt.Errorf("synth: avro encoding %s: %w", ch.Entity, err)
		}
		msg.Headers = []cdc.Header{{Key: e.cfg.SchemaHeader, Value: []byte(e.ids[ch.Entity])}}
	}
	return msg, nil
}

func (e *Encoder) registryIDFor(ctx context.Context, entity string, ws *writerSchema) (int, error) {
	e.mu.Lock()
	id, ok := e.registryID[entity]
	e.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := e.cfg.Registry.ID(ctx, e.cfg.Subject(entity), ws.text)
	if err != nil {
		return 0, fmt.Errorf("synth: registering %s schema: %w", entity, err)
	}
	e.mu.Lock()
	e.registryID[entity] = id
	e.mu.Unlock()
	return id, nil
}

// connectorSpecial are the connector-shape fields that are not record data.
var connectorSpecial = map[string]bool{"Id": true, "ReplayId": true, "_ObjectType": true, "_EventType": true}

// body builds the goavro native record of a change.
func (e *Encoder) body(ws *writerSchema, ch Change) (map[string]any, error) {
	rec := make(map[string]any, len(ws.fields))
	nested := map[string]map[string]any{}
	var changed, nulled []string  // connector names
	var chBits, nuBits bitset     // Pub/Sub top-level bitmaps
	chNested := map[int]*bitset{} // Pub/Sub nested bitmaps by parent position
	nuNested := map[int]*bitset{}
	listFields := ch.Type == cdc.Update

	for _, f := range ch.Fields {
		if !f.Changed {
			continue
		}
		af, parent := ws.field(f.Name)
		if af == nil || af == ws.header || (parent == nil && e.cfg.Shape == ShapeConnector && connectorSpecial[f.Name]) {
			return nil, fmt.Errorf("field %q is not in the writer schema", f.Name)
		}
		if af.typ.prim == "record" {
			return nil, fmt.Errorf("field %q is a compound field: name its parts (%s.<child>)", f.Name, f.Name)
		}
		v, err := native(af.typ, af.sfType, f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		if parent == nil {
			rec[af.name] = v
		} else {
			m := nested[parent.name]
			if m == nil {
				m = map[string]any{}
				nested[parent.name] = m
			}
			m[af.name] = v
		}
		if !listFields {
			continue
		}
		changed = append(changed, f.Name)
		if f.Value.IsNull() {
			nulled = append(nulled, f.Name)
		}
		switch {
		case parent == nil:
			chBits.set(af.pos)
			if f.Value.IsNull() {
				nuBits.set(af.pos)
			}
		default:
			nestedBit(chNested, parent.pos, af.pos)
			if f.Value.IsNull() {
				nestedBit(nuNested, parent.pos, af.pos)
			}
		}
	}
	for pn, m := range nested {
		p := ws.byName[pn]
		for _, c := range p.typ.fields {
			if _, ok := m[c.name]; !ok {
				if !c.typ.nullable {
					return nil, fmt.Errorf("field %s.%s is not nullable and not set", pn, c.name)
				}
				m[c.name] = nil
			}
		}
		rec[pn] = p.typ.wrap(m)
	}

	var changedList, nulledList []any
	if e.cfg.Shape == ShapeConnector {
		changedList, nulledList = strList(changed), strList(nulled)
	} else {
		changedList, nulledList = bitmapList(chBits, chNested), bitmapList(nuBits, nuNested)
	}
	hdr, err := headerRecord(ws.header.typ, ch, changedList, nulledList)
	if err != nil {
		return nil, err
	}
	rec[ws.header.name] = hdr

	for _, f := range ws.fields {
		if _, ok := rec[f.name]; ok {
			continue
		}
		if e.cfg.Shape == ShapeConnector && connectorSpecial[f.name] {
			var s string
			switch f.name {
			case "Id":
				s = ch.RecordIDs[0]
			case "ReplayId":
				s = strconv.FormatInt(e.replay.Add(1), 10)
			case "_ObjectType":
				s = ch.Entity + "ChangeEvent"
			case "_EventType":
				s = e.ids[ch.Entity]
			}
			v, err := native(f.typ, "", cdc.String(s))
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.name, err)
			}
			rec[f.name] = v
			continue
		}
		if !f.typ.nullable {
			return nil, fmt.Errorf("field %s is not nullable and not set", f.name)
		}
		rec[f.name] = nil
	}
	return rec, nil
}

func nestedBit(m map[int]*bitset, parent, child int) {
	b := m[parent]
	if b == nil {
		b = &bitset{}
		m[parent] = b
	}
	b.set(child)
}

// headerRecord fills whatever ChangeEventHeader fields the schema has.
func headerRecord(t *avroType, ch Change, changed, nulled []any) (any, error) {
	h := make(map[string]any, len(t.fields))
	for _, f := range t.fields {
		var v any
		switch f.name {
		case "entityName":
			v = ch.Entity
		case "recordIds":
			v = strList(ch.RecordIDs)
		case "changeType":
			v = string(ch.Type)
		case "changeOrigin":
			v = ch.Header.ChangeOrigin
		case "transactionKey":
			v = ch.Header.TransactionKey
		case "sequenceNumber":
			v = ch.Version.SequenceNumber
		case "commitTimestamp":
			v = ch.Version.CommitTimestamp
		case "commitNumber":
			v = ch.Version.CommitNumber
		case "commitUser":
			v = ch.Header.CommitUser
		case "changedFields":
			v = changed
		case "nulledFields":
			v = nulled
		case "diffFields":
			v = []any{}
		default:
			if !f.typ.nullable {
				return nil, fmt.Errorf("header field %s is not nullable and unknown to the encoder", f.name)
			}
			h[f.name] = nil
			continue
		}
		switch f.typ.prim {
		case "int":
			if n, ok := v.(int64); ok {
				v = int32(n)
			}
		case "array":
			if v == nil {
				v = []any{}
			}
		}
		h[f.name] = f.typ.wrap(v)
	}
	return t.wrap(h), nil
}

func strList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// bitset is a little bitmap over field positions.
type bitset struct{ n big.Int }

func (b *bitset) set(i int)    { b.n.SetBit(&b.n, i, 1) }
func (b *bitset) isZero() bool { return b.n.Sign() == 0 }
func (b *bitset) hex() string  { return hexBitmap(&b.n) }

// hexBitmap renders N as Salesforce does: "0x" and big-endian hex digits,
// upper case, padded to whole bytes ("0x0503C0A0").
func hexBitmap(n *big.Int) string {
	return "0x" + strings.ToUpper(fmt.Sprintf("%x", n.Bytes()))
}

// bitmapList renders a field list: the top-level bitmap (if any bit is set)
// then one "P-0xHH" element per nested record, by position.
func bitmapList(top bitset, nested map[int]*bitset) []any {
	out := []any{}
	if !top.isZero() {
		out = append(out, top.hex())
	}
	ps := make([]int, 0, len(nested))
	for p := range nested {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	for _, p := range ps {
		out = append(out, strconv.Itoa(p)+"-"+nested[p].hex())
	}
	return out
}

// Bitmap returns the Pub/Sub bitmap field list naming fields of a writer
// schema ("Parent.Child" for nested fields), as the encoder writes it.
func Bitmap(schemaJSON string, fields ...string) ([]string, error) {
	ws, err := parseWriterSchema(schemaJSON)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	var top bitset
	nested := map[int]*bitset{}
	for _, name := range fields {
		f, parent := ws.field(name)
		if f == nil {
			return nil, fmt.Errorf("synth: field %q is not in the schema", name)
		}
		if parent == nil {
			top.set(f.pos)
		} else {
			nestedBit(nested, parent.pos, f.pos)
		}
	}
	var out []string
	for _, v := range bitmapList(top, nested) {
		out = append(out, v.(string))
	}
	return out, nil
}
