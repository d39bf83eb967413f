package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/fakepubsub"
	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/state"
)

// bridgeEnv is the chain fake Salesforce → oppsync bridge → Kafka →
// oppsync run, on unique topics and org.
type bridgeEnv struct {
	*env
	srv     *fakepubsub.Server
	prefix  string
	schemas string
}

func newBridgeEnv(t *testing.T) *bridgeEnv {
	e := newEnvParts(t, 0, 1)
	b := &bridgeEnv{env: e, srv: fakepubsub.Start(t), prefix: testenv.UniqueName(t, "sf") + "."}
	b.schemas = b.prefix + "schemas"
	// One partition per topic: oppsync's positions then count the events
	// of each channel, which the publisher's gate below relies on.
	for _, entity := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		topic := b.prefix + entity + "ChangeEvent"
		testenv.CreateTopic(t, e.brokers, topic, 1)
		e.topics = append(e.topics, topic)
	}
	// No schemas dir: oppsync learns every schema from the bridge's topic.
	e.extra["OPPSYNC_SCHEMAS_DIR"] = ""
	e.extra["OPPSYNC_SCHEMAS_TOPIC"] = b.schemas
	return b
}

// startBridge runs `oppsync bridge` and waits until /readyz answers 200.
func (b *bridgeEnv) startBridge() *proc {
	b.t.Helper()
	p := &proc{t: b.t, http: freeAddr(b.t), done: make(chan struct{})}
	p.cmd = exec.Command(oppsyncBinary(b.t), "bridge")
	vars := map[string]string{
		"OPPSYNC_KAFKA_BROKERS":            strings.Join(b.brokers, ","),
		"OPPSYNC_BRIDGE_ENDPOINT":          b.srv.Addr,
		"OPPSYNC_BRIDGE_PLAINTEXT":         "true",
		"OPPSYNC_BRIDGE_TOPIC_PREFIX":      b.prefix,
		"OPPSYNC_BRIDGE_SCHEMAS_TOPIC":     b.schemas,
		"OPPSYNC_BRIDGE_START":             "earliest",
		"OPPSYNC_BRIDGE_MAX_IN_FLIGHT":     "50",
		"OPPSYNC_SALESFORCE_INSTANCE_URL":  b.srv.InstanceURL,
		"OPPSYNC_SALESFORCE_CLIENT_ID":     fakepubsub.ClientID,
		"OPPSYNC_SALESFORCE_CLIENT_SECRET": fakepubsub.ClientSecret,
		"OPPSYNC_HTTP_ADDR":                p.http,
		"OPPSYNC_SHUTDOWN_TIMEOUT":         "20s",
	}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	b.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if b.t.Failed() {
			b.t.Logf("bridge log (%s):\n%s", p.http, tail(p.log(), 40))
		}
	})
	waitReady(b.t, p, 60*time.Second, "oppsync bridge")
	return p
}

// consumed returns how many records of topic oppsync has applied.
func (b *bridgeEnv) consumed(topic string) int64 {
	v, _ := b.rdb.HGet(context.Background(), "oppsync:{"+b.org+"}:positions", topic+"/0").Result()
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// publishGated publishes the encoded changes into the fake Salesforce in
// commit order. Opportunity and contact-role events travel on two topics,
// which oppsync consumes independently, while the ground truth assumes the
// changes of one opportunity are applied in commit order: so a change
// waits until oppsync has applied its opportunity's previous change when
// that one went to the other topic. It returns the first problem.
func (b *bridgeEnv) publishGated(ctx context.Context, chs []synth.Change, payloads [][]byte, schemaIDs []string) error {
	type last struct {
		topic string
		index int64 // 0-based position of the event in its topic
	}
	lastOf := map[string]last{}
	published := map[string]int64{}
	for i, ch := range chs {
		topic := b.prefix + ch.Entity + "ChangeEvent"
		if l, ok := lastOf[ch.Key()]; ok && l.topic != topic {
			for b.consumed(l.topic) <= l.index {
				select {
				case <-ctx.Done():
					return fmt.Errorf("change %d: waiting for %s to pass %d: %w", i, l.topic, l.index, ctx.Err())
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		b.srv.Publish(fakepubsub.Channel(ch.Entity), schemaIDs[i], payloads[i])
		lastOf[ch.Key()] = last{topic, published[topic]}
		published[topic]++
	}
	return nil
}

// The whole path: fake Salesforce → oppsync bridge → real Kafka → oppsync
// run (schemas from the bridge's topic) → trigger streams, checked against
// the generator's ground truth. The bridge is SIGKILLed mid-stream several
// times: no event is lost, none is written twice, no trigger is duplicated.
func TestBridgeChainKill9(t *testing.T) {
	b := newBridgeEnv(t)
	gen := synth.NewGenerator(synth.GenConfig{Org: b.org, Seed: 13, Opportunities: 60, MultiRecordRate: -1})
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1500
	chs := make([]synth.Change, n)
	payloads, ids := make([][]byte, n), make([]string, n)
	for i := range chs {
		chs[i] = gen.Next()
		m, err := enc.Encode(context.Background(), chs[i])
		if err != nil {
			t.Fatal(err)
		}
		payloads[i], ids[i] = m.Value, enc.SchemaID(chs[i].Entity)
	}
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		b.srv.AddSchema(enc.SchemaID(e), enc.Schema(e))
	}
	want := gen.Expected()

	run := b.start()
	bridge := b.startBridge()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pubErr := make(chan error, 1)
	go func() { pubErr <- b.publishGated(ctx, chs, payloads, ids) }()

	rng := rand.New(rand.NewPCG(5, 8))
	for round := 0; round < 3; round++ {
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond) // a random kill point, not a wait for a condition
		bridge.kill9()
		bridge = b.startBridge()
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	b.waitTriggers(len(want), 3*time.Minute)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		done := b.consumed(b.topics[0]) + b.consumed(b.topics[1])
		return done >= n, fmt.Sprintf("%d of %d records applied", done, n)
	})
	compare(t, b.triggers(), want)

	// Kafka holds every event exactly once.
	counts := map[string]int{}
	for _, topic := range b.topics {
		for _, m := range readTopic(t, b.brokers, topic) {
			for _, h := range m.Headers {
				if h.Key == "sf-replay-id" {
					counts[string(h.Value)]++
				}
			}
		}
	}
	var bad []string
	for _, ch := range []string{fakepubsub.Channel(cdc.EntityOpportunity), fakepubsub.Channel(cdc.EntityContactRole)} {
		for _, ev := range b.srv.Events(ch) {
			if k := counts[fmt.Sprintf("%x", ev.GetReplayId())]; k != 1 {
				bad = append(bad, fmt.Sprintf("%x×%d", ev.GetReplayId(), k))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("%d events not in Kafka exactly once: %v", len(bad), bad[:min(len(bad), 20)])
	}
	if dl := b.stream("dlq"); len(dl) > 0 {
		t.Fatalf("%d dead letters, first %v", len(dl), dl[0])
	}
	if code, _ := bridge.stop(30 * time.Second); code != 0 {
		t.Fatalf("bridge exit code %d after SIGTERM", code)
	}
	run.stop(30 * time.Second)
}

// readTopic reads every record of a one-partition topic.
func readTopic(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		t.Fatal(err)
	}
	var out []kafka.Message
	for int64(len(out)) < last-first {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// kafka-go's Writer has no idempotent producer: a produce request whose
// answer was lost is sent again, and a batch that failed after its retries
// is written again whole by the bridge. Either way Kafka holds some events
// twice, right after their first copy or a batch later. oppsync's
// per-record versions absorb both: the same trigger entries as without
// duplicates, none twice.
func TestBridgeRetriedWritesAbsorbed(t *testing.T) {
	e := &env{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "org")}
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := inproc.New(t, e.rdb, enc, decode.Config{}, state.Config{Org: e.org, IgnoreFields: synth.DefaultIgnoreFields})
	gen := synth.NewGenerator(synth.GenConfig{Org: e.org, Seed: 77, Opportunities: 60, MultiRecordRate: -1})
	var msgs []cdc.Message
	for i := 0; i < 1500; i++ {
		m, err := enc.Encode(context.Background(), gen.Next())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	// One partition, as the bridge's batches of up to 50: every third batch
	// is written twice (a whole-batch retry), and every 7th record of the
	// others once more right after itself (a produce request re-sent).
	var log []cdc.Message
	var mu sync.Mutex
	add := func(ms ...cdc.Message) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			m.Topic, m.Partition, m.Offset = "bridged", 0, int64(len(log))
			log = append(log, m)
		}
	}
	for i, batch := 0, 0; i < len(msgs); i, batch = i+50, batch+1 {
		part := msgs[i:min(i+50, len(msgs))]
		add(part...)
		if batch%3 == 2 {
			add(part...)
			continue
		}
		for j, m := range part {
			if j%7 == 0 {
				add(m)
			}
		}
	}
	if len(log) < len(msgs)*5/4 {
		t.Fatalf("only %d duplicates", len(log)-len(msgs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	feed(t, ctx, p, log, true)
	compare(t, e.triggers(), gen.Expected())
}
