//go:build faults

package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// publisher publishes msgs in the background, chunk by chunk, so that the
// test can change things (instances, services) while events keep arriving.
type publisher struct {
	done      chan error
	published atomic.Int64
}

// publishAsync starts publishing msgs in chunks of chunk messages, waiting
// pause between chunks. Write errors are retried (a broker restart) for up
// to two minutes per chunk.
func (e *env) publishAsync(w *kafka.Writer, msgs []cdc.Message, chunk int, pause time.Duration) *publisher {
	p := &publisher{done: make(chan error, 1)}
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			km[i].Headers = append(km[i].Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	go func() {
		for start := 0; start < len(km); start += chunk {
			end := min(start+chunk, len(km))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err := w.WriteMessages(ctx, km[start:end]...)
			cancel()
			if err != nil {
				p.done <- fmt.Errorf("publishing messages %d-%d: %w", start, end, err)
				return
			}
			p.published.Store(int64(end))
			if pause > 0 {
				time.Sleep(pause) // pacing the load, not waiting for a condition
			}
		}
		p.done <- nil
	}()
	return p
}

// wait returns the publisher's result.
func (p *publisher) wait(timeout time.Duration) error {
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("publisher not done within %s (%d published)", timeout, p.published.Load())
	}
}

// committed returns the consumer group's committed offsets,
// "topic/partition" → offset, leaving out partitions without a commit.
func (e *env) committed() (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	req := &kafka.OffsetFetchRequest{GroupID: e.group, Topics: map[string][]int{}}
	for _, topic := range e.topics {
		for p := 0; p < e.parts; p++ {
			req.Topics[topic] = append(req.Topics[topic], p)
		}
	}
	resp, err := c.OffsetFetch(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[string]int64{}
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("%s/%d: %w", topic, p.Partition, p.Error)
			}
			if p.CommittedOffset >= 0 {
				out[fmt.Sprintf("%s/%d", topic, p.Partition)] = p.CommittedOffset
			}
		}
	}
	return out, nil
}
