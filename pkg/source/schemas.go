package source

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/pkg/backoff"
)

// NewDialer returns a kafka-go Dialer for cfg.Brokers with the consumer's
// TLS and SASL settings (for admin calls and plain partition readers).
func NewDialer(cfg Config) (*kafka.Dialer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sec, err := cfg.security()
	if err != nil {
		return nil, err
	}
	return sec.dialer(), nil
}

// SchemaSink receives the records of the schemas topic: key the schema id,
// value the schema JSON. It reports whether it accepted the record. It is
// called from one goroutine per partition and must be safe for concurrent
// use (decode.TopicSource).
type SchemaSink interface {
	Put(id, text string) bool
}

// FollowSchemas reads the compacted schemas topic (schemas.topic) of
// cfg.Brokers from its first offset and then follows it, handing every
// record to sink, until ctx ends (it then returns nil). A topic that does
// not exist yet is waited for (the bridge creates it); broker failures are
// retried with capped backoff. Records the sink refuses, and tombstones, are
// skipped with a warning.
func FollowSchemas(ctx context.Context, cfg Config, topic string, sink SchemaSink, log zerolog.Logger) error {
	dialer, err := NewDialer(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Partitions are listed again every schemasRescan: a topic seen while
	// it is being created may list only some of them, and partitions can
	// be added later.
	bo := backoff.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	started := map[int]bool{}
	errs := make(chan error, 1)
	for {
		parts, err := partitionsOf(ctx, dialer, cfg.Brokers, topic)
		wait := schemasRescan
		switch {
		case err != nil && len(started) == 0:
			log.Warn().Err(err).Str("topic", topic).Msg("schemas topic not readable yet; retrying")
			wait = bo.Next()
		case err != nil:
			log.Warn().Err(err).Str("topic", topic).Msg("listing the partitions of the schemas topic")
		}
		for _, p := range parts {
			if started[p.ID] {
				continue
			}
			started[p.ID] = true
			go func(id int) {
				if err := followPartition(ctx, dialer, cfg.Brokers, topic, id, sink, log); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}(p.ID)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case <-time.After(wait):
		}
	}
}

// schemasRescan is how often FollowSchemas lists the topic's partitions.
const schemasRescan = 5 * time.Second

func partitionsOf(ctx context.Context, d *kafka.Dialer, brokers []string, topic string) ([]kafka.Partition, error) {
	var last error
	for _, b := range brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err != nil {
			last = err
			continue
		}
		// All topics, filtered: asking for the topic by name would let a
		// broker with auto-creation create it, uncompacted.
		all, err := conn.ReadPartitions()
		_ = conn.Close()
		if err != nil {
			return nil, fmt.Errorf("reading partitions of %s: %w", topic, err)
		}
		var parts []kafka.Partition
		for _, p := range all {
			if p.Topic == topic {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("topic %s does not exist", topic)
		}
		return parts, nil
	}
	return nil, last
}

func followPartition(ctx context.Context, d *kafka.Dialer, brokers []string, topic string, partition int, sink SchemaSink, log zerolog.Logger) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: partition, Dialer: d,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond,
		StartOffset: kafka.FirstOffset,
	})
	defer r.Close()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			// kafka-go's partition reader retries broker failures itself;
			// an error here is not one it can recover from.
			return fmt.Errorf("reading schemas topic %s[%d]: %w", topic, partition, err)
		}
		if m.Value == nil {
			continue
		}
		if !sink.Put(string(m.Key), string(m.Value)) {
			log.Warn().Str("topic", topic).Int("partition", partition).Int64("offset", m.Offset).
				Msg("skipping a schemas topic record that is not <schema id> → schema JSON")
		}
	}
}
