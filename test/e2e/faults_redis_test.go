//go:build faults

package e2e

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
)

// Redis (AOF on) is stopped mid-stream for longer than the pipeline's retry
// budget and started again on the same port:
//   - what Redis acknowledged before the stop is still there afterwards
//     (positions and streams never go back);
//   - while it is down, /readyz answers 503 naming Redis and the failing
//     pipeline, oppsync keeps running and retrying, and the consumer group's
//     committed offsets do not move;
//   - once Redis is back, oppsync recovers by itself and every expected
//     entry is present exactly once.
//
// test/redis.sh runs Redis with appendfsync everysec; its stop is a SIGTERM,
// on which Redis fsyncs the AOF, so nothing acknowledged is lost here. After
// a crash of the host, everysec may lose up to a second of acknowledged
// writes: state, triggers and positions then roll back together and oppsync
// replays them from Kafka (TestRedisRollbackReplays), so the streams end up
// the same, though a campaign consumer may see such entries twice (same
// event_id). REDIS_APPENDFSYNC=always for test/redis.sh closes that gap at
// the cost of an fsync per write.
func TestFaultRedisOutageMidStream(t *testing.T) {
	e, p, w, msgs, want := startMidStream(t, 71)
	before := e.positions()
	entriesBefore := len(e.triggers())
	restart := testenv.Outage(t, "redis")
	// Events keep arriving meanwhile (the consumer may have caught up with
	// the first part already).
	e.publish(w, msgs[1500:2200]...)
	// Not ready at once (Redis does not answer), and after the retry budget
	// (pipeline.UnhealthyAfter) the pipeline's failures show as well.
	var body string
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		if !p.alive() {
			t.Fatalf("oppsync exited while Redis was down:\n%s", tail(p.log(), 30))
		}
		var code int
		code, body = readyz(p)
		return code == 503 && strings.Contains(body, "redis") && strings.Contains(body, "pipeline"),
			fmt.Sprintf("readyz while Redis is down: %d %s", code, body)
	})
	t.Logf("readyz while Redis is down: %s", body)
	committed, err := e.committed()
	if err != nil {
		t.Fatal(err)
	}
	// It keeps retrying (the log shows every 20th attempt; the counter all):
	// a few more failed attempts, and still no commit.
	const retries = "oppsync_apply_retries_total"
	first := e.metric(p, retries)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		n := e.metric(p, retries)
		return n >= first+3, fmt.Sprintf("%s = %v, waiting for %v", retries, n, first+3)
	})
	if !p.alive() {
		t.Fatalf("oppsync exited while Redis was down:\n%s", tail(p.log(), 30))
	}
	if now, err := e.committed(); err != nil || !maps.Equal(now, committed) {
		t.Fatalf("committed offsets moved while Redis was down: %v, then %v (err %v)", committed, now, err)
	}

	restart()
	// Nothing acknowledged was lost: positions and streams only grow (oppsync
	// may already have written more), and nothing was committed to Kafka
	// that Redis does not hold.
	after := e.positions()
	for k, v := range before {
		if after[k] < v {
			t.Errorf("position %s went back from %d to %d across the restart", k, v, after[k])
		}
	}
	if n := len(e.triggers()); n < entriesBefore {
		t.Errorf("%d trigger entries after the restart, %d before", n, entriesBefore)
	}
	for k, v := range committed {
		if after[k] < v {
			t.Errorf("committed offset %s = %d is ahead of the applied position %d", k, v, after[k])
		}
	}

	e.publish(w, msgs[2200:]...)
	e.waitConsumedAndCompare(want, 3*time.Minute)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		code, body := readyz(p)
		return code == 200, "readyz after the restart: " + strconv.Itoa(code) + " " + body
	})
	if n := len(e.stream("dlq")); n != 0 {
		t.Errorf("%d dead letters: a transient failure must never be dead-lettered", n)
	}
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
