package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

// Environment variables that name the test services.
const (
	EnvRedisAddr    = "OPPSYNC_TEST_REDIS_ADDR"
	EnvKafkaBrokers = "OPPSYNC_TEST_KAFKA_BROKERS"
)

// setupTimeout bounds each network step a helper takes (dial, ping, create).
const setupTimeout = 15 * time.Second

// missing skips the test, or fails it under CI, because env var name is unset.
func missing(t testing.TB, name string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not set: run `make test` (it starts Redis and Kafka), "+
		"or `make services-up` and export what `test/redis.sh env; test/kafka.sh env` print", name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RedisAddr returns the host:port of the test Redis. It skips the test when
// OPPSYNC_TEST_REDIS_ADDR is unset, or fails it when env CI is set.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := strings.TrimSpace(os.Getenv(EnvRedisAddr))
	if addr == "" {
		missing(t, EnvRedisAddr)
	}
	return addr
}

// KafkaBrokers returns the test brokers' host:port list. It skips the test
// when OPPSYNC_TEST_KAFKA_BROKERS is unset, or fails it when env CI is set.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	var brokers []string
	for _, b := range strings.Split(os.Getenv(EnvKafkaBrokers), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	if len(brokers) == 0 {
		missing(t, EnvKafkaBrokers)
	}
	return brokers
}

// NewRedis returns a client of the test Redis that answered PING, closed by
// t.Cleanup. The database is shared with every other test: use keys derived
// from UniqueName and never FLUSHDB.
func NewRedis(t testing.TB) *redis.Client {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: RedisAddr(t)})
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("pinging test redis at %s: %v", client.Options().Addr, err)
	}
	return client
}

// maxNameLen keeps names short enough for Kafka topics (249), group ids and
// readable Redis keys.
const maxNameLen = 80

// DropOrg deletes every key of an org (oppsync:{<org>}:*) from rdb.
func DropOrg(rdb redis.UniversalClient, org string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "oppsync:{"+org+"}:*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			rdb.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Unlink(ctx, keys...)
	}
}

// UniqueName returns prefix-<test name>-<random hex>: lowercase, only
// [a-z0-9-], at most 80 characters, different on every call. It is a valid
// Kafka topic and group id, and a valid org id inside a Redis hash tag.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var buf [4]byte
	if _, err := rand.Read(buf[:]); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	suffix := hex.EncodeToString(buf[:])
	base := sanitize(prefix)
	if name := sanitize(t.Name()); name != "" {
		if base != "" {
			base += "-"
		}
		base += name
	}
	if room := maxNameLen - len(suffix) - 1; len(base) > room {
		base = strings.TrimRight(base[:room], "-")
	}
	if base == "" {
		return suffix
	}
	return base + "-" + suffix
}

// sanitize lowercases s and turns every run of characters outside [a-z0-9]
// into one '-', trimming dashes at both ends.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	return b.String()
}

// CreateTopic creates topic with the given partitions (replication factor 1)
// through the cluster's controller, waits until the metadata of every
// partition names a leader, and deletes the topic in t.Cleanup. A topic that
// already exists with the same partition count is accepted.
func CreateTopic(t testing.TB, brokers []string, topic string, partitions int) {
	t.Helper()
	if len(brokers) == 0 || topic == "" || partitions < 1 {
		t.Fatalf("CreateTopic(%v, %q, %d): need brokers, a topic and partitions >= 1", brokers, topic, partitions)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	controller, err := dialController(ctx, brokers)
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	err = controller.CreateTopics(kafka.TopicConfig{
		Topic:             topic,
		NumPartitions:     partitions,
		ReplicationFactor: 1,
	})
	_ = controller.Close()
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	t.Cleanup(func() { deleteTopic(t, brokers, topic) })

	Eventually(t, 30*time.Second, func() (bool, string) {
		parts, err := readPartitions(brokers, topic)
		if err != nil {
			return false, fmt.Sprintf("reading metadata of %s: %v", topic, err)
		}
		if len(parts) != partitions {
			return false, fmt.Sprintf("topic %s has %d partitions in metadata, want %d", topic, len(parts), partitions)
		}
		for _, p := range parts {
			if p.Error != nil || p.Leader.Host == "" {
				return false, fmt.Sprintf("topic %s partition %d has no leader yet (err %v)", topic, p.ID, p.Error)
			}
		}
		return true, ""
	})
}

// dialController dials the first reachable broker and then the controller it
// names (CreateTopics must go to the controller).
func dialController(ctx context.Context, brokers []string) (*kafka.Conn, error) {
	var errs []error
	for _, b := range brokers {
		conn, err := kafka.DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := conn.Controller()
		_ = conn.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("asking %s for the controller: %w", b, err))
			continue
		}
		addr := fmt.Sprintf("%s:%d", c.Host, c.Port)
		ctrl, err := kafka.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dialing controller %s: %w", addr, err)
		}
		return ctrl, nil
	}
	return nil, fmt.Errorf("no broker of %v reachable: %w", brokers, errors.Join(errs...))
}

func readPartitions(brokers []string, topic string) ([]kafka.Partition, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn.ReadPartitions(topic)
}

// deleteTopic is best effort: a leftover topic only costs broker disk.
func deleteTopic(t testing.TB, brokers []string, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	controller, err := dialController(ctx, brokers)
	if err != nil {
		t.Logf("deleting topic %s: %v", topic, err)
		return
	}
	defer controller.Close()
	if err := controller.DeleteTopics(topic); err != nil && !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Logf("deleting topic %s: %v", topic, err)
	}
}

// Eventually calls cond until it returns true, polling with a short,
// growing interval (never sleeping past the deadline, so the last poll is at
// the deadline), and fails the test with cond's last message once timeout has
// passed. Like t.Fatal it must be called from the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() (ok bool, msg string)) {
	t.Helper()
	eventually(t, timeout, cond, time.Now, time.Sleep)
}

// eventually is Eventually with its clock passed in, so that its tests do
// not depend on how the machine schedules them.
func eventually(t testing.TB, timeout time.Duration, cond func() (bool, string), now func() time.Time, sleep func(time.Duration)) {
	t.Helper()
	deadline := now().Add(timeout)
	interval := 10 * time.Millisecond
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if !now().Before(deadline) {
			if msg == "" {
				msg = "condition never held"
			}
			t.Fatalf("not true within %v: %s", timeout, msg)
			return
		}
		sleep(min(interval, deadline.Sub(now())))
		interval = min(interval*2, 250*time.Millisecond)
	}
}
