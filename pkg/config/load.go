package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadOptions names the layers Load applies on top of Default().
type LoadOptions struct {
	// File is the YAML config file; empty means none.
	File string
	// Environ is the environment as os.Environ returns it. Only OPPSYNC_*
	// variables are read; nil means none (pass os.Environ() explicitly).
	Environ []string
	// Flags maps dotted keys to raw values, e.g. "kafka.brokers": "a:9092,b:9092".
	Flags map[string]string
}

// Load builds the configuration: defaults, then File, then Environ, then
// Flags (later wins), then secrets from *_file keys, then Validate. Every
// error is a *KeyError.
func Load(opts LoadOptions) (*Config, error) {
	var data []byte
	if opts.File != "" {
		b, err := os.ReadFile(opts.File)
		if err != nil {
			return nil, &KeyError{Err: fmt.Errorf("reading config file: %w", err)}
		}
		data = b
	}
	return load(data, opts)
}

// load is Load with the file's bytes already read.
func load(data []byte, opts LoadOptions) (*Config, error) {
	c := Default()
	if err := applyYAML(c, data); err != nil {
		return nil, err
	}
	if err := applyEnv(c, opts.Environ); err != nil {
		return nil, err
	}
	if err := applyFlags(c, opts.Flags); err != nil {
		return nil, err
	}
	if err := readSecretFiles(c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// maxAliasDepth bounds alias following so crafted files cannot recurse.
const maxAliasDepth = 16

func applyYAML(c *Config, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return &KeyError{Err: fmt.Errorf("parsing yaml: %w", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return &KeyError{Err: errors.New("config file must hold exactly one yaml document")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if isNull(root) {
		return nil
	}
	return walk(c, "", root, 0)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	default:
		return "an unsupported node"
	}
}

func deref(n *yaml.Node, key string, depth int) (*yaml.Node, error) {
	for n.Kind == yaml.AliasNode {
		depth++
		if depth > maxAliasDepth || n.Alias == nil {
			return nil, &KeyError{Key: key, Err: fmt.Errorf("line %d: aliases nested too deep", n.Line)}
		}
		n = n.Alias
	}
	return n, nil
}

// walk applies the mapping n found at group prefix ("" for the root).
func walk(c *Config, prefix string, n *yaml.Node, depth int) error {
	n, err := deref(n, prefix, depth)
	if err != nil {
		return err
	}
	if n.Kind != yaml.MappingNode {
		return &KeyError{Key: prefix, Err: fmt.Errorf("line %d: must be a mapping, got %s", n.Line, kindName(n))}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		kn, err := deref(kn, prefix, depth)
		if err != nil {
			return err
		}
		if kn.Kind != yaml.ScalarNode {
			return &KeyError{Key: prefix, Err: fmt.Errorf("line %d: keys must be scalars", kn.Line)}
		}
		key := kn.Value
		if prefix != "" {
			key = prefix + "." + kn.Value
		}
		if kn.Value == "<<" {
			return &KeyError{Key: key, Err: fmt.Errorf("line %d: merge keys are not supported", kn.Line)}
		}
		if first, dup := seen[kn.Value]; dup {
			return &KeyError{Key: key, Err: fmt.Errorf("line %d: duplicate key (first at line %d)", kn.Line, first)}
		}
		seen[kn.Value] = kn.Line
		switch l, isLeaf := byKey[key]; {
		case isLeaf:
			if err := setNode(c, l, vn, depth); err != nil {
				return err
			}
		case groups[key]:
			if v, err := deref(vn, key, depth); err != nil {
				return err
			} else if isNull(v) {
				continue
			}
			if err := walk(c, key, vn, depth+1); err != nil {
				return err
			}
		default:
			return &KeyError{Key: key, Err: fmt.Errorf("unknown key at line %d", kn.Line)}
		}
	}
	return nil
}

// setNode applies one YAML value to a leaf key. null resets the key to its
// zero value; lists take a sequence or a comma-separated string; currency.rates
// takes a mapping or "K=V,K=V".
func setNode(c *Config, l leaf, n *yaml.Node, depth int) error {
	n, err := deref(n, l.key, depth)
	if err != nil {
		return err
	}
	wrap := func(err error) error {
		return &KeyError{Key: l.key, Err: fmt.Errorf("line %d: %w", n.Line, err)}
	}
	fv := reflectValue(c).FieldByIndex(l.index)
	if isNull(n) {
		fv.Set(reflect.Zero(l.typ))
		return nil
	}
	switch {
	case n.Kind == yaml.ScalarNode:
		if err := setRaw(c, l, n.Value); err != nil {
			return wrap(err)
		}
	case n.Kind == yaml.SequenceNode && l.typ == stringsType:
		list := []string{}
		for _, item := range n.Content {
			item, err := deref(item, l.key, depth)
			if err != nil {
				return err
			}
			if item.Kind != yaml.ScalarNode || isNull(item) {
				return &KeyError{Key: l.key, Err: fmt.Errorf("line %d: list entries must be strings", item.Line)}
			}
			list = append(list, strings.TrimSpace(item.Value))
		}
		fv.Set(reflect.ValueOf(list))
	case n.Kind == yaml.MappingNode && l.typ == ratesType:
		m := map[string]float64{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, err := deref(n.Content[i], l.key, depth)
			if err != nil {
				return err
			}
			vn, err := deref(n.Content[i+1], l.key, depth)
			if err != nil {
				return err
			}
			if kn.Kind != yaml.ScalarNode || vn.Kind != yaml.ScalarNode {
				return &KeyError{Key: l.key, Err: fmt.Errorf("line %d: must map currency codes to numbers", kn.Line)}
			}
			r, err := parseRate(kn.Value, vn.Value)
			if err != nil {
				return &KeyError{Key: l.key, Err: fmt.Errorf("line %d: %w", vn.Line, err)}
			}
			m[kn.Value] = r
		}
		fv.Set(reflect.ValueOf(m))
	default:
		want := "a scalar"
		switch l.typ {
		case stringsType:
			want = "a list"
		case ratesType:
			want = "a mapping"
		}
		return wrap(fmt.Errorf("must be %s, got %s", want, kindName(n)))
	}
	return nil
}

func applyEnv(c *Config, environ []string) error {
	// Sorted so that the first error reported does not depend on the order
	// the environment happens to be in.
	vars := append([]string(nil), environ...)
	sort.Strings(vars)
	for _, kv := range vars {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || strings.HasPrefix(name, envTestPrefix) {
			continue
		}
		l, known := byEnv[name]
		if !known {
			return &KeyError{Key: name, Err: errors.New("unknown environment variable: no config key has this name")}
		}
		if err := setRaw(c, l, val); err != nil {
			return &KeyError{Key: l.key, Err: fmt.Errorf("from %s: %w", name, err)}
		}
	}
	return nil
}

func applyFlags(c *Config, flags map[string]string) error {
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l, known := byKey[k]
		if !known {
			return &KeyError{Key: k, Err: errors.New("unknown key (flag)")}
		}
		if err := setRaw(c, l, flags[k]); err != nil {
			return &KeyError{Key: k, Err: err}
		}
	}
	return nil
}

// readSecretFiles fills each secret from its <secret>_file key.
func readSecretFiles(c *Config) error {
	v := reflectValue(c)
	for _, key := range secrets {
		fl, ok := byKey[key+"_file"]
		if !ok {
			continue
		}
		path := v.FieldByIndex(fl.index).String()
		if path == "" {
			continue
		}
		sv := v.FieldByIndex(byKey[key].index)
		if sv.String() != "" {
			return &KeyError{Key: fl.key, Err: fmt.Errorf("set either %s or %s, not both", key, fl.key)}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return &KeyError{Key: fl.key, Err: fmt.Errorf("reading secret: %w", err)}
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return &KeyError{Key: fl.key, Err: fmt.Errorf("secret file %s is empty", path)}
		}
		sv.SetString(s)
	}
	return nil
}
