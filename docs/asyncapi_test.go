// Package docs_test checks docs/asyncapi.yaml against what oppsync really
// reads and writes: the channels against the stream keys and topics, the
// message schemas against entries the real pipeline writes to a real Redis,
// and the examples against the schemas.
package docs_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"gopkg.in/yaml.v3"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/replica"
)

type node = map[string]any

// asyncAPI is the parsed document.
type asyncAPI struct{ root node }

func loadAsyncAPI(t *testing.T) *asyncAPI {
	t.Helper()
	b, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("docs/asyncapi.yaml: %v", err)
	}
	return &asyncAPI{root: root}
}

// ref resolves a local reference ("#/components/schemas/x").
func (d *asyncAPI) ref(r string) (node, error) {
	if !strings.HasPrefix(r, "#/") {
		return nil, fmt.Errorf("%q is not a local reference", r)
	}
	var cur any = d.root
	for _, p := range strings.Split(r[2:], "/") {
		m, ok := cur.(node)
		if !ok {
			return nil, fmt.Errorf("%q: %q is not an object", r, p)
		}
		if cur, ok = m[p]; !ok {
			return nil, fmt.Errorf("%q: no %q", r, p)
		}
	}
	n, ok := cur.(node)
	if !ok {
		return nil, fmt.Errorf("%q is not an object", r)
	}
	return n, nil
}

// deref follows $ref once, where there is one.
func (d *asyncAPI) deref(n node) (node, error) {
	if r, ok := n["$ref"].(string); ok {
		return d.ref(r)
	}
	return n, nil
}

func (d *asyncAPI) get(t *testing.T, path string) node {
	t.Helper()
	n, err := d.ref("#/" + path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// redisChannel is a channel on the redis server: its address for an org
// and the payload schema of its one message.
type redisChannel struct {
	id, address string
	payload     node
}

func (d *asyncAPI) redisChannels(t *testing.T, org string) []redisChannel {
	t.Helper()
	var out []redisChannel
	for id, c := range d.get(t, "channels") {
		ch := c.(node)
		if !onServer(ch, "#/servers/redis") {
			continue
		}
		msgs, _ := ch["messages"].(node)
		if len(msgs) != 1 {
			t.Fatalf("channel %s has %d messages, want 1", id, len(msgs))
		}
		for _, m := range msgs {
			msg, err := d.deref(m.(node))
			if err != nil {
				t.Fatalf("channel %s: %v", id, err)
			}
			payload, ok := msg["payload"].(node)
			if !ok {
				t.Fatalf("channel %s: message without payload", id)
			}
			addr := strings.ReplaceAll(ch["address"].(string), "{orgTag}", "{"+org+"}")
			out = append(out, redisChannel{id: id, address: addr, payload: payload})
		}
	}
	return out
}

func onServer(ch node, server string) bool {
	list, _ := ch["servers"].([]any)
	for _, s := range list {
		if m, ok := s.(node); ok && m["$ref"] == server {
			return true
		}
	}
	return false
}

// validate checks v (an entry field's string, or a value of decoded JSON)
// against schema. It knows the keywords the document uses and fails on
// any other, so nothing in the document goes unchecked.
func (d *asyncAPI) validate(schema node, v any, path string) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	for kw, arg := range schema {
		switch kw {
		case "description", "title", "examples", "x-json":
		case "$ref":
			target, err := d.ref(arg.(string))
			if err != nil {
				fail("%v", err)
				continue
			}
			errs = append(errs, d.validate(target, v, path)...)
		case "type":
			types := []any{arg}
			if l, ok := arg.([]any); ok {
				types = l
			}
			ok := false
			for _, ty := range types {
				ok = ok || isType(v, ty.(string))
			}
			if !ok {
				fail("%s is not of type %v", show(v), arg)
			}
		case "const":
			if !reflect.DeepEqual(v, arg) {
				fail("%s is not %v", show(v), arg)
			}
		case "enum":
			found := false
			for _, e := range arg.([]any) {
				found = found || reflect.DeepEqual(v, e)
			}
			if !found {
				fail("%s is not one of %v", show(v), arg)
			}
		case "pattern":
			if s, ok := v.(string); ok && !regexp.MustCompile(arg.(string)).MatchString(s) {
				fail("%s does not match %s", show(v), arg)
			}
		case "minLength":
			if s, ok := v.(string); ok && len(s) < arg.(int) {
				fail("%s is shorter than %v", show(v), arg)
			}
		case "format":
			if arg != "date-time" {
				fail("unknown format %v", arg)
			} else if s, ok := v.(string); ok {
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					fail("%s is not an RFC 3339 date-time", show(v))
				}
			}
		case "contentEncoding":
			if s, ok := v.(string); ok && arg == "base64" {
				if _, err := base64.StdEncoding.DecodeString(s); err != nil {
					fail("%s is not base64", show(v))
				}
			} else if arg != "base64" {
				fail("unknown contentEncoding %v", arg)
			}
		case "contentMediaType":
			s, ok := v.(string)
			if arg != "application/json" {
				fail("unknown contentMediaType %v", arg)
				continue
			}
			if !ok {
				continue
			}
			var decoded any
			if err := json.Unmarshal([]byte(s), &decoded); err != nil {
				fail("%s is not JSON: %v", show(v), err)
				continue
			}
			if inner, ok := schema["x-json"].(node); ok {
				errs = append(errs, d.validate(inner, decoded, path+"(json)")...)
			}
		case "properties", "required", "additionalProperties":
			obj, ok := v.(map[string]any)
			if !ok || kw != "properties" {
				continue // checked once, under "properties"
			}
			props, _ := arg.(node)
			for name, sub := range props {
				if fv, ok := obj[name]; ok {
					errs = append(errs, d.validate(sub.(node), fv, path+"."+name)...)
				}
			}
			for _, r := range asList(schema["required"]) {
				if _, ok := obj[r.(string)]; !ok {
					fail("required field %q is missing", r)
				}
			}
			errs = append(errs, d.additional(schema, obj, props, path)...)
		case "items":
			if l, ok := v.([]any); ok {
				for i, e := range l {
					errs = append(errs, d.validate(arg.(node), e, fmt.Sprintf("%s[%d]", path, i))...)
				}
			}
		default:
			fail("the test's validator does not know the keyword %q: teach it, or the document goes unchecked", kw)
		}
	}
	if _, hasProps := schema["properties"]; !hasProps {
		if obj, ok := v.(map[string]any); ok {
			if _, ok := schema["additionalProperties"]; ok {
				errs = append(errs, d.additional(schema, obj, nil, path)...)
			}
		}
	}
	return errs
}

// additional applies additionalProperties to the fields props does not
// name.
func (d *asyncAPI) additional(schema, obj, props node, path string) []error {
	var errs []error
	ap, ok := schema["additionalProperties"]
	if !ok {
		return nil
	}
	for name, fv := range obj {
		if _, named := props[name]; named {
			continue
		}
		switch a := ap.(type) {
		case bool:
			if !a {
				errs = append(errs, fmt.Errorf("%s: field %q is not documented", path, name))
			}
		case node:
			errs = append(errs, d.validate(a, fv, path+"."+name)...)
		}
	}
	return errs
}

func asList(v any) []any { l, _ := v.([]any); return l }

func isType(v any, ty string) bool {
	switch ty {
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func show(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	return string(b)
}

// entry turns stream fields into the object the schemas describe.
func entry(values map[string]any) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// The document's shape: AsyncAPI 3.0, every reference resolves, every
// example matches its message's schema, the Avro schemas it points to
// exist and compile, and the Kafka channels are the default topics with
// the default schema header.
func TestAsyncAPIDocument(t *testing.T) {
	d := loadAsyncAPI(t)
	if d.root["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi = %v, want 3.0.0", d.root["asyncapi"])
	}
	for id, op := range d.get(t, "operations") {
		ch, _ := op.(node)["channel"].(node)
		if _, err := d.deref(ch); err != nil || ch == nil {
			t.Errorf("operation %s: channel %v: %v", id, ch, err)
		}
	}
	kafkaTopics := map[string]bool{}
	for id, c := range d.get(t, "channels") {
		ch := c.(node)
		if onServer(ch, "#/servers/kafka") {
			kafkaTopics[ch["address"].(string)] = true
		}
		for name, m := range ch["messages"].(node) {
			msg, err := d.deref(m.(node))
			if err != nil {
				t.Errorf("channel %s message %s: %v", id, name, err)
				continue
			}
			payload := msg["payload"].(node)
			if format, ok := payload["schemaFormat"].(string); ok {
				if !strings.HasPrefix(format, "application/vnd.apache.avro") {
					t.Errorf("channel %s: schema format %s", id, format)
				}
				file := payload["schema"].(node)["$ref"].(string)
				b, err := os.ReadFile(filepath.FromSlash(file))
				if err != nil {
					t.Errorf("channel %s: %v", id, err)
				} else if _, err := goavro.NewCodec(string(b)); err != nil {
					t.Errorf("channel %s: %s is not an Avro schema: %v", id, file, err)
				}
				continue
			}
			exs := asList(msg["examples"])
			if len(exs) == 0 {
				t.Errorf("channel %s: message %s has no example", id, name)
			}
			for i, ex := range exs {
				for _, err := range d.validate(payload, ex.(node)["payload"], fmt.Sprintf("%s example %d", id, i)) {
					t.Error(err)
				}
			}
		}
	}
	want := map[string]bool{}
	for _, topic := range config.Default().Kafka.Topics {
		want[topic] = true
	}
	if !reflect.DeepEqual(kafkaTopics, want) {
		t.Errorf("Kafka channels %v, want the default kafka.topics %v", kafkaTopics, want)
	}
	headers := d.get(t, "components/schemas/pubsubHeaders")
	if req := asList(headers["required"]); len(req) != 1 || req[0] != config.Default().Kafka.SchemaHeader {
		t.Errorf("Pub/Sub headers require %v, want the default kafka.schema_header %q", req, config.Default().Kafka.SchemaHeader)
	}
	// The headers of a Pub/Sub framed message match the headers schema.
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := enc.Encode(context.Background(), synth.NewGenerator(synth.GenConfig{Seed: 1}).Next())
	if err != nil {
		t.Fatal(err)
	}
	hs := map[string]any{}
	for _, h := range m.Headers {
		hs[h.Key] = string(h.Value)
	}
	for _, err := range d.validate(headers, hs, "pubsub headers") {
		t.Error(err)
	}
}

// Every stream oppsync writes has a channel, and every Redis channel is a
// stream oppsync writes (the campaign streams by their key pattern).
func TestAsyncAPICoversEveryStream(t *testing.T) {
	d := loadAsyncAPI(t)
	const org = "acme"
	documented := map[string]string{}
	for _, c := range d.redisChannels(t, org) {
		documented[c.address] = c.id
	}
	for name, key := range replica.OutputStreams(org) {
		if documented[key] == "" {
			t.Errorf("stream %s (%s) has no channel in docs/asyncapi.yaml", name, key)
		}
		delete(documented, key)
	}
	campaign := "oppsync:{" + org + "}:campaign:{campaignId}"
	if documented[campaign] == "" {
		t.Errorf("no channel for the campaign streams (%s)", campaign)
	}
	delete(documented, campaign)
	for addr, id := range documented {
		t.Errorf("channel %s (%s) is not a stream oppsync writes", id, addr)
	}
}

// Entries the real pipeline wrote to a real Redis match the schema of
// their channel: every required field, no undocumented one, values of the
// documented form.
func TestAsyncAPIRealEntries(t *testing.T) {
	d := loadAsyncAPI(t)
	org, real := realStreams(t)
	byKey := map[string]redisChannel{}
	for _, c := range d.redisChannels(t, org) {
		byKey[c.address] = c
	}
	checked := map[string]bool{}
	names := make([]string, 0, len(real))
	for name := range real {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := replica.OutputStreams(org)[name]
		if name == "campaign" { // the channel of every campaign stream
			key = "oppsync:{" + org + "}:campaign:{campaignId}"
		}
		c, ok := byKey[key]
		if !ok {
			t.Errorf("stream %s has no channel", key)
			continue
		}
		checked[c.id] = true
		t.Run(c.id, func(t *testing.T) {
			if len(real[name]) == 0 {
				t.Fatalf("the pipeline wrote no %s entry: the check would be empty", name)
			}
			bad := 0
			for _, m := range real[name] {
				for _, err := range d.validate(c.payload, entry(m.Values), name+" "+m.ID) {
					if bad++; bad <= 10 {
						t.Error(err)
					}
				}
			}
			if bad > 10 {
				t.Errorf("... and %d more", bad-10)
			}
		})
	}
	for _, c := range byKey {
		if !checked[c.id] {
			t.Errorf("channel %s: no real entry was checked", c.id)
		}
	}
	// The pipeline wrote every kind of entry the check relies on.
	for _, kind := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated, replica.StreamDLQ, replica.StreamResync} {
		if len(real[kind]) == 0 {
			t.Errorf("no %s entry", kind)
		}
	}
	// The campaign stream holds entries of every trigger.
	kinds := map[string]bool{}
	for _, m := range real["campaign"] {
		kinds[fmt.Sprint(m.Values["trigger"])] = true
	}
	for _, kind := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		if !kinds[kind] {
			t.Errorf("no campaign entry for a %s entry", kind)
		}
	}
}

// The validator must be able to fail: each broken entry is rejected for
// the reason given.
func TestAsyncAPIValidatorRejects(t *testing.T) {
	d := loadAsyncAPI(t)
	ex := func(message string) map[string]any {
		msg := d.get(t, "components/messages/"+message)
		p := asList(msg["examples"])[0].(node)["payload"].(node)
		out := map[string]any{}
		for k, v := range p {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name, message string
		change        func(e map[string]any)
		want          string
	}{
		{"missing field", "addedToOpportunity", func(e map[string]any) { delete(e, "event_id") }, `required field "event_id" is missing`},
		{"extra field", "addedToOpportunity", func(e map[string]any) { e["debug"] = "x" }, `field "debug" is not documented`},
		{"wrong trigger", "removedFromOpportunity", func(e map[string]any) { e["trigger"] = "added_to_opportunity" }, "is not removed_from_opportunity"},
		{"bad reason", "addedToOpportunity", func(e map[string]any) { e["reason"] = "opportunity_deleted" }, "is not one of"},
		{"bad time", "opportunityUpdated", func(e map[string]any) { e["occurred_at"] = "2026-11-28 16:40:41" }, "does not match"},
		{"not JSON", "opportunityUpdated", func(e map[string]any) { e["new_value"] = "Closed Won" }, "is not JSON"},
		{"bad roles", "opportunityUpdated", func(e map[string]any) { e["roles"] = `[{"contact_role_id":"x","role":"","is_primary":"yes"}]` }, "is not of type boolean"},
		{"bad snapshot", "addedToOpportunity", func(e map[string]any) { e["opportunity"] = `{"Amount":[1]}` }, "is not of type"},
		{"bad base64", "deadLetter", func(e map[string]any) { e["value"] = "***" }, "is not base64"},
		{"bad record ids", "resyncRequest", func(e map[string]any) { e["record_ids"] = `["006"]` }, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ex(tc.message)
			tc.change(e)
			msg := d.get(t, "components/messages/"+tc.message)
			errs := d.validate(msg["payload"].(node), e, tc.message)
			if len(errs) == 0 || !strings.Contains(fmt.Sprint(errs), tc.want) {
				t.Errorf("errors %v, want one with %q", errs, tc.want)
			}
		})
	}
}
