package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable that sets a key.
const EnvPrefix = "OPPSYNC_"

// envTestPrefix is reserved for test harnesses (e.g. OPPSYNC_TEST_REDIS_ADDR)
// and never read as configuration.
const envTestPrefix = "OPPSYNC_TEST_"

// leaf is one settable key of Config.
type leaf struct {
	key    string // dotted, e.g. "kafka.sasl.password"
	index  []int  // reflect field path from Config
	typ    reflect.Type
	secret bool
	url    bool // holds URLs or host:port addresses: Redacted masks their credentials
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	stringsType  = reflect.TypeOf([]string(nil))
	ratesType    = reflect.TypeOf(map[string]float64(nil))

	fields  = collect(reflect.TypeOf(Config{}), "", nil)
	byKey   = indexByKey(fields)
	byEnv   = indexByEnv(fields)
	groups  = collectGroups(fields)
	secrets = secretKeys(fields)
)

func collect(t reflect.Type, prefix string, index []int) []leaf {
	var out []leaf
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if sf.Type.Kind() == reflect.Struct {
			out = append(out, collect(sf.Type, key, idx)...)
			continue
		}
		out = append(out, leaf{key: key, index: idx, typ: sf.Type,
			secret: sf.Tag.Get("secret") == "true", url: sf.Tag.Get("url") == "true"})
	}
	return out
}

func indexByKey(ls []leaf) map[string]leaf {
	m := make(map[string]leaf, len(ls))
	for _, l := range ls {
		m[l.key] = l
	}
	return m
}

func indexByEnv(ls []leaf) map[string]leaf {
	m := make(map[string]leaf, len(ls))
	for _, l := range ls {
		m[EnvName(l.key)] = l
	}
	return m
}

func collectGroups(ls []leaf) map[string]bool {
	m := map[string]bool{}
	for _, l := range ls {
		parts := strings.Split(l.key, ".")
		for i := 1; i < len(parts); i++ {
			m[strings.Join(parts[:i], ".")] = true
		}
	}
	return m
}

func secretKeys(ls []leaf) []string {
	var out []string
	for _, l := range ls {
		if l.secret {
			out = append(out, l.key)
		}
	}
	return out
}

// Keys returns every dotted key, sorted.
func Keys() []string {
	out := make([]string, 0, len(fields))
	for _, l := range fields {
		out = append(out, l.key)
	}
	sort.Strings(out)
	return out
}

// SecretKeys returns the keys whose values are masked in Redacted output.
func SecretKeys() []string { return append([]string(nil), secrets...) }

// EnvName returns the environment variable of a dotted key:
// "kafka.sasl.password" → "OPPSYNC_KAFKA_SASL_PASSWORD".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

func reflectValue(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

// setRaw parses a raw string (environment, flag or YAML scalar) into the key's
// field. Error messages echo the raw value only for non-secret keys.
func setRaw(c *Config, l leaf, raw string) error {
	fv := reflectValue(c).FieldByIndex(l.index)
	show := func() string {
		if l.secret {
			return "(redacted)"
		}
		return strconv.Quote(raw)
	}
	switch {
	case l.typ == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("must be a duration like 30s or 1h, got %s", show())
		}
		fv.SetInt(int64(d))
	case l.typ == stringsType:
		fv.Set(reflect.ValueOf(splitList(raw)))
	case l.typ == ratesType:
		m, err := parseRates(raw)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(m))
	case l.typ.Kind() == reflect.String:
		fv.SetString(raw)
	case l.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("must be true or false, got %s", show())
		}
		fv.SetBool(b)
	case l.typ.Kind() == reflect.Int || l.typ.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, l.typ.Bits())
		if err != nil {
			return fmt.Errorf("must be an integer, got %s", show())
		}
		fv.SetInt(n)
	default:
		return fmt.Errorf("unsupported type %s", l.typ)
	}
	return nil
}

// splitList splits a comma-separated list, trimming blanks and dropping empty
// entries; "" is the empty list.
func splitList(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseRates parses "EUR=1.08,GBP=1.27".
func parseRates(raw string) (map[string]float64, error) {
	m := map[string]float64{}
	for _, item := range splitList(raw) {
		code, val, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("must be CODE=RATE pairs separated by commas, got %q", item)
		}
		code = strings.TrimSpace(code)
		r, err := parseRate(code, strings.TrimSpace(val))
		if err != nil {
			return nil, err
		}
		m[code] = r
	}
	return m, nil
}

func parseRate(code, val string) (float64, error) {
	r, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(r) || math.IsInf(r, 0) {
		return 0, fmt.Errorf("rate of %q must be a number, got %q", code, val)
	}
	return r, nil
}

// KeyInfo describes a key for a command line's help.
type KeyInfo struct {
	Key     string
	Env     string // its environment variable
	Default string // the default value as a flag would take it; "" when none
	Bool    bool   // a boolean: --key alone means true
}

// Describe returns every key with its default, sorted by key.
func Describe() []KeyInfo {
	def := reflectValue(Default())
	out := make([]KeyInfo, 0, len(fields))
	for _, l := range fields {
		out = append(out, KeyInfo{Key: l.key, Env: EnvName(l.key), Default: formatRaw(def.FieldByIndex(l.index)),
			Bool: l.typ.Kind() == reflect.Bool})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// formatRaw renders a value the way setRaw parses it.
func formatRaw(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Type() == stringsType:
		return strings.Join(v.Interface().([]string), ",")
	case v.Type() == ratesType:
		m := v.Interface().(map[string]float64)
		parts := make([]string, 0, len(m))
		for _, code := range sortedKeys(m) {
			parts = append(parts, code+"="+strconv.FormatFloat(m[code], 'g', -1, 64))
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(v.Interface())
	}
}
