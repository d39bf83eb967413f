package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/source"
)

// produceOptions are what `oppsync produce` and the demo's generator share.
type produceOptions struct {
	brokers       []string
	count         int     // 0: until ctx ends
	rate          float64 // events per second; 0: as fast as possible
	framing       string
	shape         string
	registry      string
	opportunities int
	org           string
	seed          uint64
	topic         string // one topic for both entities; empty: one per entity
}

func cmdProduce(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("produce", "--brokers B [--count N] [--rate N] [--framing pubsub|confluent] [--shape pubsub|connector] ...",
		"oppsync produce --brokers localhost:9092 --count 10000 --rate 500", stdout)
	fs := c.fs
	var o produceOptions
	brokers := fs.String("brokers", "localhost:9092", "bootstrap brokers, comma-separated")
	fs.IntVar(&o.count, "count", 1000, "events to publish (0: until interrupted)")
	fs.Float64Var(&o.rate, "rate", 100, "events per second (0: as fast as possible)")
	fs.StringVar(&o.framing, "framing", "pubsub", "pubsub (raw payload + schema header) or confluent (wire format + registry)")
	fs.StringVar(&o.shape, "shape", "pubsub", "body shape: pubsub (bitmaps) or connector (field names)")
	fs.StringVar(&o.registry, "registry", "", "Schema Registry URL (confluent framing)")
	fs.IntVar(&o.opportunities, "opportunities", 200, "opportunities in the synthetic org")
	fs.StringVar(&o.org, "org", "default", "org id the generator's expected event ids use")
	fs.Uint64Var(&o.seed, "seed", 1, "generator seed: same seed, same traffic")
	fs.StringVar(&o.topic, "topic", "", "publish both entities to this one topic (default: one topic per entity)")
	partitions := fs.Int("partitions", 4, "partitions of topics that do not exist yet (created with replication factor 1)")
	if err := c.parse(args); err != nil {
		return err
	}
	o.brokers = splitComma(*brokers)
	enc, err := newEncoder(o)
	if err != nil {
		return err
	}
	w, err := source.NewWriter(source.Config{Brokers: o.brokers, Topics: []string{"unused"}, GroupID: "produce"})
	if err != nil {
		return usagef("produce: %v", err)
	}
	defer w.Close()
	topics := []string{o.topic}
	if o.topic == "" {
		topics = []string{synth.Topic(cdc.EntityOpportunity), synth.Topic(cdc.EntityContactRole)}
	}
	for _, t := range topics {
		if err := createTopic(ctx, o.brokers, t, *partitions, false); err != nil {
			fmt.Fprintf(stderr, "oppsync produce: %v (continuing: the topic may exist or be auto-created)\n", err)
		}
	}
	gen := synth.NewGenerator(synth.GenConfig{Org: o.org, Seed: o.seed, Opportunities: o.opportunities, NoOracle: true,
		OpportunitySchema: enc.Schema(cdc.EntityOpportunity), ContactRoleSchema: enc.Schema(cdc.EntityContactRole)})
	start := time.Now()
	n, err := publish(ctx, gen, enc, w, o, func(n int) {
		if n%1000 == 0 {
			fmt.Fprintf(stdout, "published %d events (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
		}
	})
	fmt.Fprintf(stdout, "published %d events in %s\n", n, time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newEncoder(o produceOptions) (*synth.Encoder, error) {
	cfg := synth.EncoderConfig{}
	switch o.framing {
	case "pubsub", "":
	case "confluent":
		if o.registry == "" {
			return nil, usagef("produce: --framing confluent needs --registry URL")
		}
		cfg.Framing = synth.FramingConfluent
		cfg.Registry = &synth.RegistryClient{URL: o.registry}
	default:
		return nil, usagef("produce: --framing must be pubsub or confluent, got %q", o.framing)
	}
	switch o.shape {
	case "pubsub", "":
	case "connector":
		cfg.Shape = synth.ShapeConnector
	default:
		return nil, usagef("produce: --shape must be pubsub or connector, got %q", o.shape)
	}
	if o.topic != "" {
		topic := o.topic
		cfg.Topic = func(string) string { return topic }
	}
	enc, err := synth.NewEncoder(cfg)
	if err != nil {
		return nil, usagef("produce: %v", err)
	}
	return enc, nil
}

// publish sends generated changes at the configured rate until count is
// reached or ctx ends, calling progress after each message written.
func publish(ctx context.Context, gen *synth.Generator, enc *synth.Encoder, w *kafka.Writer, o produceOptions, progress func(int)) (int, error) {
	const batch = 200
	sent := 0
	start := time.Now()
	for o.count == 0 || sent < o.count {
		n := batch
		if o.rate > 0 {
			// Send what the rate allows by now, at least one.
			due := int(o.rate*time.Since(start).Seconds()) - sent
			if due <= 0 {
				select {
				case <-ctx.Done():
					return sent, ctx.Err()
				case <-time.After(time.Duration(float64(time.Second) / o.rate)):
				}
				continue
			}
			n = min(due, batch)
		}
		if o.count > 0 {
			n = min(n, o.count-sent)
		}
		msgs := make([]kafka.Message, 0, n)
		for i := 0; i < n; i++ {
			m, err := enc.Encode(ctx, gen.Next())
			if err != nil {
				return sent, fmt.Errorf("encoding: %w", err)
			}
			km := kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
			for _, h := range m.Headers {
				km.Headers = append(km.Headers, kafka.Header{Key: h.Key, Value: h.Value})
			}
			msgs = append(msgs, km)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return sent, fmt.Errorf("publishing: %w", err)
		}
		for range msgs {
			sent++
			if progress != nil {
				progress(sent)
			}
		}
	}
	return sent, nil
}
