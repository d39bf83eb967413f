package decode

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Decoder turns Kafka messages into normalised change events. Safe for
// concurrent use; compiled schemas are cached by schema id forever.
type Decoder struct {
	cfg     Config
	sources []SchemaSource
	hidden  map[string][]string // entity → hidden field names

	cache  sync.Map // schema id → *compiled
	cached atomic.Int64
	group  singleflight.Group
}

// compiled is a Schema plus what this Decoder derives from it once.
type compiled struct {
	s      *Schema
	id     string
	hidden []bool          // per flat field, for the schema's own entity
	info   []cdc.FieldInfo // visible fields, shared by every event
}

// New builds a Decoder. Schema sources are consulted in order: the schema
// directory (cfg.SchemaDir), the registry (cfg.RegistryURL), then extra.
func New(cfg Config, extra ...SchemaSource) (*Decoder, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Decoder{cfg: cfg, hidden: map[string][]string{}}
	if cfg.SchemaDir != "" {
		ds, err := NewDirSource(cfg.SchemaDir)
		if err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		d.sources = append(d.sources, ds)
	}
	if cfg.RegistryURL != "" {
		d.sources = append(d.sources, NewRegistry(cfg.RegistryURL, cfg.RegistryUsername, cfg.RegistryPassword, cfg.RegistryTimeout))
	}
	for _, s := range extra {
		if s != nil {
			d.sources = append(d.sources, s)
		}
	}
	for _, h := range cfg.HiddenFields {
		ent, field, _ := strings.Cut(h, ".")
		d.hidden[ent] = append(d.hidden[ent], field)
	}
	return d, nil
}

// SchemasCached returns how many compiled schemas the Decoder holds (the
// schemas_cached gauge).
func (d *Decoder) SchemasCached() int { return int(d.cached.Load()) }

// Decode decodes one message. Errors are *cdc.Error: permanent for bad
// input (unknown_framing, too_large, schema_not_found, schema_invalid,
// not_a_change_event, malformed_avro, bad_bitmap, bad_event, invalid_id),
// retryable when a schema source is unavailable. Error texts name schema
// ids, fields and bit positions, never field values; the entity name or id
// that is rejected is quoted shortened and escaped (cdc.QuoteInput).
func (d *Decoder) Decode(ctx context.Context, m *cdc.Message) (*cdc.Event, error) {
	if len(m.Value) > d.cfg.MaxMessageBytes {
		return nil, cdc.Permanent(cdc.ReasonTooLarge, "value of %d bytes exceeds the %d byte limit", len(m.Value), d.cfg.MaxMessageBytes)
	}
	var id string
	var payload []byte
	if h, ok := m.HeaderValue(d.cfg.SchemaHeader); ok {
		if !safeID(string(h)) {
			// The id names a file of schemas.dir and goes into errors and
			// logs: only plain names get that far.
			return nil, cdc.Permanent(cdc.ReasonSchemaNotFound, "header %s holds %s, not a schema id (1 to %d letters, digits, '-', '_', '.', '=', '+', not starting with '.')",
				d.cfg.SchemaHeader, cdc.QuoteInput(string(h)), maxIDLen)
		}
		id, payload = string(h), m.Value
	} else if len(m.Value) >= 5 && m.Value[0] == 0 {
		id = RegistryPrefix + strconv.FormatUint(uint64(binary.BigEndian.Uint32(m.Value[1:5])), 10)
		payload = m.Value[5:]
	} else {
		return nil, cdc.Permanent(cdc.ReasonUnknownFraming, "no %s header and no Confluent wire-format prefix (%d bytes)", d.cfg.SchemaHeader, len(m.Value))
	}
	c, err := d.schema(ctx, id)
	if err != nil {
		return nil, err
	}
	return d.decodeBody(c, payload)
}

// schema returns the compiled schema of id, fetching and compiling it once.
func (d *Decoder) schema(ctx context.Context, id string) (*compiled, error) {
	if v, ok := d.cache.Load(id); ok {
		return v.(*compiled), nil
	}
	v, err, _ := d.group.Do(id, func() (any, error) {
		if v, ok := d.cache.Load(id); ok {
			return v, nil
		}
		text, err := d.lookup(ctx, id)
		if err != nil {
			return nil, err
		}
		s, err := ParseSchema(text)
		if err != nil {
			var ce *cdc.Error
			if errors.As(err, &ce) {
				return nil, &cdc.Error{Reason: ce.Reason, Err: fmt.Errorf("schema %q: %w", id, ce.Err)}
			}
			return nil, err
		}
		c := d.compile(id, s)
		d.cache.Store(id, c)
		d.cached.Add(1)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*compiled), nil
}

func (d *Decoder) lookup(ctx context.Context, id string) (string, error) {
	var firstErr error
	for _, src := range d.sources {
		text, err := src.Schema(ctx, id)
		if err == nil {
			return text, nil
		}
		if isNotFound(err) {
			continue
		}
		var ce *cdc.Error
		if !errors.As(err, &ce) {
			err = cdc.Transient(cdc.ReasonRegistry, err)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", notFound(id)
}

func (d *Decoder) compile(id string, s *Schema) *compiled {
	c := &compiled{s: s, id: id}
	c.hidden, c.info = d.visibility(s, s.entity)
	return c
}

// visibility returns the hidden flags and visible field infos of s for
// entity.
func (d *Decoder) visibility(s *Schema, entity string) ([]bool, []cdc.FieldInfo) {
	hidden := make([]bool, len(s.flat))
	info := make([]cdc.FieldInfo, 0, len(s.flat))
	for i, f := range s.flat {
		for _, h := range d.hidden[entity] {
			if f.name == h || (strings.HasPrefix(f.name, h) && f.name[len(h)] == '.') {
				hidden[i] = true
			}
		}
		if !hidden[i] {
			info = append(info, s.info[i])
		}
	}
	return hidden, info
}

// header is a decoded ChangeEventHeader; list fields alias the payload.
type header struct {
	entity, changeType, origin, txKey, user string
	recordIDs                               []string
	seq, commitTS, commitNum                int64
	nulled, diff, changed                   [][]byte
}

func malformed(c *compiled, where string, err error) error {
	return cdc.Permanent(cdc.ReasonMalformedAvro, "schema %q: decoding %s: %w", c.id, where, err)
}

func (d *Decoder) decodeBody(c *compiled, payload []byte) (ev *cdc.Event, err error) {
	defer func() {
		// The reader checks every length; this is a last line of defence
		// so one hostile message can never take the service down.
		if p := recover(); p != nil {
			ev, err = nil, cdc.Permanent(cdc.ReasonMalformedAvro, "schema %q: decoder panic: %v", c.id, p)
		}
	}()
	s := c.s
	r := &reader{buf: payload}
	vals := make([]cdc.Value, len(s.flat))
	var h header
	var recordID, objectType string
	for pos := range s.top {
		tf := &s.top[pos]
		switch tf.role {
		case roleHeader:
			if err := readHeader(r, s, tf.typ, &h); err != nil {
				return nil, malformed(c, "ChangeEventHeader", err)
			}
		case roleID:
			if recordID, err = readString(r, tf.typ); err != nil {
				return nil, malformed(c, tf.name, err)
			}
		case roleObjectType:
			if objectType, err = readString(r, tf.typ); err != nil {
				return nil, malformed(c, tf.name, err)
			}
		case roleIgnored:
			if err := r.skip(tf.typ); err != nil {
				return nil, malformed(c, tf.name, err)
			}
		case roleData:
			if vals[tf.flat], err = readValue(r, tf.typ, s.flat[tf.flat].norm); err != nil {
				return nil, malformed(c, tf.name, err)
			}
		case roleNested:
			t := tf.typ
			if t.kind == tUnion {
				if t, err = r.branch(t); err != nil {
					return nil, malformed(c, tf.name, err)
				}
			}
			switch t.kind {
			case tNull:
			case tRecord:
				for j, f := range t.fields {
					if vals[tf.children[j]], err = readValue(r, f.typ, s.flat[tf.children[j]].norm); err != nil {
						return nil, malformed(c, tf.name+"."+f.name, err)
					}
				}
			default:
				// Another branch of a union with a record: its value, under
				// the parent's name (the children stay null).
				if tf.flat < 0 {
					if err := r.skip(t); err != nil {
						return nil, malformed(c, tf.name, err)
					}
				} else if vals[tf.flat], err = readValue(r, t, s.flat[tf.flat].norm); err != nil {
					return nil, malformed(c, tf.name, err)
				}
			}
		}
	}
	if r.pos != len(r.buf) {
		return nil, cdc.Permanent(cdc.ReasonMalformedAvro, "schema %q: %d bytes left after the record", c.id, len(r.buf)-r.pos)
	}
	ct, perr := cdc.ParseChangeType(h.changeType)
	if perr != nil {
		return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "schema %q: unknown change type", c.id)
	}
	ev = &cdc.Event{
		Entity:     h.entity,
		ChangeType: ct,
		RecordIDs:  h.recordIDs,
		Version:    cdc.Version{CommitTimestamp: h.commitTS, CommitNumber: h.commitNum, SequenceNumber: h.seq},
		Header:     cdc.EventHeader{TransactionKey: h.txKey, SequenceNumber: h.seq, CommitUser: h.user, ChangeOrigin: h.origin},
		SchemaID:   c.id,
	}
	if ev.Entity == "" {
		ev.Entity = strings.TrimSuffix(objectType, "ChangeEvent")
	}
	if ev.Entity == "" {
		ev.Entity = s.entity
	}
	if !cdc.ValidEntityName(ev.Entity) {
		// It would become a metric label and pick the hidden fields.
		return nil, cdc.Permanent(cdc.ReasonNotAChangeEvent, "schema %q: entity name %s is not a Salesforce API name", c.id, cdc.QuoteInput(ev.Entity))
	}
	if len(ev.RecordIDs) == 0 && recordID != "" {
		ev.RecordIDs = []string{recordID}
	}
	if len(ev.RecordIDs) == 0 {
		return nil, cdc.Permanent(cdc.ReasonBadEvent, "schema %q: %s event names no record id", c.id, ct)
	}
	hidden, info := c.hidden, c.info
	if ev.Entity != s.entity {
		hidden, info = d.visibility(s, ev.Entity)
	}
	ev.Schema = info
	if err := fillFields(ev, c, &h, vals, hidden); err != nil {
		return nil, err
	}
	// Record ids, OpportunityId and ContactId become parts of Redis keys.
	if err := cdc.CheckIDs(ev); err != nil {
		var ce *cdc.Error
		if errors.As(err, &ce) {
			return nil, &cdc.Error{Reason: ce.Reason, Err: fmt.Errorf("schema %q: %w", c.id, ce.Err)}
		}
		return nil, err
	}
	return ev, nil
}

// fillFields sets ev.Fields from the decoded values.
//
// CREATE, UNDELETE (and SNAPSHOT): every field the body carries, Changed.
// For the Pub/Sub shape that is every data field, nulls included; for the
// connector shape the non-null ones.
//
// UPDATE: a field is written when changedFields or nulledFields names it;
// it is nulled when nulledFields names it or its value is null. Salesforce
// lists set-to-null fields in both lists, and a null value under
// changedFields can only mean the same. Non-null fields not named are
// enriched fields (Changed=false); null fields not named are unchanged and
// left out. Fields named in diffFields carry a text diff rather than a
// value and are left out (oppsync cannot apply the diff). A connector event
// whose changedFields is empty marks every non-null field changed.
func fillFields(ev *cdc.Event, c *compiled, h *header, vals []cdc.Value, hidden []bool) error {
	s := c.s
	switch ev.ChangeType {
	case cdc.Create, cdc.Undelete, cdc.Snapshot:
		ev.Fields = make([]cdc.Field, 0, len(vals))
		for i, v := range vals {
			if hidden[i] || (s.connector && v.IsNull()) {
				continue
			}
			ev.Fields = append(ev.Fields, cdc.Field{Name: s.flat[i].name, Value: v, Changed: true})
		}
		return nil
	case cdc.Update:
	default:
		return nil
	}
	var b1, b2, b3 [4]uint64
	changed := newFieldSet(len(s.flat), &b1)
	nulled := newFieldSet(len(s.flat), &b2)
	diff := newFieldSet(len(s.flat), &b3)
	for _, l := range []struct {
		set  fieldSet
		list [][]byte
		name string
	}{{changed, h.changed, "changedFields"}, {nulled, h.nulled, "nulledFields"}, {diff, h.diff, "diffFields"}} {
		for _, e := range l.list {
			if err := s.expand(l.set, e); err != nil {
				var ce *cdc.Error
				if errors.As(err, &ce) {
					return &cdc.Error{Reason: ce.Reason, Err: fmt.Errorf("schema %q: %s: %w", c.id, l.name, ce.Err)}
				}
				return err
			}
		}
	}
	allChanged := s.connector && changed.empty() && nulled.empty()
	n := 0
	for i, v := range vals {
		if !v.IsNull() || changed.has(i) || nulled.has(i) {
			n++
		}
	}
	ev.Fields = make([]cdc.Field, 0, n)
	for i, v := range vals {
		if hidden[i] || diff.has(i) {
			continue
		}
		name := s.flat[i].name
		switch {
		case nulled.has(i):
			ev.Fields = append(ev.Fields, cdc.Field{Name: name, Value: cdc.Null, Changed: true})
		case changed.has(i) || (allChanged && !v.IsNull()):
			ev.Fields = append(ev.Fields, cdc.Field{Name: name, Value: v, Changed: true})
		case !v.IsNull():
			ev.Fields = append(ev.Fields, cdc.Field{Name: name, Value: v})
		}
	}
	return nil
}

func readHeader(r *reader, s *Schema, t *avroType, h *header) error {
	if t.kind == tUnion {
		var err error
		if t, err = r.branch(t); err != nil {
			return err
		}
		if t.kind == tNull {
			return errors.New("ChangeEventHeader is null")
		}
	}
	if t.kind != tRecord || len(t.fields) != len(s.header) {
		return errors.New("ChangeEventHeader has an unexpected type")
	}
	for i, f := range t.fields {
		var err error
		switch s.header[i] {
		case hEntity:
			h.entity, err = readString(r, f.typ)
		case hChangeType:
			h.changeType, err = readString(r, f.typ)
		case hOrigin:
			h.origin, err = readString(r, f.typ)
		case hTxKey:
			h.txKey, err = readString(r, f.typ)
		case hCommitUser:
			h.user, err = readString(r, f.typ)
		case hSeq:
			h.seq, err = readLong(r, f.typ)
		case hCommitTS:
			h.commitTS, err = readLong(r, f.typ)
		case hCommitNum:
			h.commitNum, err = readLong(r, f.typ)
		case hRecordIDs:
			var ids [][]byte
			if ids, err = readList(r, f.typ); err == nil && len(ids) > 0 {
				h.recordIDs = make([]string, len(ids))
				for j, id := range ids {
					h.recordIDs[j] = string(id)
				}
			}
		case hNulled:
			h.nulled, err = readList(r, f.typ)
		case hDiff:
			h.diff, err = readList(r, f.typ)
		case hChanged:
			h.changed, err = readList(r, f.typ)
		default:
			err = r.skip(f.typ)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// nonNullBranch reads a union index when t is a union; it returns nil for
// the null branch.
func nonNullBranch(r *reader, t *avroType) (*avroType, error) {
	if t.kind != tUnion {
		return t, nil
	}
	b, err := r.branch(t)
	if err != nil || b.kind == tNull {
		return nil, err
	}
	return b, nil
}

func readString(r *reader, t *avroType) (string, error) {
	t, err := nonNullBranch(r, t)
	if err != nil || t == nil {
		return "", err
	}
	switch t.kind {
	case tString, tBytes:
		b, err := r.bytes()
		return string(b), err
	case tEnum:
		i, err := r.long()
		if err != nil {
			return "", err
		}
		if i < 0 || i >= int64(len(t.symbols)) {
			return "", errBadIndex
		}
		return t.symbols[i], nil
	}
	return "", r.skip(t)
}

func readLong(r *reader, t *avroType) (int64, error) {
	t, err := nonNullBranch(r, t)
	if err != nil || t == nil {
		return 0, err
	}
	if t.kind == tInt {
		return r.int()
	}
	if t.kind == tLong {
		return r.long()
	}
	return 0, r.skip(t)
}

// readList reads an array of (nullable) strings as slices of the payload.
func readList(r *reader, t *avroType) ([][]byte, error) {
	t, err := nonNullBranch(r, t)
	if err != nil || t == nil {
		return nil, err
	}
	if t.kind != tArray {
		return nil, r.skip(t)
	}
	var out [][]byte
	for {
		n, err := r.blockCount(t.items)
		if err != nil || n == 0 {
			return out, err
		}
		if out == nil {
			out = make([][]byte, 0, n)
		}
		for ; n > 0; n-- {
			it, err := nonNullBranch(r, t.items)
			if err != nil {
				return nil, err
			}
			if it == nil {
				continue
			}
			if it.kind != tString {
				return nil, errors.New("list item is not a string")
			}
			b, err := r.bytes()
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
}

// readValue reads one data field value and normalises it (CONTRACT §4).
func readValue(r *reader, t *avroType, n norm) (cdc.Value, error) {
	t, err := nonNullBranch(r, t)
	if err != nil || t == nil {
		return cdc.Null, err
	}
	switch t.kind {
	case tInt, tLong:
		v, err := r.long()
		if err != nil {
			return cdc.Null, err
		}
		if t.kind == tInt && (v > math.MaxInt32 || v < math.MinInt32) {
			return cdc.Null, errVarint
		}
		switch t.logical {
		case "date":
			return cdc.DateFromDays(v), nil
		case "timestamp-millis", "local-timestamp-millis":
			return cdc.DateTimeFromMillis(v), nil
		case "timestamp-micros", "local-timestamp-micros":
			return cdc.DateTimeFromMillis(floorDiv(v, 1000)), nil
		}
		switch n {
		case normDate:
			return cdc.DateFromMillis(v), nil
		case normDateTime:
			return cdc.DateTimeFromMillis(v), nil
		case normString:
			return cdc.String(strconv.FormatInt(v, 10)), nil
		}
		return cdc.Number(float64(v)), nil
	case tFloat:
		b, err := r.fixed(4)
		if err != nil {
			return cdc.Null, err
		}
		return cdc.Number(float64(math.Float32frombits(le32(b)))), nil
	case tDouble:
		b, err := r.fixed(8)
		if err != nil {
			return cdc.Null, err
		}
		return cdc.Number(math.Float64frombits(le64(b))), nil
	case tBool:
		b, err := r.fixed(1)
		if err != nil {
			return cdc.Null, err
		}
		return cdc.Bool(b[0] != 0), nil
	case tString, tBytes, tEnum:
		s, err := readString(r, t)
		if err != nil {
			return cdc.Null, err
		}
		return cdc.String(s), nil
	case tFixed:
		b, err := r.fixed(t.size)
		return cdc.String(string(b)), err
	}
	// Arrays, maps and deeper records travel as JSON text.
	g, err := r.generic(t)
	if err != nil {
		return cdc.Null, err
	}
	text, err := json.Marshal(g)
	if err != nil { // NaN or Inf inside: JSON cannot carry it
		return cdc.Null, nil
	}
	return cdc.String(string(text)), nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
