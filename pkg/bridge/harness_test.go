package bridge

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/oppsync/oppsync/internal/fakepubsub"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/bridge/pubsubpb"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/source"
)

// harness is one test's fake Salesforce and unique Kafka topics.
type harness struct {
	t       testing.TB
	srv     *fakepubsub.Server
	brokers []string
	prefix  string
	schemas string
	enc     *synth.Encoder
	client  pubsubpb.PubSubClient
	script  *synth.Script
	n       uint64
}

var channels = []string{fakepubsub.Channel(cdc.EntityOpportunity), fakepubsub.Channel(cdc.EntityContactRole)}

// newHarness creates the output topics with parts partitions each.
func newHarness(t testing.TB, parts int) *harness {
	t.Helper()
	brokers := testenv.KafkaBrokers(t)
	h := &harness{t: t, srv: fakepubsub.Start(t), brokers: brokers, prefix: testenv.UniqueName(t, "br") + "."}
	h.srv.KeepaliveEvery = 50 * time.Millisecond
	h.schemas = h.prefix + "schemas"
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		testenv.CreateTopic(t, brokers, h.topic(e), parts)
	}
	var err error
	if h.enc, err = synth.NewEncoder(synth.EncoderConfig{}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(h.srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h.client = pubsubpb.NewPubSubClient(conn)
	h.script = synth.NewScript(time.Now().Add(-time.Hour))
	return h
}

func (h *harness) topic(entity string) string { return h.prefix + entity + "ChangeEvent" }

func (h *harness) config() Config {
	return Config{Channels: channels, MaxInFlight: 20, TopicPrefix: h.prefix, SchemasTopic: h.schemas,
		Start: StartEarliest, OnExpiredReplay: ExpiredFail,
		InstanceURL: h.srv.InstanceURL, ClientID: fakepubsub.ClientID, ClientSecret: fakepubsub.ClientSecret,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, IdleTimeout: 5 * time.Second}
}

// running is a Bridge running in the background.
type running struct {
	b    *Bridge
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

func (h *harness) start(cfg Config) *running {
	h.t.Helper()
	k, err := NewKafka(source.Config{Brokers: h.brokers, Topics: []string{cfg.SchemasTopic}, GroupID: "bridge"}, cfg.MaxInFlight)
	if err != nil {
		h.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	b, err := New(cfg, h.client, k, http.DefaultClient, reg, zerolog.Nop())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{b: b, reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() {
		err := b.Run(ctx)
		_ = k.Close()
		r.done <- err
	}()
	h.t.Cleanup(func() { cancel() })
	return r
}

// halt stops r and returns Run's error.
func (r *running) halt(t *testing.T) error {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the bridge did not stop within 60s")
		return nil
	}
}

// failed waits for Run to end on its own and returns its error.
func (r *running) failed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the bridge did not fail within 60s")
		return nil
	}
}

// publish publishes n opportunity creations and n contact roles on them.
func (h *harness) publish(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		h.n++
		opp := synth.SalesforceID("006", h.n)
		h.srv.PublishChange(h.t, h.enc, h.script.OpportunityCreated(opp, synth.F("Name", cdc.String(fmt.Sprint("Deal ", h.n)))))
		h.srv.PublishChange(h.t, h.enc, h.script.ContactRoleAdded(synth.SalesforceID("00K", h.n), opp, synth.SalesforceID("003", h.n), "Evaluator"))
	}
}

// records reads every record of topic, ordered by replay id.
func (h *harness) records(topic string) []kafka.Message {
	h.t.Helper()
	k := &Kafka{Brokers: h.brokers, Dialer: &kafka.Dialer{Timeout: 10 * time.Second}}
	var out []kafka.Message
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := k.readAll(ctx, topic, func(m kafka.Message) { out = append(out, m) }); err != nil {
		h.t.Fatal(err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := header(out[i], HeaderReplayID)
		b, _ := header(out[j], HeaderReplayID)
		return a < b
	})
	return out
}

// replayCounts counts the records of the output topics by replay id.
func (h *harness) replayCounts() map[string]int {
	got := map[string]int{}
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		for _, m := range h.records(h.topic(e)) {
			r, _ := header(m, HeaderReplayID)
			got[r]++
		}
	}
	return got
}

// waitAll waits until every published event is in Kafka.
func (h *harness) waitAll(timeout time.Duration) map[string]int {
	h.t.Helper()
	var got map[string]int
	want := 0
	for _, ch := range channels {
		want += len(h.srv.Events(ch))
	}
	testenv.Eventually(h.t, timeout, func() (bool, string) {
		got = h.replayCounts()
		return len(got) >= want, fmt.Sprintf("%d of %d events in Kafka", len(got), want)
	})
	return got
}

// exactlyOnce checks that every published event is in Kafka exactly once.
func (h *harness) exactlyOnce(got map[string]int) {
	h.t.Helper()
	for _, ch := range channels {
		for _, ev := range h.srv.Events(ch) {
			if n := got[hex.EncodeToString(ev.GetReplayId())]; n != 1 {
				h.t.Errorf("event %x of %s is in Kafka %d times", ev.GetReplayId(), ch, n)
			}
		}
	}
}

func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }
