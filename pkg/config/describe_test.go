package config

import (
	"reflect"
	"testing"
)

// The defaults Describe shows for the command line's help parse back into
// the defaults: given as flags, they change nothing.
func TestDescribeDefaultsRoundTrip(t *testing.T) {
	flags := map[string]string{}
	for _, k := range Describe() {
		if k.Env != EnvName(k.Key) {
			t.Errorf("%s: env %s, want %s", k.Key, k.Env, EnvName(k.Key))
		}
		if k.Default != "" {
			flags[k.Key] = k.Default
		}
	}
	if len(flags) < 20 {
		t.Fatalf("only %d keys have a default: %v", len(flags), flags)
	}
	got, err := Load(LoadOptions{Flags: flags})
	if err != nil {
		t.Fatalf("defaults given as flags: %v", err)
	}
	want, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults given as flags changed the configuration:\n%+v\nwant\n%+v", got, want)
	}
}
