package filters

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Operators (CONTRACT §6).
const (
	OpIs         = "is"
	OpIsNot      = "is_not"
	OpContains   = "contains"
	OpNotContain = "not_contains"
	OpStartsWith = "starts_with"
	OpGt         = "gt"
	OpGte        = "gte"
	OpLt         = "lt"
	OpLte        = "lte"
	OpBetween    = "between"
	OpIsEmpty    = "is_empty"
	OpIsNotEmpty = "is_not_empty"
	OpBefore     = "before"
	OpAfter      = "after"
	OpInPast     = "in_past"
)

var operators = map[string]bool{
	OpIs: true, OpIsNot: true, OpContains: true, OpNotContain: true, OpStartsWith: true,
	OpGt: true, OpGte: true, OpLt: true, OpLte: true, OpBetween: true,
	OpIsEmpty: true, OpIsNotEmpty: true, OpBefore: true, OpAfter: true, OpInPast: true,
}

var filterKeys = map[string][]string{
	HasOpportunity: {"filter", "not", "constraints"},
	WasAdded:       {"filter", "not", "constraints", "within", "since", "until", "min_times"},
	WasRemoved:     {"filter", "not", "constraints", "within", "since", "until", "min_times"},
	Updated:        {"filter", "not", "constraints", "within", "since", "until", "min_times", "field"},
	NumberOfOpps:   {"filter", "not", "op", "value", "constraints"},
	TotalAmount:    {"filter", "not", "op", "value", "constraints"},
	TotalExpected:  {"filter", "not", "op", "value", "constraints"},
}

// MaxFilters and MaxConstraints bound a query's size.
const (
	MaxFilters     = 100
	MaxConstraints = 100
)

// Parse reads and validates a query body against the catalog; now is the
// clock "within" and "in_past" are measured from. The error names the
// offending key by its JSON path.
func Parse(body []byte, cat *Catalog, now time.Time) (*Query, error) {
	if cat == nil {
		cat = NewCatalog(nil)
	}
	top, err := object(body)
	if err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if err := onlyKeys(top, "filters", "match", "logic", "limit", "cursor"); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	q := &Query{Limit: DefaultLimit, Now: now}
	if raw, ok := top["match"]; ok && !isNull(raw) {
		if r, ok := top["logic"]; ok && !isNull(r) {
			return nil, errors.New("logic: cannot be combined with \"match\"")
		}
		var m string
		if json.Unmarshal(raw, &m) != nil || (m != "all" && m != "any") {
			return nil, fmt.Errorf("match: %s is not \"all\" or \"any\"", show(raw))
		}
		q.Any = m == "any"
	}
	if raw, ok := top["limit"]; ok {
		var n float64
		if json.Unmarshal(raw, &n) != nil || n != math.Trunc(n) || n < 1 || n > float64(MaxLimit) {
			return nil, fmt.Errorf("limit: %s is not an integer from 1 to %d", show(raw), MaxLimit)
		}
		q.Limit = int(n)
	}
	if raw, ok := top["cursor"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &q.Cursor) != nil {
			return nil, fmt.Errorf("cursor: %s is not a string", show(raw))
		}
		after, err := DecodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		q.After = after
	}
	var list []json.RawMessage
	if raw, ok := top["filters"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &list) != nil {
			return nil, fmt.Errorf("filters: %s is not a list", show(raw))
		}
	}
	if len(list) > MaxFilters {
		return nil, fmt.Errorf("filters: %d filters, at most %d allowed", len(list), MaxFilters)
	}
	for i, raw := range list {
		f, err := parseFilter(raw, cat, now)
		if err != nil {
			return nil, fmt.Errorf("filters[%d]%w", i, err)
		}
		q.Filters = append(q.Filters, f)
	}
	if raw, ok := top["logic"]; ok && !isNull(raw) {
		var expr string
		if json.Unmarshal(raw, &expr) != nil {
			return nil, fmt.Errorf("logic: %s is not a string", show(raw))
		}
		l, err := ParseLogic(expr, len(q.Filters))
		if err != nil {
			return nil, err
		}
		q.Logic = l
	}
	return q, nil
}

// pathErr is an error whose text starts with the rest of its JSON path
// (".op: ..." or ": ...").
func pathErr(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

func parseFilter(raw json.RawMessage, cat *Catalog, now time.Time) (*Filter, error) {
	m, err := object(raw)
	if err != nil {
		return nil, pathErr("", "%v", err)
	}
	var name string
	if r, ok := m["filter"]; !ok {
		return nil, pathErr("", "missing \"filter\"")
	} else if json.Unmarshal(r, &name) != nil {
		return nil, pathErr(".filter", "%s is not a string", show(r))
	}
	keys, ok := filterKeys[name]
	if !ok {
		return nil, pathErr("", "unknown filter %s", quote(name))
	}
	if err := onlyKeys(m, keys...); err != nil {
		return nil, pathErr("", "%v (filter %s)", err, name)
	}
	f := &Filter{Name: name}
	if r, ok := m["not"]; ok && !isNull(r) {
		if json.Unmarshal(r, &f.Not) != nil {
			return nil, pathErr(".not", "%s is not a boolean", show(r))
		}
	}
	if f.IsAggregate() {
		c, err := parseAggregate(m, name)
		if err != nil {
			return nil, err
		}
		f.Agg = c
	}
	if f.IsActivity() {
		if err := parseWindow(f, m, now); err != nil {
			return nil, err
		}
	}
	var fieldInfo Field
	if name == Updated {
		if r, ok := m["field"]; ok && !isNull(r) {
			if json.Unmarshal(r, &f.Field) != nil {
				return nil, pathErr(".field", "%s is not a string", show(r))
			}
			fi, ok := cat.Opportunity(f.Field)
			if !ok {
				return nil, pathErr(".field", "unknown field %s", quote(f.Field))
			}
			fieldInfo = fi
		}
	}
	var list []json.RawMessage
	if r, ok := m["constraints"]; ok && !isNull(r) {
		if json.Unmarshal(r, &list) != nil {
			return nil, pathErr(".constraints", "%s is not a list", show(r))
		}
	}
	if len(list) > MaxConstraints {
		return nil, pathErr(".constraints", "%d constraints, at most %d allowed", len(list), MaxConstraints)
	}
	for j, cr := range list {
		c, err := parseConstraint(cr, cat, f, fieldInfo, now)
		if err != nil {
			return nil, fmt.Errorf(".constraints[%d]%w", j, err)
		}
		if c.Field == FieldRole || c.Field == FieldIsPrimary {
			f.hasRoleConstraint = true
		}
		f.Constraints = append(f.Constraints, c)
	}
	return f, nil
}

func parseWindow(f *Filter, m map[string]json.RawMessage, now time.Time) error {
	f.Since, f.Until, f.MinTimes = math.MinInt64, maxMillis, 1
	within, hasWithin := m["within"]
	if hasWithin && !isNull(within) {
		if _, ok := m["since"]; ok {
			return pathErr("", "\"within\" and \"since\" cannot be combined")
		}
		d, err := duration(within)
		if err != nil {
			return pathErr(".within", "%v", err)
		}
		f.Since = now.Add(-d).UnixMilli()
		f.within = d
	}
	for _, k := range []string{"since", "until"} {
		r, ok := m[k]
		if !ok || isNull(r) {
			continue
		}
		var s string
		if json.Unmarshal(r, &s) != nil {
			return pathErr("."+k, "%s is not an RFC 3339 time", show(r))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return pathErr("."+k, "%s is not an RFC 3339 time", show(r))
		}
		if k == "since" {
			f.Since = t.UnixMilli()
		} else {
			f.Until = t.UnixMilli()
		}
	}
	if f.Since > f.Until {
		return pathErr("", "the window ends before it starts")
	}
	if r, ok := m["min_times"]; ok && !isNull(r) {
		var n float64
		if json.Unmarshal(r, &n) != nil || n != math.Trunc(n) || n < 1 || n > 1e9 {
			return pathErr(".min_times", "%s is not a whole number of at least 1", show(r))
		}
		f.MinTimes = int(n)
	}
	return nil
}

func duration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, fmt.Errorf("%s is not a duration", show(raw))
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s is not a positive duration (e.g. \"720h\")", show(raw))
	}
	return d, nil
}

var aggOps = map[string]bool{OpIs: true, OpIsNot: true, OpGt: true, OpGte: true, OpLt: true, OpLte: true, OpBetween: true}

func parseAggregate(m map[string]json.RawMessage, name string) (*Constraint, error) {
	op, err := opOf(m, ".op")
	if err != nil {
		return nil, err
	}
	if !aggOps[op] {
		return nil, pathErr(".op", "%s does not apply to %s", quote(op), name)
	}
	c := &Constraint{Field: name, Op: op, Kind: cdc.KindNumber, SalesforceType: "number", col: -1}
	if err := c.parseValue(m, ".value", name); err != nil {
		return nil, err
	}
	return c, nil
}

func opOf(m map[string]json.RawMessage, path string) (string, error) {
	r, ok := m["op"]
	if !ok {
		return "", pathErr(path, "missing")
	}
	var op string
	if json.Unmarshal(r, &op) != nil {
		return "", pathErr(path, "%s is not an operator", show(r))
	}
	if !operators[op] {
		return "", pathErr(path, "%s is not an operator", quote(op))
	}
	return op, nil
}

func parseConstraint(raw json.RawMessage, cat *Catalog, f *Filter, updatedField Field, now time.Time) (*Constraint, error) {
	return parseConstraintWith(raw, now, func(c *Constraint) error {
		switch c.Field {
		case FieldRole:
			c.Kind, c.SalesforceType = cdc.KindString, "picklist"
		case FieldIsPrimary:
			c.Kind, c.SalesforceType = cdc.KindBool, "boolean"
		case FieldOldValue, FieldNewValue:
			if f.Name != Updated {
				return pathErr("", "%s applies only to opportunity_updated", quote(c.Field))
			}
			if f.Field == "" {
				return pathErr("", "%s needs the filter's \"field\"", quote(c.Field))
			}
			c.Kind, c.SalesforceType = updatedField.Kind, updatedField.SalesforceType
		default:
			return c.resolveOpportunity(cat)
		}
		return nil
	})
}

// resolveOpportunity types c by the opportunity field it names.
func (c *Constraint) resolveOpportunity(cat *Catalog) error {
	fi, ok := cat.Opportunity(c.Field)
	if !ok {
		return pathErr("", "unknown field %s", quote(c.Field))
	}
	c.Field, c.Kind, c.SalesforceType, c.col = fi.Name, fi.Kind, fi.SalesforceType, column(fi.Name)
	return nil
}

// parseConstraintWith reads {"field","op","value"}; resolve types c by
// c.Field (or returns the path error of a field that cannot apply).
func parseConstraintWith(raw json.RawMessage, now time.Time, resolve func(c *Constraint) error) (*Constraint, error) {
	m, err := object(raw)
	if err != nil {
		return nil, pathErr("", "%v", err)
	}
	if err := onlyKeys(m, "field", "op", "value"); err != nil {
		return nil, pathErr("", "%v", err)
	}
	var name string
	if r, ok := m["field"]; !ok {
		return nil, pathErr("", "missing \"field\"")
	} else if json.Unmarshal(r, &name) != nil {
		return nil, pathErr(".field", "%s is not a string", show(r))
	}
	c := &Constraint{Field: name, col: -1}
	if err := resolve(c); err != nil {
		return nil, err
	}
	op, err := opOf(m, ".op")
	if err != nil {
		return nil, err
	}
	c.Op = op
	if !opApplies(op, c.Kind) {
		return nil, pathErr(".op", "%s does not apply to %s", quote(op), c.describe())
	}
	c.now = now.UnixMilli()
	if err := c.parseValue(m, ".value", c.describe()); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Constraint) describe() string {
	if c.SalesforceType == "" {
		return c.Field
	}
	return c.Field + " (" + c.SalesforceType + ")"
}

func ordered(k cdc.Kind) bool {
	return k == cdc.KindNumber || k == cdc.KindDate || k == cdc.KindDateTime
}

func opApplies(op string, k cdc.Kind) bool {
	switch op {
	case OpContains, OpNotContain, OpStartsWith:
		return k == cdc.KindString
	case OpGt, OpGte, OpLt, OpLte, OpBetween:
		return ordered(k)
	case OpBefore, OpAfter, OpInPast:
		return k == cdc.KindDate || k == cdc.KindDateTime
	}
	return true
}

// parseValue reads "value" for c.Op and c.Kind; what names the field in
// errors.
func (c *Constraint) parseValue(m map[string]json.RawMessage, path, what string) error {
	raw, has := m["value"]
	switch c.Op {
	case OpIsEmpty, OpIsNotEmpty:
		if has && !isNull(raw) {
			return pathErr(path, "%s takes no value", quote(c.Op))
		}
		return nil
	}
	if !has {
		return pathErr(path, "missing (operator %s needs one)", quote(c.Op))
	}
	switch c.Op {
	case OpInPast:
		d, err := duration(raw)
		if err != nil {
			return pathErr(path, "%v", err)
		}
		c.since = c.now - d.Milliseconds()
		c.past = d
		return nil
	case OpContains, OpNotContain, OpStartsWith:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return pathErr(path, "%s is not a string for %s", show(raw), what)
		}
		c.strs = []string{strings.ToLower(s)}
		return nil
	}
	var items []json.RawMessage
	isList := len(bytes.TrimSpace(raw)) > 0 && bytes.TrimSpace(raw)[0] == '['
	switch {
	case c.Op == OpBetween:
		if !isList || json.Unmarshal(raw, &items) != nil || len(items) != 2 {
			return pathErr(path, "%s is not [low, high]", show(raw))
		}
	case isList && (c.Op == OpIs || c.Op == OpIsNot):
		if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
			return pathErr(path, "%s is not a non-empty list", show(raw))
		}
		if len(items) > 1000 {
			return pathErr(path, "a list of %d values, at most 1000 allowed", len(items))
		}
	default:
		items = []json.RawMessage{raw}
	}
	for _, it := range items {
		if err := c.addValue(it, what); err != nil {
			return pathErr(path, "%v", err)
		}
	}
	return nil
}

func (c *Constraint) addValue(raw json.RawMessage, what string) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%s is not JSON", show(raw))
	}
	switch c.Kind {
	case cdc.KindNumber:
		n, ok := v.(float64)
		if !ok {
			return fmt.Errorf("%s is not a number for %s", show(raw), what)
		}
		c.nums = append(c.nums, n)
	case cdc.KindBool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%s is not a boolean for %s", show(raw), what)
		}
		c.nums = append(c.nums, boolNum(b))
	case cdc.KindDate, cdc.KindDateTime:
		s, ok := v.(string)
		ms, err := parseTime(s, c.Kind)
		if !ok || err != nil {
			want := "a date (YYYY-MM-DD)"
			if c.Kind == cdc.KindDateTime {
				want = "an RFC 3339 time"
			}
			return fmt.Errorf("%s is not %s for %s", show(raw), want, what)
		}
		c.nums = append(c.nums, float64(ms))
	default:
		switch x := v.(type) {
		case string:
			c.strs = append(c.strs, strings.ToLower(x))
		case float64:
			c.strs = append(c.strs, strings.ToLower(strconv.FormatFloat(x, 'f', -1, 64)))
		default:
			return fmt.Errorf("%s is not a string for %s", show(raw), what)
		}
	}
	return nil
}

func boolNum(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// parseTime reads a date ("YYYY-MM-DD", midnight UTC) or an RFC 3339 time
// as ms since the epoch. Date fields accept only dates.
func parseTime(s string, k cdc.Kind) (int64, error) {
	if t, err := time.Parse(cdc.DateLayout, s); err == nil {
		return t.UnixMilli(), nil
	}
	if k == cdc.KindDate {
		return 0, errors.New("not a date")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

func object(raw []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	if err := json.Unmarshal(t, &m); err != nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

func onlyKeys(m map[string]json.RawMessage, allowed ...string) error {
	var bad []string
	for k := range m {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("unknown key %s", quote(bad[0]))
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// maxShown caps how much of a request value an error repeats.
const maxShown = 64

// show renders a request value for an error message, shortened.
func show(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > maxShown {
		s = strings.ToValidUTF8(s[:maxShown], "") + "…"
	}
	return s
}

// quote renders a name from the request for an error message, shortened.
func quote(s string) string {
	if len(s) > maxShown {
		s = strings.ToValidUTF8(s[:maxShown], "") + "…"
	}
	return strconv.Quote(s)
}

// ErrBadCursor is the error for a cursor this API did not issue.
var ErrBadCursor = errors.New("cursor: not a cursor issued by this API")

// EncodeCursor makes the opaque page cursor from the last person id of a
// page; DecodeCursor reverses it ("" is the first page).
func EncodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p:" + lastID))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), "p:") || len(b) == 2 {
		return "", ErrBadCursor
	}
	return string(b[2:]), nil
}
