package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/config"
)

// Every command answers -h and --help with its usage on stdout and exit 0:
// its synopsis, each of its flags with its default, and an example.
func TestEveryCommandHasHelp(t *testing.T) {
	commands := map[string][]string{ // command → flags its help must list
		"run":       {"--config", "--kafka.brokers", "--redis.addrs", "--streams.maxlen"},
		"bridge":    {"--config", "--bridge.channels", "--bridge.max_in_flight", "--salesforce.client_id", "--kafka.brokers"},
		"config":    {"--config", "--org_id"},
		"import":    {"--opportunities", "--contact-roles", "--max-field-bytes", "--emit-triggers", "--kafka.brokers"},
		"resync":    {"--stale", "--ids", "--entity", "--salesforce.instance_url"},
		"demo":      {"--duration", "--rate", "--brokers"},
		"produce":   {"--brokers", "--count", "--framing"},
		"bench":     {"--events", "--partitions", "--instances"},
		"tail":      {"--stream", "--group", "--consumer", "--start", "--min-idle", "--format", "--count", "--redis.addrs", "--org_id"},
		"campaigns": {},
	}
	for name, flags := range commands {
		for _, h := range []string{"-h", "--help"} {
			t.Run(name+h, func(t *testing.T) {
				var out, errOut bytes.Buffer
				if code := realMain([]string{name, h}, &out, &errOut); code != 0 {
					t.Fatalf("exit %d, stderr %q", code, errOut.String())
				}
				help := out.String()
				if !strings.HasPrefix(help, "usage: oppsync "+name+" ") {
					t.Errorf("help does not start with the synopsis:\n%s", help)
				}
				if !strings.Contains(help, "\nexample:\n  oppsync "+name) && !strings.Contains(help, "\nexample:\n  OPPSYNC_") {
					t.Errorf("help has no example:\n%s", help)
				}
				for _, f := range flags {
					if !strings.Contains(help, "  "+f+" ") && !strings.Contains(help, "  "+f+"\n") {
						t.Errorf("help does not list %s:\n%s", f, help)
					}
				}
			})
		}
	}
}

// The configuration flags show the defaults config.Default holds.
func TestConfigFlagsShowDefaults(t *testing.T) {
	var out bytes.Buffer
	if code := realMain([]string{"run", "--help"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	def := config.Default()
	for _, want := range []string{
		"(default " + strings.Join(def.Kafka.Topics, ",") + ")",
		"(default " + def.Triggers.PendingRoleTimeout.String() + ")",
		"(default " + def.HTTP.Addr + ")",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

// Usage errors exit 2 with one line naming the problem.
func TestUsageErrorsExit2(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "usage: oppsync <command>"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"run", "stray"}, `run: unexpected argument "stray"`},
		{[]string{"run", "--no.such.key", "1"}, "run: flag provided but not defined: --no.such.key"},
		{[]string{"config", "--streams.maxlen", "many"}, "streams.maxlen"},
		{[]string{"import", "--batch", "0"}, `import: invalid value "0" for flag --batch: want a positive integer`},
		{[]string{"import"}, "give --opportunities and/or --contact-roles"},
		{[]string{"resync", "--stale", "--entity", "Opportunity"}, "exactly one of --stale"},
		{[]string{"produce", "--framing", "xml"}, "--framing must be pubsub or confluent"},
		{[]string{"demo", "--rate"}, "demo: flag needs an argument: --rate"},
		{[]string{"tail", "--stream", "added,everything"}, `tail: --stream "everything" is not one of added, removed, updated, dlq, resync, campaign:<id>`},
		{[]string{"tail", "--stream", "campaign:big deals"}, `tail: --stream "campaign:big deals": a campaign id is 1 to 64`},
		{[]string{"tail", "--stream", ","}, "tail: --stream names no stream"},
		{[]string{"tail", "--start", "now"}, `tail: --start must be earliest or latest, got "now"`},
		{[]string{"tail", "--min-idle", "0s"}, "tail: --min-idle must be a positive duration, got 0s"},
		{[]string{"tail", "--format", "xml"}, `tail: --format must be text or json, got "xml"`},
		{[]string{"tail", "--count", "-1"}, `tail: invalid value "-1" for flag --count`},
		{[]string{"bridge"}, "salesforce.instance_url: required by oppsync bridge"},
		{[]string{"bridge", "--bridge.start", "now"}, "bridge.start"},
		{[]string{"bridge", "--salesforce.instance_url", "https://acme.my.salesforce.com", "--salesforce.client_id", "x"}, "salesforce.client_secret"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := realMain(tt.args, &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("stderr %q does not name %q", errOut.String(), tt.want)
			}
			if tt.args != nil && strings.Count(strings.TrimSpace(errOut.String()), "\n") > 0 {
				t.Errorf("usage error is not one line: %q", errOut.String())
			}
		})
	}
}

// A boolean configuration key stands alone for true, like any bool flag.
func TestBoolConfigFlag(t *testing.T) {
	var out bytes.Buffer
	if code := realMain([]string{"config", "--redis.tls.enabled", "--org_id", "acme"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"org_id: acme", "enabled: true"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config output lacks %q:\n%s", want, out.String())
		}
	}
}
