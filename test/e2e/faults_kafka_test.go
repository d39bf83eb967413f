//go:build faults

package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// The broker is stopped mid-stream and started again on the same port with
// the same log (test/kafka.sh stop/start): oppsync reports not ready while it
// is gone, keeps running, rejoins by itself, and every expected entry is
// present exactly once.
func TestFaultKafkaRestartMidStream(t *testing.T) {
	e, p, w, msgs, want := startMidStream(t, 61)
	restart := testenv.Outage(t, "kafka")
	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		if !p.alive() {
			t.Fatalf("oppsync exited while the broker was down:\n%s", tail(p.log(), 30))
		}
		code, body := readyz(p)
		return code == 503, "readyz while the broker is down: " + strconv.Itoa(code) + " " + body
	})
	restart()

	e.publish(w, msgs[1500:]...)
	e.waitConsumedAndCompare(want, 3*time.Minute)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		code, body := readyz(p)
		return code == 200, "readyz after the restart: " + strconv.Itoa(code) + " " + body
	})
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// startMidStream publishes the first half of 3000 generated changes (seed)
// for one partition, starts oppsync and waits until it is under way. It
// returns the messages (the second half is the caller's to publish) and the
// entries all of them must produce.
func startMidStream(t *testing.T, seed uint64) (*env, *proc, *kafka.Writer, []cdc.Message, []synth.Expected) {
	t.Helper()
	e := newEnv(t, 1)
	chs, want := e.generated(3000, seed, 150)
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()
	e.publish(w, msgs[:1500]...)
	p := e.start()
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		return e.consumedAll(300), "waiting for the consumer to be under way"
	})
	return e, p, w, msgs, want
}
