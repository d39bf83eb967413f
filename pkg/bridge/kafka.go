package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/pkg/source"
)

// Kafka is the bridge's side of Kafka: a Writer that waits for all in-sync
// replicas, and a Dialer for admin calls and tail reads. Build the Writer
// with source.NewWriter and the Dialer with source.NewDialer (the kafka.*
// settings).
type Kafka struct {
	Brokers []string
	Writer  *kafka.Writer
	Dialer  *kafka.Dialer
}

// header names of the records the bridge writes.
const (
	HeaderSchemaID  = "sf-schema-id"
	HeaderReplayID  = "sf-replay-id"
	HeaderEventID   = "sf-event-id"
	HeaderChannel   = "sf-channel"
	HeaderCommitted = "sf-replay-committed"
)

// NewKafka returns the Kafka side for the kafka.* connection settings in
// sc (brokers, TLS, SASL; its Topics and GroupID only need to be valid):
// a Writer with acks from all in-sync replicas, murmur2 keys (the Java
// client's partitioner), batches of up to maxBatch records flushed after
// at most a millisecond, and topic auto-creation where the broker allows it.
func NewKafka(sc source.Config, maxBatch int) (*Kafka, error) {
	w, err := source.NewWriter(sc)
	if err != nil {
		return nil, err
	}
	w.BatchSize = max(maxBatch, 1)
	w.BatchTimeout = time.Millisecond
	w.AllowAutoTopicCreation = true
	d, err := source.NewDialer(sc)
	if err != nil {
		return nil, err
	}
	return &Kafka{Brokers: sc.Brokers, Writer: w, Dialer: d}, nil
}

// Close closes the Writer.
func (k *Kafka) Close() error { return k.Writer.Close() }

func (k *Kafka) conn(ctx context.Context) (*kafka.Conn, error) {
	var last error
	for _, b := range k.Brokers {
		c, err := k.Dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, fmt.Errorf("connecting to kafka.brokers: %w", last)
}

// partitions lists the partitions of every topic for which keep is true.
// It lists all topics: asking for one by name would let a broker with
// auto-creation create it.
func (k *Kafka) partitions(ctx context.Context, keep func(topic string) bool) ([]kafka.Partition, error) {
	c, err := k.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	all, err := c.ReadPartitions()
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	var out []kafka.Partition
	for _, p := range all {
		if keep(p.Topic) {
			out = append(out, p)
		}
	}
	return out, nil
}

// ensureCompacted creates topic (one partition, cleanup.policy=compact)
// unless it exists.
func (k *Kafka) ensureCompacted(ctx context.Context, topic string) error {
	parts, err := k.partitions(ctx, func(t string) bool { return t == topic })
	if err != nil || len(parts) > 0 {
		return err
	}
	c, err := k.conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ctrl, err := c.Controller()
	if err != nil {
		return fmt.Errorf("finding the controller: %w", err)
	}
	cc, err := k.Dialer.DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", ctrl.Host, ctrl.Port))
	if err != nil {
		return fmt.Errorf("connecting to the controller: %w", err)
	}
	defer cc.Close()
	err = cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: -1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}})
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating the compacted topic %s: %w", topic, err)
	}
	return nil
}

// readRange calls fn for each record of p in [from, to), in order.
func (k *Kafka) readRange(ctx context.Context, p kafka.Partition, from, to int64, fn func(kafka.Message)) error {
	if from >= to {
		return nil
	}
	c, err := k.Dialer.DialLeader(ctx, "tcp", k.Brokers[0], p.Topic, p.ID)
	if err != nil {
		return fmt.Errorf("connecting to the leader of %s[%d]: %w", p.Topic, p.ID, err)
	}
	defer c.Close()
	off := from
	for off < to {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := c.Seek(off, kafka.SeekAbsolute); err != nil {
			return fmt.Errorf("seeking %s[%d] to %d: %w", p.Topic, p.ID, off, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		batch := c.ReadBatch(1, 16<<20)
		progressed := false
		for off < to {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset < off {
				continue
			}
			off, progressed = m.Offset+1, true
			fn(m)
		}
		if err := batch.Close(); err != nil && !progressed {
			return fmt.Errorf("reading %s[%d] at %d: %w", p.Topic, p.ID, off, err)
		}
		if !progressed {
			// A gap (compaction, aborted transactions): no record at off.
			off++
		}
	}
	return nil
}

// bounds returns the first and the next offset of p.
func (k *Kafka) bounds(ctx context.Context, p kafka.Partition) (first, next int64, err error) {
	c, err := k.Dialer.DialLeader(ctx, "tcp", k.Brokers[0], p.Topic, p.ID)
	if err != nil {
		return 0, 0, fmt.Errorf("connecting to the leader of %s[%d]: %w", p.Topic, p.ID, err)
	}
	defer c.Close()
	first, next, err = c.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("reading the offsets of %s[%d]: %w", p.Topic, p.ID, err)
	}
	return first, next, nil
}

// scanBack calls fn for the records of p from the newest backwards, in
// windows of window records, until fn returns false or the partition's
// start is reached.
func (k *Kafka) scanBack(ctx context.Context, p kafka.Partition, window int64, fn func(kafka.Message) bool) error {
	first, end, err := k.bounds(ctx, p)
	if err != nil {
		return err
	}
	for end > first {
		from := max(first, end-window)
		var recs []kafka.Message
		if err := k.readRange(ctx, p, from, end, func(m kafka.Message) { recs = append(recs, m) }); err != nil {
			return err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if !fn(recs[i]) {
				return nil
			}
		}
		end = from
	}
	return nil
}

// readAll calls fn for every record of every partition of topic.
func (k *Kafka) readAll(ctx context.Context, topic string, fn func(kafka.Message)) error {
	parts, err := k.partitions(ctx, func(t string) bool { return t == topic })
	if err != nil {
		return err
	}
	for _, p := range parts {
		first, next, err := k.bounds(ctx, p)
		if err != nil {
			return err
		}
		if err := k.readRange(ctx, p, first, next, fn); err != nil {
			return err
		}
	}
	return nil
}

func header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// outputTopic reports whether topic may hold the bridge's records.
func outputTopic(prefix, schemasTopic string) func(string) bool {
	return func(t string) bool {
		return strings.HasPrefix(t, prefix) && t != schemasTopic && !strings.HasPrefix(t, "__")
	}
}
