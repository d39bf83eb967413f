// Package schemas embeds the Avro writer schemas oppsync ships for
// Salesforce change events: the Pub/Sub API shape (ChangeEventHeader at field
// 0, bitmap field lists, every data field ["null", T] with a "<Role>:<Type>"
// doc) and the Confluent Salesforce CDC Source connector shape (Id, ReplayId,
// plain field names, logical date types, _ObjectType, _EventType).
//
// The schemas are realistic, not authoritative: a real org's schema has its
// own field order and custom fields, and oppsync never hard-codes positions.
// They are used by the demo, the traffic generator and tests.
//
// Invariants: the returned texts are exactly the embedded files, so ID of a
// schema is stable across builds. The package does no I/O except WriteDir and
// emits no metrics.
package schemas

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

//go:embed *.avsc connector/*.avsc
var files embed.FS

// Entities lists the entities with embedded schemas.
var Entities = []string{"Opportunity", "OpportunityContactRole"}

// PubSub returns the Pub/Sub-shaped writer schema of entity
// ("Opportunity", "OpportunityContactRole"), or "" when there is none.
func PubSub(entity string) string { return read(entity + "ChangeEvent.avsc") }

// Connector returns the Confluent-connector-shaped schema of entity, or "".
func Connector(entity string) string { return read("connector/" + entity + "ChangeEvent.avsc") }

func read(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		return ""
	}
	return string(b)
}

// ID returns a deterministic Salesforce-style schema id for a schema text:
// the unpadded base64url encoding of the first 16 bytes of its SHA-256 (22
// characters, safe as a file name and a Kafka header value).
func ID(schemaJSON string) string {
	sum := sha256.Sum256([]byte(schemaJSON))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// WriteDir writes every Pub/Sub schema into dir as "<ID>.avsc" (the layout
// the decoder's schema directory expects), creating dir if needed, and
// returns nothing else; the ids are ID(PubSub(entity)).
func WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating schema dir: %w", err)
	}
	for _, e := range Entities {
		s := PubSub(e)
		if err := os.WriteFile(filepath.Join(dir, ID(s)+".avsc"), []byte(s), 0o644); err != nil {
			return fmt.Errorf("writing %s schema: %w", e, err)
		}
	}
	return nil
}

var avroName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// WithCustomField returns schemaJSON with one more top-level field appended:
// {"name": name, "type": ["null", avroType], "doc": doc, "default": null}.
// avroType is a primitive name ("double", "string", ...) or a JSON type
// (object or array text). It models a custom field added in Salesforce: the
// result has a new ID and every existing field keeps its position.
func WithCustomField(schemaJSON, name, avroType, doc string) (string, error) {
	if !avroName.MatchString(name) {
		return "", fmt.Errorf("custom field name %q is not a valid Avro name", name)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(schemaJSON), &top); err != nil {
		return "", fmt.Errorf("parsing schema: %w", err)
	}
	var fields []map[string]json.RawMessage
	if err := json.Unmarshal(top["fields"], &fields); err != nil {
		return "", fmt.Errorf("schema has no fields array: %w", err)
	}
	for _, f := range fields {
		var n string
		_ = json.Unmarshal(f["name"], &n)
		if n == name {
			return "", fmt.Errorf("schema already has a field %q", name)
		}
	}
	var typ json.RawMessage
	switch t := strings.TrimSpace(avroType); {
	case strings.HasPrefix(t, "{") || strings.HasPrefix(t, "["):
		if !json.Valid([]byte(t)) {
			return "", fmt.Errorf("avro type of %q is not valid JSON", name)
		}
		typ = json.RawMessage(t)
	case avroName.MatchString(t) || strings.Contains(t, "."):
		typ, _ = json.Marshal(t)
	default:
		return "", fmt.Errorf("avro type %q of %q is not a type name", avroType, name)
	}
	nameJSON, _ := json.Marshal(name)
	docJSON, _ := json.Marshal(doc)
	field := []byte(`{"name":` + string(nameJSON) + `,"type":["null",` + string(typ) + `],"doc":` + string(docJSON) + `,"default":null}`)
	raw, err := json.Marshal(fields)
	if err != nil {
		return "", fmt.Errorf("encoding fields: %w", err)
	}
	// Append the new field textually so the existing fields keep their order.
	all := append(raw[:len(raw)-1:len(raw)-1], append(append([]byte(","), field...), ']')...)
	if len(fields) == 0 {
		all = append([]byte("["), append(field, ']')...)
	}
	top["fields"] = all
	out, err := json.Marshal(top)
	if err != nil {
		return "", fmt.Errorf("encoding schema: %w", err)
	}
	return string(out), nil
}
