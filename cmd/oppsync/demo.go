package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/source"
	"github.com/oppsync/oppsync/pkg/tail"
)

// cmdDemo runs the whole service on embedded defaults: an in-process
// Kafka-protocol broker and Redis (unless --brokers / --redis name real
// ones), generated Salesforce traffic, and a live feed of the triggers.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("demo", "[--duration D] [--rate N] [--brokers B --redis A] [--http ADDR]",
		"oppsync demo --duration 1m --rate 50 --http 127.0.0.1:8080", stdout)
	fs := c.fs
	brokers := fs.String("brokers", "", "use these Kafka brokers instead of the in-process broker")
	redisAddr := fs.String("redis", "", "use this Redis instead of the in-process one")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	rate := fs.Float64("rate", 20, "generated change events per second")
	opps := fs.Int("opportunities", 40, "opportunities in the synthetic org")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP address for the API, /metrics and /readyz")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "generator seed")
	verbose := fs.Bool("verbose", false, "log at info level too")
	if err := c.parse(args); err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	cfg := config.Default()
	cfg.OrgID = "demo"
	cfg.HTTP.Addr = *httpAddr
	cfg.Log.Format = "console"
	cfg.Log.Level = "warn"
	if *verbose {
		cfg.Log.Level = "info"
	}
	cfg.Triggers.PendingRoleTimeout = 5 * time.Second
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Kafka.GroupID = fmt.Sprintf("oppsync-demo-%d", time.Now().UnixNano())

	if *brokers == "" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, cfg.Kafka.Topics...))
		if err != nil {
			return fmt.Errorf("starting the in-process Kafka broker: %w", err)
		}
		defer cluster.Close()
		cfg.Kafka.Brokers = cluster.ListenAddrs()
	} else {
		cfg.Kafka.Brokers = splitComma(*brokers)
	}
	if *redisAddr == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("starting the in-process Redis: %w", err)
		}
		defer mr.Close()
		cfg.Redis.Addrs = []string{mr.Addr()}
	} else {
		cfg.Redis.Addrs = []string{*redisAddr}
	}
	if err := cfg.Validate(); err != nil {
		return &usageError{err.Error()}
	}

	o := produceOptions{brokers: cfg.Kafka.Brokers, rate: *rate, opportunities: *opps, org: cfg.OrgID, seed: *seed}
	enc, err := newEncoder(o)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	svc, err := newService(cfg, log, serviceOptions{schemas: []decode.SchemaSource{decode.NewMapSource(enc.Schemas())}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "oppsync demo: org %q, Kafka %s, Redis %s, API http://%s (try /v1/constraints, /v1/campaigns, /metrics)\n",
		cfg.OrgID, strings.Join(cfg.Kafka.Brokers, ","), cfg.Redis.Addrs[0], cfg.HTTP.Addr)
	campaignIDs, err := defineDemoCampaigns(ctx, svc, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tail.Header)

	w, err := source.NewWriter(cfg.Source())
	if err != nil {
		return err
	}
	defer w.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Commit times follow the wall clock, so the end-to-end lag is real.
		gen := synth.NewGenerator(synth.GenConfig{Org: cfg.OrgID, Seed: o.seed, Opportunities: o.opportunities, NoOracle: true,
			Start: time.Now(), Step: time.Duration(float64(time.Second) / o.rate)})
		if _, err := publish(runCtx, gen, enc, w, o, nil); err != nil && runCtx.Err() == nil {
			log.Error().Err(err).Msg("demo producer stopped")
		}
	}()
	go func() {
		defer wg.Done()
		if err := feed(runCtx, svc.rdb, cfg.OrgID, campaignIDs, stdout); err != nil {
			log.Error().Err(err).Msg("demo feed stopped")
		}
	}()
	err = svc.run(ctx)
	stopAll()
	return err
}

// demoCampaigns are the demo's example campaigns (CONTRACT §8).
var demoCampaigns = []struct{ id, body string }{
	{"decision-makers", `{"name": "Decision makers added to a deal over 50,000",
	  "triggers": [{"trigger": "added_to_opportunity",
	    "constraints": [{"field": "Role", "op": "is", "value": ["Decision Maker", "Economic Buyer"]},
	                    {"field": "Amount", "op": "gte", "value": 50000}]}],
	  "qualification": "once"}`},
	{"won-repeat-buyers", `{"name": "Closed Won for people with another open deal",
	  "triggers": [{"trigger": "opportunity_updated", "field": "StageName",
	    "constraints": [{"field": "new_value", "op": "is", "value": "Closed Won"}]}],
	  "filters": [{"filter": "number_of_opportunities", "op": "gte", "value": 1,
	               "constraints": [{"field": "IsClosed", "op": "is", "value": false}]}],
	  "qualification": {"every": "720h"}}`},
}

// defineDemoCampaigns stores the example campaigns and prints them.
func defineDemoCampaigns(ctx context.Context, svc *service, out io.Writer) ([]string, error) {
	var ids []string
	for _, c := range demoCampaigns {
		if _, _, err := svc.defs.Put(ctx, c.id, []byte(c.body)); err != nil {
			return nil, fmt.Errorf("defining the demo campaign %s: %w", c.id, err)
		}
		ids = append(ids, c.id)
	}
	fmt.Fprintf(out, "campaigns: %s (see /v1/campaigns; their entries are the \"campaign\" lines)\n", strings.Join(ids, ", "))
	return ids, nil
}

// feed prints trigger entries, and the entries of the campaigns, as they
// arrive, one line each, through the reference consumer (oppsync tail): a
// consumer group on the three trigger streams and the campaign streams,
// from their first entry.
func feed(ctx context.Context, rdb redis.UniversalClient, org string, campaignIDs []string, out io.Writer) error {
	var streams []string
	for _, kind := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		streams = append(streams, replica.OutputStreams(org)[kind])
	}
	for _, id := range campaignIDs {
		streams = append(streams, campaigns.NewKeys(org).Stream(id))
	}
	// Redis errors (not reachable yet while the service starts) are retried.
	c, err := tail.New(tail.Config{Streams: streams, Group: "demo", Consumer: "demo", Block: 500 * time.Millisecond}, rdb)
	if err != nil {
		return err
	}
	return c.Run(ctx, func(_ context.Context, e tail.Entry) error {
		_, err := fmt.Fprintln(out, tail.Line(e))
		return err
	})
}
