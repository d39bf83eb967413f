package bridge

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/fakepubsub"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/source"
)

// benchEvents publishes n generated opportunity events (real Avro payloads)
// on one channel and returns them as Kafka messages for the ceiling.
func benchEvents(b *testing.B, h *harness, n int) []kafka.Message {
	gen := synth.NewGenerator(synth.GenConfig{Org: "bench", Seed: 3, Opportunities: 2000, NoOracle: true})
	ch := fakepubsub.Channel(cdc.EntityOpportunity)
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		c := gen.Next()
		if c.Entity != cdc.EntityOpportunity {
			continue
		}
		m, err := h.enc.Encode(context.Background(), c)
		if err != nil {
			b.Fatal(err)
		}
		h.srv.AddSchema(h.enc.SchemaID(c.Entity), h.enc.Schema(c.Entity))
		replay := h.srv.Publish(ch, h.enc.SchemaID(c.Entity), m.Value)
		out = append(out, kafka.Message{Topic: "ceiling-" + h.prefix, Key: []byte(c.RecordIDs[0]), Value: m.Value, Headers: []kafka.Header{
			{Key: HeaderSchemaID, Value: []byte(h.enc.SchemaID(c.Entity))}, {Key: HeaderReplayID, Value: []byte(fmt.Sprintf("%x", replay))},
			{Key: HeaderEventID, Value: []byte("e")}, {Key: HeaderChannel, Value: []byte(ch)}, {Key: HeaderCommitted, Value: []byte("00")}}})
	}
	return out
}

// heapSampler records the in-use heap every 100ms.
type heapSampler struct {
	mu      sync.Mutex
	samples []uint64
	stop    chan struct{}
	done    chan struct{}
}

func sampleHeap() *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				s.mu.Lock()
				s.samples = append(s.samples, ms.HeapInuse)
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// halves stops sampling and returns the peak in-use heap (MiB) of the
// first and the second half of the run.
func (s *heapSampler) halves() (first, second float64) {
	close(s.stop)
	<-s.done
	n := len(s.samples)
	for i, v := range s.samples {
		mib := float64(v) / (1 << 20)
		if i < n/2 {
			first = math.Max(first, mib)
		} else {
			second = math.Max(second, mib)
		}
	}
	return first, second
}

// BenchmarkBridgeThroughput forwards b.N events (at least 20,000) from the
// fake Pub/Sub server into the real Kafka and reports events/s, next to the
// ceiling measured in the same run: a plain kafka-go Writer (the same
// settings) writing the same records in batches of max_in_flight, one
// batch at a time. heap-first/second-MiB are the peak in-use heap of each
// half of the bridge run: equal means flat.
//
//	go test -run '^$' -bench BridgeThroughput -benchtime 50000x ./pkg/bridge
func BenchmarkBridgeThroughput(b *testing.B) {
	for _, inFlight := range []int{100, 1000} {
		b.Run(fmt.Sprintf("max_in_flight=%d", inFlight), func(b *testing.B) {
			n := max(b.N, 20000)
			b.StopTimer()
			hb := newHarness(b, 1)
			msgs := benchEvents(b, hb, n)
			testenv.CreateTopic(b, hb.brokers, "ceiling-"+hb.prefix, 1)

			// Ceiling: the same records through a plain Writer.
			k, err := NewKafka(source.Config{Brokers: hb.brokers, Topics: []string{hb.schemas}, GroupID: "bench"}, inFlight)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			for i := 0; i < len(msgs); i += inFlight {
				if err := k.Writer.WriteMessages(context.Background(), msgs[i:min(i+inFlight, len(msgs))]...); err != nil {
					b.Fatal(err)
				}
			}
			ceiling := float64(len(msgs)) / time.Since(start).Seconds()
			_ = k.Close()

			cfg := hb.config()
			cfg.Channels = channels[:1]
			cfg.MaxInFlight = inFlight
			heap := sampleHeap()
			b.StartTimer()
			start = time.Now()
			r := hb.start(cfg)
			for {
				if counter(r.b.metrics.events.WithLabelValues(channels[0])) >= float64(n) {
					break
				}
				time.Sleep(20 * time.Millisecond) // polling the counter, not waiting a fixed time
			}
			elapsed := time.Since(start)
			b.StopTimer()
			first, second := heap.halves()
			r.stop()
			<-r.done
			rate := float64(n) / elapsed.Seconds()
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(ceiling, "ceiling-events/s")
			b.ReportMetric(rate/ceiling, "ratio")
			b.ReportMetric(first, "heap-first-MiB")
			b.ReportMetric(second, "heap-second-MiB")
		})
	}
}

// BenchmarkBridgeLatency publishes 1,000 events/s for 5 s into the fake
// server while the bridge forwards them, and reports the p50 and p99 of
// receipt → Kafka acknowledgement (oppsync_bridge_ack_seconds, interpolated
// within its buckets like histogram_quantile), next to the same quantiles of
// a plain Writer writing one record per millisecond in the same run (the
// ceiling: Kafka's own acknowledgement time at that rate).
//
//	go test -run '^$' -bench BridgeLatency -benchtime 1x ./pkg/bridge
func BenchmarkBridgeLatency(b *testing.B) {
	for i := 0; i < b.N; i++ {
		hb := newHarness(b, 1)
		ch := fakepubsub.Channel(cdc.EntityOpportunity)
		msgs := benchEvents(b, hb, 5000)
		testenv.CreateTopic(b, hb.brokers, "ceiling-"+hb.prefix, 1)
		hb.srv.Trim(ch, len(msgs)) // the events are published again below, paced

		// Ceiling: a plain Writer, one record per millisecond.
		k, err := NewKafka(source.Config{Brokers: hb.brokers, Topics: []string{hb.schemas}, GroupID: "bench"}, 100)
		if err != nil {
			b.Fatal(err)
		}
		var plain []float64
		tick := time.NewTicker(time.Millisecond)
		for _, m := range msgs {
			<-tick.C
			t0 := time.Now()
			if err := k.Writer.WriteMessages(context.Background(), m); err != nil {
				b.Fatal(err)
			}
			plain = append(plain, time.Since(t0).Seconds())
		}
		tick.Stop()
		_ = k.Close()

		cfg := hb.config()
		cfg.Channels = channels[:1]
		cfg.Start = StartLatest
		r := hb.start(cfg)
		for r.b.Ready() != nil {
			time.Sleep(10 * time.Millisecond) // polling readiness
		}
		tick = time.NewTicker(time.Millisecond)
		for _, m := range msgs {
			<-tick.C
			hb.srv.Publish(ch, string(m.Headers[0].Value), m.Value)
		}
		tick.Stop()
		for counter(r.b.metrics.events.WithLabelValues(channels[0])) < float64(len(msgs)) {
			time.Sleep(20 * time.Millisecond) // polling the counter
		}
		var hist dto.Metric
		if err := r.b.metrics.ack.Write(&hist); err != nil {
			b.Fatal(err)
		}
		r.stop()
		<-r.done
		sort.Float64s(plain)
		b.ReportMetric(quantile(hist.GetHistogram(), 0.50)*1000, "p50-ms")
		b.ReportMetric(quantile(hist.GetHistogram(), 0.99)*1000, "p99-ms")
		b.ReportMetric(plain[len(plain)/2]*1000, "ceiling-p50-ms")
		b.ReportMetric(plain[len(plain)*99/100]*1000, "ceiling-p99-ms")
	}
}

// quantile interpolates within the buckets of h, as histogram_quantile does.
func quantile(h *dto.Histogram, q float64) float64 {
	total := float64(h.GetSampleCount())
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, bk := range h.GetBucket() {
		c := float64(bk.GetCumulativeCount())
		if c >= rank {
			if c == prevCount {
				return bk.GetUpperBound()
			}
			return prevBound + (bk.GetUpperBound()-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = bk.GetUpperBound(), c
	}
	return math.Inf(1)
}
