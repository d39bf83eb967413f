package cdc

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Kind is the normalised type of a value.
type Kind uint8

// The value kinds. Date is "YYYY-MM-DD", DateTime is RFC 3339 UTC ms.
const (
	KindNull Kind = iota
	KindString
	KindNumber
	KindBool
	KindDate
	KindDateTime
)

var kindNames = [...]string{"null", "string", "number", "boolean", "date", "datetime"}

// String returns the catalog name of the kind.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// DateLayout and DateTimeLayout are the normalised text forms.
const (
	DateLayout     = "2006-01-02"
	DateTimeLayout = "2006-01-02T15:04:05.000Z"
)

// Value is a normalised field value.
type Value struct {
	Kind Kind
	Str  string  // KindString, KindDate, KindDateTime
	Num  float64 // KindNumber
	Bool bool    // KindBool
}

// Null is the null value.
var Null = Value{}

// String, Number, Bool build values.
func String(s string) Value  { return Value{Kind: KindString, Str: s} }
func Number(f float64) Value { return Value{Kind: KindNumber, Num: f} }
func Bool(b bool) Value      { return Value{Kind: KindBool, Bool: b} }

// Date builds a DateOnly value from epoch milliseconds (00:00 UTC of the day).
func DateFromMillis(ms int64) Value {
	return Value{Kind: KindDate, Str: time.UnixMilli(ms).UTC().Format(DateLayout)}
}

// DateFromDays builds a DateOnly value from days since the epoch (Avro "date").
func DateFromDays(days int64) Value {
	return Value{Kind: KindDate, Str: time.Unix(days*86400, 0).UTC().Format(DateLayout)}
}

// DateTimeFromMillis builds a DateTime value from epoch milliseconds.
func DateTimeFromMillis(ms int64) Value {
	return Value{Kind: KindDateTime, Str: FormatMillis(ms)}
}

// FormatMillis renders epoch milliseconds as RFC 3339 UTC with milliseconds.
func FormatMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format(DateTimeLayout) }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// Equal reports whether two values are the same normalised value.
func (v Value) Equal(o Value) bool { return v == o }

// JSON renders the value as JSON text (numbers without exponent where exact).
func (v Value) JSON() string {
	switch v.Kind {
	case KindNull:
		return "null"
	case KindNumber:
		return FormatNumber(v.Num)
	case KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	default:
		return string(AppendJSONString(make([]byte, 0, len(v.Str)+2), v.Str))
	}
}

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(v.JSON()), nil }

// FormatNumber renders a float as a JSON number; NaN and Inf become null
// since JSON cannot carry them.
func FormatNumber(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// ParseJSON reads a value rendered by JSON back, using kind to restore dates
// (which JSON carries as strings). A JSON null is Null whatever the kind.
func ParseJSON(text string, kind Kind) (Value, error) {
	if text == "" || text == "null" {
		return Null, nil
	}
	if v, ok := parsePlainJSON(text, kind); ok {
		return v, nil
	}
	return parseWithJSON(text, kind)
}

// parseWithJSON is ParseJSON's general path (encoding/json), for what the
// plain fast path does not read; the tests compare the two.
func parseWithJSON(text string, kind Kind) (Value, error) {
	if text == "" || text == "null" {
		return Null, nil
	}
	var raw any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return Null, fmt.Errorf("parsing value %q: %w", text, err)
	}
	switch x := raw.(type) {
	case string:
		if kind == KindDate || kind == KindDateTime {
			return Value{Kind: kind, Str: x}, nil
		}
		return String(x), nil
	case float64:
		return Number(x), nil
	case bool:
		return Bool(x), nil
	}
	return Null, fmt.Errorf("value %q is not a scalar", text)
}

// parsePlainJSON reads, without encoding/json, the values most stored
// fields hold (booleans, numbers, strings without escapes), exactly as
// ParseJSON would; ok is false for anything else.
func parsePlainJSON(text string, kind Kind) (Value, bool) {
	switch c := text[0]; {
	case text == "true":
		return Bool(true), true
	case text == "false":
		return Bool(false), true
	case c == '"':
		if len(text) < 2 || text[len(text)-1] != '"' {
			return Null, false
		}
		s := text[1 : len(text)-1]
		for i := 0; i < len(s); i++ {
			if b := s[i]; b < 0x20 || b == '"' || b == '\\' || b >= 0x80 {
				return Null, false // escapes, control bytes, non-ASCII: encoding/json decides
			}
		}
		if kind == KindDate || kind == KindDateTime {
			return Value{Kind: kind, Str: s}, true
		}
		return String(s), true
	case c == '-' || (c >= '0' && c <= '9'):
		if !jsonNumber(text) {
			return Null, false
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return Null, false
		}
		return Number(f), true
	}
	return Null, false
}

// jsonNumber reports whether s follows JSON's number grammar.
func jsonNumber(s string) bool {
	i := 0
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
