package campaigns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/oppsync/oppsync/pkg/filters"
)

// Limits of one definition (CONTRACT §8).
const (
	MaxTriggers = 10
	maxNameLen  = 200
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidID reports whether id is a campaign id ([A-Za-z0-9_-]{1,64}).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Qualification rules (CONTRACT §8).
const (
	EveryTime = "every_time"
	Once      = "once"
	Every     = "every"
)

// Qualification is a parsed qualification rule.
type Qualification struct {
	Rule   string        // EveryTime, Once or Every
	Window time.Duration // Every: a person does not enter again within it
}

// Definition is a campaign definition as stored and served: the request's
// keys with defaults filled and each part in a canonical JSON form (keys
// sorted, no spaces), so that the same definition always renders to the
// same bytes.
type Definition struct {
	CampaignID    string            `json:"campaign_id"`
	Name          string            `json:"name"`
	Active        bool              `json:"active"`
	Triggers      []json.RawMessage `json:"triggers"`
	Filters       []json.RawMessage `json:"filters"`
	Match         string            `json:"match,omitempty"`
	Logic         string            `json:"logic,omitempty"`
	Qualification json.RawMessage   `json:"qualification"`
}

// Stored is a definition with what storage adds.
type Stored struct {
	Definition
	Version   int64  `json:"version"`
	UpdatedAt string `json:"updated_at"`
	// QualifiedTotal counts the campaign entries written (GET of one).
	QualifiedTotal *int64 `json:"qualified_total,omitempty"`
}

// Campaign is a definition compiled for evaluation.
type Campaign struct {
	ID       string
	Version  int64
	Active   bool
	Triggers []*filters.Trigger
	// Filters is nil when the campaign has no person filters.
	Filters       *filters.Query
	Qualification Qualification
}

// InvalidError is a definition that does not validate; its text names the
// culprit by JSON path (`triggers[0].constraints[1]: unknown field "Amout"`).
type InvalidError struct{ msg string }

func (e *InvalidError) Error() string { return e.msg }

// Invalid marks the error as the client's (HTTP 400).
func (e *InvalidError) Invalid() bool { return true }

func invalid(format string, args ...any) error {
	return &InvalidError{fmt.Sprintf(format, args...)}
}

// Options are what validation needs besides the definition.
type Options struct {
	// Catalog lists the fields constraints may name.
	Catalog *filters.Catalog
	// Ignored are triggers.ignore_fields.
	Ignored []string
}

// keys a definition may have; version, updated_at and qualified_total are
// what a GET returns and are ignored, so a served definition can be applied
// again unchanged.
var defKeys = map[string]bool{
	"campaign_id": true, "name": true, "active": true, "triggers": true, "filters": true,
	"match": true, "logic": true, "qualification": true,
	"version": true, "updated_at": true, "qualified_total": true,
}

// Parse reads one definition (a JSON object) for campaign id (the path's;
// a campaign_id in the body must equal it) and validates it. It returns
// the canonical definition and its compiled form (Version 0).
func Parse(id string, body []byte, opts Options) (*Definition, *Campaign, error) {
	if !ValidID(id) {
		return nil, nil, invalid("campaign_id: %s is not [A-Za-z0-9_-]{1,64}", quote(id))
	}
	m, err := object(body)
	if err != nil {
		return nil, nil, invalid("body: %v", err)
	}
	return parseObject(id, m, "", opts)
}

func parseObject(id string, m map[string]json.RawMessage, path string, opts Options) (*Definition, *Campaign, error) {
	for k := range m {
		if !defKeys[k] {
			return nil, nil, invalid("%sunknown key %s", prefix(path), quote(k))
		}
	}
	d := &Definition{CampaignID: id, Active: true, Filters: []json.RawMessage{}}
	if r, ok := m["campaign_id"]; ok && !isNull(r) {
		var s string
		if json.Unmarshal(r, &s) != nil || s != id {
			return nil, nil, invalid("%scampaign_id: %s does not match the campaign id %s", dot(path), show(r), quote(id))
		}
	}
	if r, ok := m["name"]; !ok || isNull(r) {
		return nil, nil, invalid("%sname: missing", dot(path))
	} else if json.Unmarshal(r, &d.Name) != nil || strings.TrimSpace(d.Name) == "" || len(d.Name) > maxNameLen {
		return nil, nil, invalid("%sname: %s is not a non-empty string of at most %d bytes", dot(path), show(r), maxNameLen)
	}
	if r, ok := m["active"]; ok && !isNull(r) {
		if json.Unmarshal(r, &d.Active) != nil {
			return nil, nil, invalid("%sactive: %s is not a boolean", dot(path), show(r))
		}
	}
	c := &Campaign{ID: id, Active: d.Active}
	var trs []json.RawMessage
	if r, ok := m["triggers"]; ok && !isNull(r) {
		if json.Unmarshal(r, &trs) != nil {
			return nil, nil, invalid("%striggers: %s is not a list", dot(path), show(r))
		}
	}
	if len(trs) < 1 || len(trs) > MaxTriggers {
		return nil, nil, invalid("%striggers: %d triggers, want 1 to %d", dot(path), len(trs), MaxTriggers)
	}
	for i, raw := range trs {
		t, err := filters.ParseTrigger(raw, opts.Catalog, filters.TriggerOptions{Ignored: opts.Ignored})
		if err != nil {
			return nil, nil, invalid("%striggers[%d]%v", dot(path), i, err)
		}
		c.Triggers = append(c.Triggers, t)
		d.Triggers = append(d.Triggers, canonical(raw))
	}
	// The person filters are a query body without paging.
	q := map[string]json.RawMessage{}
	for _, k := range []string{"filters", "match", "logic"} {
		if r, ok := m[k]; ok && !isNull(r) {
			q[k] = r
		}
	}
	qb, _ := json.Marshal(q)
	query, err := filters.Parse(qb, opts.Catalog, time.Unix(0, 0).UTC())
	if err != nil {
		return nil, nil, invalid("%s%v", dot(path), err)
	}
	if len(query.Filters) > 0 {
		c.Filters = query
		for _, raw := range mustList(q["filters"]) {
			d.Filters = append(d.Filters, canonical(raw))
		}
	}
	switch {
	case query.Logic != nil:
		_ = json.Unmarshal(q["logic"], &d.Logic)
	case query.Any:
		d.Match = "any"
	default:
		d.Match = "all"
	}
	c.Qualification, d.Qualification, err = parseQualification(m["qualification"])
	if err != nil {
		return nil, nil, invalid("%squalification: %v", dot(path), err)
	}
	return d, c, nil
}

func parseQualification(raw json.RawMessage) (Qualification, json.RawMessage, error) {
	if len(raw) == 0 || isNull(raw) {
		return Qualification{Rule: EveryTime}, json.RawMessage(`"every_time"`), nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case EveryTime, Once:
			return Qualification{Rule: s}, canonical(raw), nil
		}
		return Qualification{}, nil, fmt.Errorf("%s is not \"every_time\", \"once\" or {\"every\": duration}", show(raw))
	}
	m, err := object(raw)
	if err != nil || len(m) != 1 || m[Every] == nil {
		return Qualification{}, nil, fmt.Errorf("%s is not \"every_time\", \"once\" or {\"every\": duration}", show(raw))
	}
	if json.Unmarshal(m[Every], &s) != nil {
		return Qualification{}, nil, fmt.Errorf("every: %s is not a duration", show(m[Every]))
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Qualification{}, nil, fmt.Errorf("every: %s is not a positive duration (e.g. \"720h\")", show(m[Every]))
	}
	return Qualification{Rule: Every, Window: d}, canonical(raw), nil
}

// Body renders the definition's canonical JSON: what storage compares to
// decide that an apply changes nothing.
func (d *Definition) Body() string {
	b, _ := json.Marshal(d)
	return string(b)
}

// Compile validates a stored definition again (the catalog only grows, but
// access.hidden_fields or triggers.ignore_fields may have changed since).
func (s *Stored) Compile(opts Options) (*Campaign, error) {
	b, _ := json.Marshal(&s.Definition)
	_, c, err := Parse(s.CampaignID, b, opts)
	if err != nil {
		return nil, err
	}
	c.Version = s.Version
	return c, nil
}

// ParseFile reads a file of definitions for `oppsync campaigns apply`: YAML
// or JSON, one definition or a list, each with its campaign_id. Errors
// name the definition by its position and id.
func ParseFile(data []byte, opts Options) ([]*Definition, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, invalid("file: not YAML or JSON: %v", err)
	}
	doc, err := jsonable(doc)
	if err != nil {
		return nil, invalid("file: %v", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, invalid("file: %v", err)
	}
	var list []json.RawMessage
	switch doc.(type) {
	case []any:
		_ = json.Unmarshal(b, &list)
	case map[string]any:
		list = []json.RawMessage{b}
	default:
		return nil, invalid("file: want a definition or a list of definitions")
	}
	var out []*Definition
	seen := map[string]bool{}
	for i, raw := range list {
		path := fmt.Sprintf("[%d]", i)
		m, err := object(raw)
		if err != nil {
			return nil, invalid("%s: %v", path, err)
		}
		var id string
		if json.Unmarshal(m["campaign_id"], &id) != nil || !ValidID(id) {
			return nil, invalid("%s.campaign_id: %s is not [A-Za-z0-9_-]{1,64}", path, show(m["campaign_id"]))
		}
		if seen[id] {
			return nil, invalid("%s.campaign_id: %s appears twice", path, quote(id))
		}
		seen[id] = true
		d, _, err := parseObject(id, m, path+" ("+id+")", opts)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// jsonable turns YAML-decoded values into what encoding/json can marshal
// (map keys must be strings).
func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("key %v is not a string", k)
			}
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			m[ks] = j
		}
		return m, nil
	case []any:
		for i, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// canonical renders a JSON value with sorted keys and no spaces, numbers
// kept as written.
func canonical(raw json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}

func mustList(raw json.RawMessage) []json.RawMessage {
	var l []json.RawMessage
	_ = json.Unmarshal(raw, &l)
	return l
}

func object(raw []byte) (map[string]json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	var m map[string]json.RawMessage
	if len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &m) != nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

const maxShown = 64

func show(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if s == "" {
		return "(missing)"
	}
	if len(s) > maxShown {
		s = strings.ToValidUTF8(s[:maxShown], "") + "…"
	}
	return s
}

func quote(s string) string {
	if len(s) > maxShown {
		s = strings.ToValidUTF8(s[:maxShown], "") + "…"
	}
	return strconv.Quote(s)
}

// prefix and dot render the path of a definition inside a file ("" for a
// request body, where paths start at the definition).
func prefix(path string) string {
	if path == "" {
		return "body: "
	}
	return path + ": "
}

func dot(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}
