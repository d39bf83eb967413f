package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/source"
)

// cmdBench drives generated events through the running pipeline with a
// real Kafka and Redis and reports throughput and the lag from Kafka append
// to trigger stream entry.
//
// Throughput mode (--rate 0): publish N events first, then start the service
// and time how long it takes to apply them all. Latency mode (--rate R):
// start the service, publish at R events/s, and measure each trigger entry's
// lag: the entry's Redis id time minus the message's broker append time (the
// topic uses LogAppendTime), both on this machine's clock.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("bench", "--brokers B --redis A [--events N] [--partitions N] [--instances N] [--rate R]",
		"oppsync bench --brokers localhost:9092 --redis localhost:6379 --events 100000 --partitions 6", stdout)
	fs := c.fs
	brokers := fs.String("brokers", "localhost:9092", "Kafka brokers")
	redisAddr := fs.String("redis", "localhost:6379", "Redis address")
	events := fs.Int("events", 100000, "events to drive through the pipeline")
	rate := fs.Float64("rate", 0, "publish rate in events/s (0: publish everything first and measure throughput)")
	partitions := fs.Int("partitions", 4, "partitions of the benchmark topic")
	opps := fs.Int("opportunities", 0, "opportunities in the synthetic org (default events/10)")
	instances := fs.Int("instances", 1, "service instances in one consumer group (in this process)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the apply phase to this file")
	nCampaigns := fs.Int("campaigns", 0, "define this many active campaigns first (a mix: half with trigger constraints only, half with one or two person filters, a fifth once)")
	personFilters := fs.Bool("campaign-filters", true, "give half of the --campaigns person filters (false: trigger constraints only)")
	campaignsFire := fs.Bool("campaigns-fire", true, "false: every --campaigns trigger also needs Amount ≥ 10^15, so all are evaluated and none writes an entry")
	ceilingFor := fs.Duration("ceiling-duration", 2*time.Second, "how long each of the two ceiling measurements (pipelined EVALSHA of a one-XADD script) runs")
	if err := c.parse(args); err != nil {
		return err
	}
	if *opps == 0 {
		*opps = max(*events/10, 50)
	}
	run := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	topic := run
	if err := createTopic(ctx, splitComma(*brokers), topic, *partitions, true); err != nil {
		return err
	}

	cfg := config.Default()
	cfg.OrgID = run
	cfg.Kafka.Brokers = splitComma(*brokers)
	cfg.Kafka.Topics = []string{topic}
	cfg.Kafka.GroupID = run
	cfg.Redis.Addrs = []string{*redisAddr}
	cfg.Log.Level = "warn"
	cfg.Log.Format = "console"
	cfg.ShutdownTimeout = 30 * time.Second

	o := produceOptions{brokers: cfg.Kafka.Brokers, count: *events, rate: *rate, opportunities: *opps, org: run, seed: 1, topic: topic}
	enc, err := newEncoder(o)
	if err != nil {
		return err
	}
	w, err := source.NewWriter(cfg.Source())
	if err != nil {
		return err
	}
	defer w.Close()
	gen := synth.NewGenerator(synth.GenConfig{Org: run, Seed: 1, Opportunities: *opps, Start: time.Now(), NoOracle: true,
		Step: time.Duration(float64(time.Second) / max(*rate, 1000))})

	var services []*service
	counter := func(name string) float64 {
		var total float64
		for _, svc := range services {
			mfs, _ := svc.reg.Gather()
			for _, mf := range mfs {
				if mf.GetName() == name {
					for _, m := range mf.GetMetric() {
						total += m.GetCounter().GetValue()
					}
				}
			}
		}
		return total
	}
	startServices := func() (func() error, error) {
		var stops []func() error
		for i := 0; i < *instances; i++ {
			c := *cfg
			c.HTTP.Addr = "127.0.0.1:0"
			svc, err := newService(&c, newLogger(c.Log, stderr), serviceOptions{schemas: []decode.SchemaSource{decode.NewMapSource(enc.Schemas())}})
			if err != nil {
				return nil, err
			}
			services = append(services, svc)
			sctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- svc.run(sctx) }()
			stops = append(stops, func() error { cancel(); return <-done })
		}
		return func() error {
			var errs []error
			for _, s := range stops {
				errs = append(errs, s())
			}
			return errors.Join(errs...)
		}, nil
	}

	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
	defer rdb.Close()
	prefix := "oppsync:{" + run + "}:"
	consumed := func() int64 {
		pos, _ := rdb.HGetAll(ctx, prefix+"positions").Result()
		var n int64
		for _, v := range pos {
			k, _ := strconv.ParseInt(v, 10, 64)
			n += k
		}
		return n
	}
	entries := func() int64 {
		var n int64
		for _, k := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
			n += rdb.XLen(ctx, prefix+"triggers:"+k).Val()
		}
		return n
	}
	// stable reports a consumer group in which every instance has its
	// share of the partitions: before that, instances joining one by one
	// rebalance the group, and what is measured is joins.
	stable := func() bool {
		total := 0
		for _, svc := range services {
			n := svc.src.Assigned()
			if n == 0 && *partitions >= *instances {
				return false
			}
			total += n
		}
		return total == *partitions
	}
	// waitAll waits until every event is applied. The throughput counts
	// from the moment the group is stable (the first event applied, with
	// one instance) and only the events applied after it.
	waitAll := func(timeout time.Duration) (start time.Time, before int64, end time.Time, err error) {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			n := consumed()
			if start.IsZero() && (*instances == 1 && n > 0 || *instances > 1 && stable()) {
				start, before = time.Now(), n
			}
			if n >= int64(*events) {
				if start.IsZero() {
					return start, before, time.Now(), fmt.Errorf("every event was applied before the %d instances shared the partitions: give more --events", *instances)
				}
				return start, before, time.Now(), nil
			}
			time.Sleep(20 * time.Millisecond)
		}
		return start, before, time.Now(), fmt.Errorf("only %d of %d events applied within %s", consumed(), *events, timeout)
	}

	if err := defineBenchCampaigns(ctx, cfg, rdb, *nCampaigns, *personFilters, *campaignsFire); err != nil {
		return err
	}
	campaignEntries := func() int64 {
		var n int64
		for i := 0; i < *nCampaigns; i++ {
			n += rdb.XLen(ctx, prefix+"campaign:"+benchCampaignID(i)).Val()
		}
		return n
	}
	defer func() {
		if *nCampaigns > 0 {
			fmt.Fprintf(stdout, "campaigns: %d active, %d campaign entries, %.0f evaluations\n", *nCampaigns, campaignEntries(),
				counter("oppsync_campaign_evaluations_total"))
		}
	}()
	fmt.Fprintf(stdout, "bench: %d events, %d partitions, %d instance(s), %d campaigns, topic %s\n", *events, *partitions, *instances, *nCampaigns, topic)
	if *rate == 0 {
		t0 := time.Now()
		if _, err := publish(ctx, gen, enc, w, o, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "published %d events in %s (%.0f/s)\n", *events, time.Since(t0).Round(time.Millisecond), float64(*events)/time.Since(t0).Seconds())
		// The ceiling, measured just before and just after the apply phase
		// on the same Redis, so the throughput can be compared across
		// machines and moments as a ratio.
		ceilingKey := prefix + "ceiling"
		ceil0, err := evalCeiling(ctx, rdb, *redisAddr, ceilingKey, *ceilingFor)
		if err != nil {
			return err
		}
		st0, err := readRedisStats(ctx, rdb)
		if err != nil {
			return err
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile() // also stopped before the second ceiling
		}
		go0, goOK := processCPU()
		stop, err := startServices()
		if err != nil {
			return err
		}
		first, before, last, werr := waitAll(10 * time.Minute)
		if err := stop(); err != nil && werr == nil {
			werr = err
		}
		if werr != nil {
			return werr
		}
		go1, _ := processCPU()
		st1, err := readRedisStats(ctx, rdb)
		if err != nil {
			return err
		}
		if *cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		ceil1, err := evalCeiling(ctx, rdb, *redisAddr, ceilingKey, *ceilingFor)
		if err != nil {
			return err
		}
		d := last.Sub(first)
		n := entries()
		measured := int64(*events) - before
		rate := float64(measured) / d.Seconds()
		if *instances > 1 {
			fmt.Fprintf(stdout, "the group was stable after %d events: measuring the other %d\n", before, measured)
		}
		ceiling := (ceil0 + ceil1) / 2
		fmt.Fprintf(stdout, "applied %d events in %s: %.0f events/s, %d trigger entries; %.0f scripts recomputed after conflicts\n",
			measured, d.Round(time.Millisecond), rate, n, counter("oppsync_apply_conflicts_total"))
		fmt.Fprintf(stdout, "ceiling: %.0f EVALSHA/s of a one-XADD script (%d connections x %d pipelined; %.0f before, %.0f after the run)\n",
			ceiling, ceilingConnections, ceilingPipeline, ceil0, ceil1)
		fmt.Fprintf(stdout, "ratio to the ceiling: %.1f %%\n", 100*rate/ceiling)
		redisCPU, cmds := st1.sub(st0)
		printCosts(stdout, *events, redisCPU, cmds, (go1 - go0).Seconds(), goOK)
		if ev := counter("oppsync_campaign_evaluations_total"); ev > 0 {
			fmt.Fprintf(stdout, "campaign evaluations: %.0f/s; redis-server CPU per evaluation %.2f µs (all of the run's CPU)\n",
				ev/d.Seconds(), redisCPU*1e6/ev)
		}
		return nil
	}

	stop, err := startServices()
	if err != nil {
		return err
	}
	// Wait for the group to form before producing, so lag is not join time.
	time.Sleep(3 * time.Second)
	t0 := time.Now()
	if _, err := publish(ctx, gen, enc, w, o, nil); err != nil {
		_ = stop()
		return err
	}
	_, _, _, werr := waitAll(5 * time.Minute)
	if err := stop(); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return werr
	}
	fmt.Fprintf(stdout, "published and applied %d events at %.0f/s in %s\n", *events, *rate, time.Since(t0).Round(time.Millisecond))
	lags, err := entryLags(ctx, rdb, prefix, cfg.Kafka.Brokers, topic, *partitions)
	if err != nil {
		return err
	}
	if len(lags) == 0 {
		return errors.New("no trigger entries to measure")
	}
	sort.Float64s(lags)
	q := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	fmt.Fprintf(stdout, "lag from Kafka append to stream entry over %d entries: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		len(lags), q(0.50), q(0.99), lags[len(lags)-1])
	if *nCampaigns > 0 {
		cl, err := campaignLags(ctx, rdb, prefix, *nCampaigns)
		if err != nil {
			return err
		}
		if len(cl) > 0 {
			sort.Float64s(cl)
			fmt.Fprintf(stdout, "lag from trigger entry to campaign entry over %d entries: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
				len(cl), cl[len(cl)/2], cl[min(len(cl)-1, len(cl)*99/100)], cl[len(cl)-1])
		}
	}
	return nil
}

// campaignLags pairs each campaign entry with its trigger entry (by
// trigger_event_id) and returns the difference of their stream ids' times.
func campaignLags(ctx context.Context, rdb *redis.Client, prefix string, n int) ([]float64, error) {
	at := map[string]int64{}
	for _, k := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		msgs, err := rdb.XRange(ctx, prefix+"triggers:"+k, "-", "+").Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			at[fmt.Sprint(m.Values["event_id"])] = streamMillis(m.ID)
		}
	}
	var lags []float64
	for i := 0; i < n; i++ {
		msgs, err := rdb.XRange(ctx, prefix+"campaign:"+benchCampaignID(i), "-", "+").Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if t, ok := at[fmt.Sprint(m.Values["trigger_event_id"])]; ok {
				lags = append(lags, float64(streamMillis(m.ID)-t))
			}
		}
	}
	return lags, nil
}

func streamMillis(id string) int64 {
	ms, _ := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64)
	return ms
}

func benchCampaignID(i int) string { return fmt.Sprintf("bench-%03d", i) }

// defineBenchCampaigns stores n campaigns of a realistic mix: even ones
// with trigger constraints only, odd ones with one or two person filters,
// every fifth "once".
func defineBenchCampaigns(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, n int, personFilters, fire bool) error {
	if n == 0 {
		return nil
	}
	store, err := newStore(ctx, cfg, rdb, 0)
	if err != nil {
		return err
	}
	defs, err := newCampaignStore(cfg, rdb, store)
	if err != nil {
		return err
	}
	roles := synth.Roles
	stages := []string{"Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"}
	for i := 0; i < n; i++ {
		var trig string
		switch i % 3 {
		case 0:
			trig = fmt.Sprintf(`{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":%q},{"field":"Amount","op":"gte","value":%d}]}`,
				roles[i%len(roles)], (i%10)*10000)
		case 1:
			trig = fmt.Sprintf(`{"trigger":"opportunity_updated","field":"StageName","constraints":[{"field":"new_value","op":"is","value":%q}]}`,
				stages[i%len(stages)])
		default:
			reasons := []string{"contact_role_deleted", "contact_changed", "opportunity_deleted"}
			trig = fmt.Sprintf(`{"trigger":"removed_from_opportunity","constraints":[{"field":"reason","op":"is","value":%q},{"field":"Role","op":"is","value":%q}]}`,
				reasons[i%len(reasons)], roles[i%len(roles)])
		}
		if !fire {
			trig = strings.Replace(trig, `"constraints":[`, `"constraints":[{"field":"Amount","op":"gte","value":1e15},`, 1)
		}
		body := fmt.Sprintf(`{"name":"bench %d","triggers":[%s]`, i, trig)
		if i%2 == 1 && personFilters {
			f := fmt.Sprintf(`{"filter":"number_of_opportunities","op":"gte","value":%d}`, 1+i%3)
			if i%4 == 1 {
				f += `,{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":false},{"field":"Amount","op":"gte","value":20000}]}`
			}
			body += `,"filters":[` + f + `]`
		}
		if i%5 == 0 {
			body += `,"qualification":"once"`
		}
		body += "}"
		if _, _, err := defs.Put(ctx, benchCampaignID(i), []byte(body)); err != nil {
			return fmt.Errorf("defining bench campaign %d: %w", i, err)
		}
	}
	return nil
}

// entryLags pairs each trigger entry with its source message's broker append
// time by (transaction key, sequence number).
func entryLags(ctx context.Context, rdb *redis.Client, prefix string, brokers []string, topic string, partitions int) ([]float64, error) {
	appended := map[string]time.Time{}
	dec, err := decode.New(decode.Config{}, decode.NewMapSource(mustEncoderSchemas()))
	if err != nil {
		return nil, err
	}
	for p := 0; p < partitions; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 200 * time.Millisecond})
		last, err := lastOffset(ctx, brokers[0], topic, p)
		if err != nil {
			r.Close()
			return nil, err
		}
		for off := int64(0); off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return nil, err
			}
			msg := cdc.Message{Value: m.Value}
			for _, h := range m.Headers {
				msg.Headers = append(msg.Headers, cdc.Header{Key: h.Key, Value: h.Value})
			}
			ev, err := dec.Decode(ctx, &msg)
			if err != nil {
				continue
			}
			appended[ev.Header.TransactionKey+"/"+strconv.FormatInt(ev.Header.SequenceNumber, 10)] = m.Time
		}
		r.Close()
	}
	var lags []float64
	for _, k := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		msgs, err := rdb.XRange(ctx, prefix+"triggers:"+k, "-", "+").Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			ms, _ := strconv.ParseInt(strings.SplitN(m.ID, "-", 2)[0], 10, 64)
			key := fmt.Sprint(m.Values["transaction_key"]) + "/" + fmt.Sprint(m.Values["sequence_number"])
			if at, ok := appended[key]; ok {
				lags = append(lags, float64(ms-at.UnixMilli()))
			}
		}
	}
	return lags, nil
}

func mustEncoderSchemas() map[string]string {
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		panic(err) // the embedded schemas compile; tests cover it
	}
	return enc.Schemas()
}

func lastOffset(ctx context.Context, broker, topic string, partition int) (int64, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, partition)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ReadLastOffset()
}

// createTopic creates a topic (an existing one is fine); appendTime makes
// its messages carry the broker's append time.
func createTopic(ctx context.Context, brokers []string, topic string, partitions int, appendTime bool) error {
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dialing %s: %w", brokers[0], err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return err
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return err
	}
	defer cc.Close()
	tc := kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}
	if appendTime {
		tc.ConfigEntries = []kafka.ConfigEntry{{ConfigName: "message.timestamp.type", ConfigValue: "LogAppendTime"}}
	}
	err = cc.CreateTopics(tc)
	if errors.Is(err, kafka.TopicAlreadyExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}
