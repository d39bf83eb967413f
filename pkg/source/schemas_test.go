package source

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/testenv"
)

type sinkMap struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *sinkMap) Put(id, text string) bool {
	if id == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = text
	return true
}

func (s *sinkMap) get(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

// FollowSchemas reads what the topic held before it started and what is
// written later, waits for a topic created after it started, and skips
// tombstones and records without a key.
func TestKafkaFollowSchemas(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.UniqueName(t, "schemas")
	sink := &sinkMap{m: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- FollowSchemas(ctx, Config{Brokers: brokers, Topics: []string{topic}, GroupID: "unused"}, topic, sink, zerolog.Nop())
	}()
	// The topic appears after the follower started.
	testenv.CreateTopic(t, brokers, topic, 2)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	write := func(msgs ...kafka.Message) {
		t.Helper()
		// A new topic may be unknown to the writer's metadata for a moment.
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			err := w.WriteMessages(wctx, msgs...)
			return err == nil, fmt.Sprint("writing: ", err)
		})
	}
	write(kafka.Message{Key: []byte("s1"), Value: []byte(`{"v":1}`)}, kafka.Message{Key: nil, Value: []byte(`{}`)},
		kafka.Message{Key: []byte("s3"), Value: nil})
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return sink.get("s1") != "", "s1 not read" })
	for i := 0; i < 5; i++ {
		write(kafka.Message{Key: []byte(fmt.Sprintf("live%d", i)), Value: []byte(`{"v":2}`)})
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		for i := 0; i < 5; i++ {
			if sink.get(fmt.Sprintf("live%d", i)) == "" {
				return false, fmt.Sprintf("live%d not read", i)
			}
		}
		return true, ""
	})
	if sink.get("s3") != "" {
		t.Fatal("a tombstone was put")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
