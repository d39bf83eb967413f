//go:build faults

package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestFaultRedisRestart: what Redis acknowledged survives a stop and start
// (AOF on, same port), and a client created before reconnects by itself.
func TestFaultRedisRestart(t *testing.T) {
	client := NewRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key := "oppsync:{" + UniqueName(t, "org") + "}:durable"
	t.Cleanup(func() { client.Del(context.Background(), key) })
	if err := client.Set(ctx, key, "kept", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	restart := Outage(t, "redis")
	if err := client.Ping(ctx).Err(); err == nil {
		t.Fatalf("PING succeeded while Redis was stopped")
	}
	restart()

	var got string
	Eventually(t, 30*time.Second, func() (bool, string) {
		v, err := client.Get(ctx, key).Result()
		if err != nil {
			return false, "GET after restart: " + err.Error()
		}
		got = v
		return true, ""
	})
	if got != "kept" {
		t.Fatalf("GET after restart = %q, want kept", got)
	}
}

// TestFaultKafkaRestart: records written before a broker stop are readable
// after it starts again on the same port with the same data.
func TestFaultKafkaRestart(t *testing.T) {
	brokers := KafkaBrokers(t)
	topic := UniqueName(t, "topic")
	CreateTopic(t, brokers, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("before restart")}); err != nil {
		t.Fatalf("producing: %v", err)
	}
	_ = w.Close()

	Outage(t, "kafka")()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("reading after restart: %v", err)
	}
	if string(m.Value) != "before restart" {
		t.Fatalf("read %q after restart, want %q", m.Value, "before restart")
	}
}
