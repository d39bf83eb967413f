package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the YAML layer: Load must never panic and
// must return either a valid config or a *KeyError.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("kafka: {tls: {enabled: !!binary aGk=}}\n"))
	f.Add([]byte("<<: {org_id: x}\n"))
	f.Add([]byte("currency: {rates: {EUR: .nan}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load(data, LoadOptions{})
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %v is %T, want *KeyError", err, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
		if _, err := c.YAML(); err != nil {
			t.Fatalf("YAML(): %v", err)
		}
	})
}
