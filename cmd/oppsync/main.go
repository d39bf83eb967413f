// Command oppsync turns Salesforce Change Data Capture events for
// Opportunity and OpportunityContactRole into person-level triggers in Redis
// streams (see README.md and CONTRACT.md).
//
//	oppsync run [--config FILE] [--<key>=<value> ...]
//	oppsync bridge [--config FILE] [--<key>=<value> ...]
//	oppsync demo [--duration D] [--brokers B] [--redis A] [--rate N]
//	oppsync produce --brokers B [--count N] [--rate N] [--framing pubsub|confluent] ...
//	oppsync tail [--stream added|removed|updated|dlq|resync|campaign:ID] [--group G] [--consumer NAME] ...
//	oppsync campaigns apply -f FILE | list | delete ID   manage campaign definitions
//	oppsync config [--config FILE]   print the effective configuration, secrets masked
//	oppsync version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/oppsync/oppsync/pkg/config"
)

// Set by the build (-ldflags "-X main.version=... -X main.commit=...").
var (
	version = "dev"
	commit  = "unknown"
)

// usageError is a bad command line or configuration: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const usage = `usage: oppsync <command> [flags]

commands:
  run       consume, apply, emit, serve HTTP (flags: --config FILE, --<config.key>=VALUE)
  bridge    Salesforce Pub/Sub API → Kafka: subscribe to bridge.channels, write raw events (flags: as run)
  demo      the service on embedded defaults with generated Salesforce traffic
  produce   publish synthetic Salesforce CDC events to a Kafka cluster
  bench     drive generated events through the pipeline against real Kafka and Redis
  config    print the effective configuration with secrets masked
  import    seed the state from Salesforce Bulk API CSV exports (--opportunities F,... --contact-roles F,...)
  resync    re-read records from Salesforce now (--stale | --ids ID,... | --entity E)
  tail      follow output streams as a consumer group, print and acknowledge each entry (--stream added|removed|updated|dlq|resync|campaign:ID)
  campaigns manage campaign definitions in Redis (apply -f FILE | list | delete ID)
  version   print version, commit and Go version
`

func main() {
	if os.Getenv("GOGC") == "" && (len(os.Args) < 2 || os.Args[1] != "import") {
		// The apply path allocates many short-lived objects; trading some
		// memory for less GC work measurably raises throughput. Not for
		// import, whose memory must stay flat whatever the file: there the
		// headroom would be most of its peak.
		debug.SetGCPercent(400)
	}
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "bridge":
		err = cmdBridge(ctx, args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "produce":
		err = cmdProduce(ctx, args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(ctx, args[1:], stdout, stderr)
	case "config":
		err = cmdConfig(args[1:], stdout)
	case "import":
		err = cmdImport(ctx, args[1:], stdout, stderr)
	case "resync":
		err = cmdResync(ctx, args[1:], stdout, stderr)
	case "tail":
		err = cmdTail(ctx, args[1:], stdout, stderr)
	case "campaigns":
		err = cmdCampaigns(ctx, args[1:], stdout)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "oppsync %s (commit %s, %s)\n", version, commit, runtime.Version())
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		err = usagef("unknown command %q (want run, bridge, demo, produce, bench, import, resync, tail, campaigns, config or version)", args[0])
	}
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	// The error may quote a configured URL: mask its credentials.
	fmt.Fprintf(stderr, "oppsync: %s\n", config.RedactURLs(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
