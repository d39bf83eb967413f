package main

import (
	"errors"
	"os"
	"strings"

	"github.com/oppsync/oppsync/pkg/config"
)

// parseConfigArgs reads --config FILE and --<dotted.key>=VALUE (or
// --<dotted.key> VALUE) flags and loads the configuration: defaults, file,
// environment, flags, later wins. extra names command-specific flags that
// take a value; they are returned separately.
func parseConfigArgs(args []string, extra map[string]bool) (*config.Config, map[string]string, error) {
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[k] = true
	}
	file := ""
	flags := map[string]string{}
	other := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			return nil, nil, usagef("unexpected argument %q", a)
		}
		name, val, hasVal := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !known[name] && name != "config" && !extra[name] {
			return nil, nil, usagef("unknown flag --%s", name)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, usagef("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		switch {
		case name == "config":
			file = val
		case extra[name]:
			other[name] = val
		default:
			flags[name] = val
		}
	}
	cfg, err := config.Load(config.LoadOptions{File: file, Environ: os.Environ(), Flags: flags})
	if err != nil {
		var ke *config.KeyError
		if errors.As(err, &ke) {
			return nil, nil, &usageError{err.Error()}
		}
		return nil, nil, err
	}
	return cfg, other, nil
}
