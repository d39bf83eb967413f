package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/tail"
)

// cmdTail is the reference consumer of the output streams (CONTRACT §10):
// a consumer group that claims what dead consumers left pending, prints
// each entry and acknowledges it.
func cmdTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("tail", "[--config FILE] [--stream added|removed|updated|dlq|resync|campaign:<id>[,...]] [--group G] [--consumer NAME] [--start earliest|latest] [--min-idle D] [--format text|json] [--count N]",
		"oppsync tail --config oppsync.yml --stream campaign:big-deals --group mailer --consumer mailer-1 --min-idle 1m", stdout).withConfig()
	streamList := c.fs.String("stream", "added,removed,updated", "streams to follow, comma-separated: added, removed, updated, dlq, resync, campaign:<campaignId>")
	group := c.fs.String("group", "oppsync-tail", "consumer group (created when missing)")
	host, _ := os.Hostname()
	consumer := c.fs.String("consumer", host, "this consumer's name in the group: stable across restarts, distinct between instances")
	start := c.fs.String("start", "earliest", "where a new group starts: earliest (every entry the stream holds) or latest (entries written from now on)")
	minIdle := c.fs.Duration("min-idle", 30*time.Second, "claim entries another consumer read and left unacknowledged this long")
	format := c.fs.String("format", "text", "text (one line per entry, as demo prints) or json (one {\"stream\",\"id\",\"fields\"} object per line)")
	count := 0
	c.fs.Var(positive{n: &count, zeroOK: true}, "count", "exit after handling this many entries (0: until interrupted)")
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	streams, err := tailStreams(cfg.OrgID, *streamList)
	if err != nil {
		return err
	}
	tcfg := tail.Config{Streams: streams, Group: *group, Consumer: *consumer, MinIdle: *minIdle,
		OnError: func(err error) { fmt.Fprintf(stderr, "oppsync tail: %v (retrying)\n", err) }}
	switch *start {
	case "earliest":
		tcfg.Start = tail.StartEarliest
	case "latest":
		tcfg.Start = tail.StartLatest
	default:
		return usagef("tail: --start must be earliest or latest, got %q", *start)
	}
	if *minIdle <= 0 {
		return usagef("tail: --min-idle must be a positive duration, got %s", *minIdle)
	}
	if *format != "text" && *format != "json" {
		return usagef("tail: --format must be text or json, got %q", *format)
	}
	if *group == "" || *consumer == "" {
		return usagef("tail: --group and --consumer must not be empty")
	}
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	consumerT, err := tail.New(tcfg, rdb)
	if err != nil {
		return usagef("%s", err)
	}
	if *format == "text" {
		fmt.Fprintln(stdout, tail.Header)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	handled := 0
	err = consumerT.Run(runCtx, func(_ context.Context, e tail.Entry) error {
		line := tail.Line(e)
		if *format == "json" {
			line = tail.JSON(e)
		}
		if _, err := fmt.Fprintln(stdout, line); err != nil {
			return fmt.Errorf("printing: %w", err) // stays pending: printed by the next run
		}
		if handled++; count > 0 && handled >= count {
			stop()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}

// campaignID is the form of a campaign id (CONTRACT §8).
var campaignID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// tailStreams maps --stream names to the org's stream keys.
func tailStreams(org, list string) ([]string, error) {
	out := replica.OutputStreams(org)
	short := map[string]string{"added": cdc.TriggerAdded, "removed": cdc.TriggerRemoved, "updated": cdc.TriggerUpdated}
	names := splitComma(list)
	if len(names) == 0 {
		return nil, usagef("tail: --stream names no stream")
	}
	var keys []string
	seen := map[string]bool{}
	for _, n := range names {
		var key string
		if id, ok := strings.CutPrefix(n, "campaign:"); ok {
			if !campaignID.MatchString(id) {
				return nil, usagef("tail: --stream %q: a campaign id is 1 to 64 of A-Z a-z 0-9 _ -", n)
			}
			// The campaign stream's key (CONTRACT §8).
			key = campaigns.NewKeys(org).Stream(id)
		} else {
			if long, ok := short[n]; ok {
				n = long
			}
			if key = out[n]; key == "" {
				return nil, usagef("tail: --stream %q is not one of added, removed, updated, dlq, resync, campaign:<id>", n)
			}
		}
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	return keys, nil
}
