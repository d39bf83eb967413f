package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/oppsync/oppsync/pkg/config"
)

// command is the one flag-parsing path of every oppsync command. It is the
// standard flag package (which takes -name and --name, -name=value and
// -name value): the commands need nothing a CLI library would add, since
// flags named after dotted configuration keys are ordinary flags, and it
// keeps the dependency list short. -h/--help prints the command's synopsis,
// its flags with their defaults and an example to stdout (exit 0); any
// other problem is a one-line usage error (exit 2).
type command struct {
	name, synopsis, example string
	stdout                  io.Writer
	fs                      *flag.FlagSet

	configFile string
	configSet  map[string]string // --<config.key> values; nil without withConfig
}

// errHelp is returned once -h/--help printed the usage: exit 0.
var errHelp = errors.New("help requested")

func newCommand(name, synopsis, example string, stdout io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, help is printed by usage
	fs.Usage = func() {}
	return &command{name: name, synopsis: synopsis, example: example, stdout: stdout, fs: fs}
}

// withConfig adds --config FILE and a --<key> flag for every configuration
// key; config() loads them.
func (c *command) withConfig() *command {
	c.configSet = map[string]string{}
	c.fs.StringVar(&c.configFile, "config", "", "YAML configuration `file`; then OPPSYNC_* environment variables, then these flags (later wins)")
	for _, k := range config.Describe() {
		c.fs.Var(&configFlag{info: k, set: c.configSet}, k.Key, "configuration key (env "+k.Env+")")
	}
	return c
}

// parse parses args; positional arguments are a usage error.
func (c *command) parse(args []string) error {
	err := c.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(c.stdout)
		return errHelp
	}
	if err != nil {
		// The flag package names flags with one dash; the commands are
		// documented with two.
		msg := dashes.Replace(err.Error())
		return usagef("%s: %s (see oppsync %s --help)", c.name, msg, c.name)
	}
	if c.fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (see oppsync %s --help)", c.name, c.fs.Arg(0), c.name)
	}
	return nil
}

var dashes = strings.NewReplacer("for flag -", "for flag --", "not defined: -", "not defined: --", "needs an argument: -", "needs an argument: --")

// usage prints the synopsis, every flag with its default, and the example.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: oppsync %s %s\n\nflags:\n", c.name, c.synopsis)
	c.fs.VisitAll(func(f *flag.Flag) {
		arg, text := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n      %s", text)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	if c.example != "" {
		fmt.Fprintf(w, "\nexample:\n  %s\n", c.example)
	}
}

// config loads the configuration: defaults, --config file, environment,
// flags. A bad key or value is a usage error.
func (c *command) config() (*config.Config, error) {
	cfg, err := config.Load(config.LoadOptions{File: c.configFile, Environ: os.Environ(), Flags: c.configSet})
	if err != nil {
		var ke *config.KeyError
		if errors.As(err, &ke) {
			return nil, &usageError{err.Error()}
		}
		return nil, err
	}
	return cfg, nil
}

// configFlag is one --<config.key> flag: it records the raw value for
// config.Load, which parses and validates it with the other sources.
type configFlag struct {
	info config.KeyInfo
	set  map[string]string
}

func (f *configFlag) String() string {
	if f == nil {
		return ""
	}
	return f.info.Default
}

func (f *configFlag) Set(v string) error { f.set[f.info.Key] = v; return nil }

// IsBoolFlag lets --redis.tls stand alone for true.
func (f *configFlag) IsBoolFlag() bool { return f != nil && f.info.Bool }

// positive is a flag.Value for an int that must be > 0 (or >= 0 with zeroOK).
type positive struct {
	n      *int
	zeroOK bool
}

func (p positive) String() string {
	if p.n == nil {
		return ""
	}
	return strconv.Itoa(*p.n)
}

func (p positive) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (n == 0 && !p.zeroOK) {
		if p.zeroOK {
			return fmt.Errorf("want an integer >= 0, got %q", v)
		}
		return fmt.Errorf("want a positive integer, got %q", v)
	}
	*p.n = n
	return nil
}
