//go:build faults

package e2e

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// The Schema Registry fails transiently (5xx at startup and mid-stream,
// requests timing out) and permanently (ids it does not know): transient
// failures are retried until the registry answers, never dead-lettered;
// unknown ids go to the dead-letter stream as schema_not_found with their
// original bytes; the consumer never stalls, and every expected entry is
// present exactly once.
func TestFaultSchemaRegistryFailures(t *testing.T) {
	e := newEnv(t, 1)
	reg := synth.NewRegistry()
	e.extra["OPPSYNC_SCHEMA_REGISTRY_URL"] = httptestServer(t, reg)
	e.extra["OPPSYNC_SCHEMA_REGISTRY_TIMEOUT"] = "300ms"
	topic := e.topics[0]
	enc, err := synth.NewEncoder(synth.EncoderConfig{Framing: synth.FramingConfluent, Registry: reg,
		Topic: func(string) string { return topic }})
	if err != nil {
		t.Fatal(err)
	}
	chs, want := e.generated(2400, 91, 120)
	msgs := e.encode(enc, chs...)
	// unknown is a Confluent-framed message naming a schema id the registry
	// never had.
	var poison [][]byte
	unknown := func() cdc.Message {
		id := 9000 + len(poison)
		v := []byte{0, 0, 0, byte(id >> 8), byte(id), 2, 4, 6}
		poison = append(poison, v)
		return cdc.Message{Topic: topic, Key: []byte(fmt.Sprintf("poison-%d", id)), Value: v}
	}
	w := e.writer()

	// 1. The registry answers 503 to the first requests: the first schema
	// lookups fail and are retried.
	reg.FailNext(4, 503)
	e.publish(w, msgs[:400]...)
	e.publish(w, unknown(), unknown())
	e.publish(w, msgs[400:800]...)
	p := e.spawn()
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		return e.consumedAll(802), "first part not applied yet"
	})

	// 2. Mid-stream, a lookup (of an unknown id) meets 502s first.
	reg.FailNext(3, 502)
	e.publish(w, unknown())
	e.publish(w, msgs[800:1600]...)
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		return e.consumedAll(1603), "second part not applied yet"
	})
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// 3. A new instance (empty schema cache) meets a registry slower than
	// its timeout, then a healthy one again.
	reg.SetDelay(5 * time.Second)
	e.publish(w, msgs[1600:2000]...)
	e.publish(w, unknown())
	e.publish(w, msgs[2000:]...)
	before := reg.Requests()
	p = e.spawn()
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		if !p.alive() {
			t.Fatalf("oppsync exited:\n%s", tail(p.log(), 20))
		}
		n := reg.Requests() - before
		return n >= 3, fmt.Sprintf("%d registry requests timed out so far", n)
	})
	if e.consumedAll(1604) {
		t.Fatal("messages were consumed while no schema could be fetched")
	}
	reg.SetDelay(0)

	e.waitConsumedAndCompare(want, 3*time.Minute)
	dlq := e.stream("dlq")
	got := map[string]bool{}
	for _, d := range dlq {
		if d["reason"] != "schema_not_found" || d["stage"] != "decode" || d["topic"] != topic {
			t.Errorf("dead letter %v", d)
		}
		got[d["value"]] = true
	}
	if len(dlq) != len(poison) {
		t.Errorf("%d dead letters, want %d (one per unknown schema id)", len(dlq), len(poison))
	}
	for _, v := range poison {
		if !got[base64.StdEncoding.EncodeToString(v)] {
			t.Errorf("no dead letter with the original bytes %x", v)
		}
	}
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
