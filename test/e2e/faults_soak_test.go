//go:build faults

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
)

// envSoakDuration sets how long the soak test kills instances (a Go
// duration, default defaultSoakDuration). It is an OPPSYNC_TEST_ variable
// because oppsync rejects every other unknown OPPSYNC_* variable as a config
// key.
const envSoakDuration = "OPPSYNC_TEST_SOAK_DURATION"

const defaultSoakDuration = 2 * time.Minute

// soakDuration reads envSoakDuration.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	raw := os.Getenv(envSoakDuration)
	if raw == "" {
		return defaultSoakDuration
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d <= 0 || d > time.Hour {
		t.Fatalf("%s=%q: want a duration between 1s and 1h, like 30s or 2m", envSoakDuration, raw)
	}
	return d
}

// Three oppsync instances in one consumer group on six partitions while the
// generator publishes; every 2-6 s one instance, at random, is killed with
// SIGKILL and started again at once (without waiting for it to be ready, so
// an instance may also die while it joins). After the soak duration
// publishing has stopped; the three instances drain, and the oracle holds:
// the stored positions and the group's committed offsets reach the end of
// every partition, and every expected trigger entry is present exactly once
// and nothing else.
func TestFaultSoakKill9ThreeInstances(t *testing.T) {
	const (
		instances  = 3
		partitions = 6
		rate       = 40 // changes published per second
		chunk      = 20
	)
	soak := soakDuration(t)
	began := time.Now()
	e := newEnvParts(t, 1, partitions)
	n := max(int(soak.Seconds()*rate), 400)
	chs, want := e.generated(n, 97, max(n/20, 60))
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()

	procs := make([]*proc, instances)
	for i := range procs {
		procs[i] = e.start()
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 14))
	t.Logf("soak %s: %d changes on %d partitions, %d expected entries, kill seed %d", soak, n, partitions, len(want), seed)

	// One chunk per pause spreads the changes over the soak.
	pub := e.publishAsync(w, msgs, chunk, soak*chunk/time.Duration(n))
	start := time.Now()
	kills := 0
	for {
		next := time.Duration(2000+rng.IntN(4000)) * time.Millisecond
		if time.Since(start)+next > soak {
			break
		}
		time.Sleep(next) // a random kill point, not a wait for a condition
		for i, p := range procs {
			if !p.alive() {
				t.Fatalf("instance %d exited by itself (%v):\n%s", i, p.err, tail(p.log(), 30))
			}
		}
		i := rng.IntN(instances)
		procs[i].kill9()
		procs[i] = e.spawn()
		kills++
	}
	killed := time.Since(start)
	if err := pub.wait(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	published := time.Since(start)
	var during int64
	for _, v := range e.positions() {
		during += v
	}

	// Every partition got changes, so the check below covers all of them.
	end, err := e.endOffsets()
	if err != nil {
		t.Fatal(err)
	}
	if len(end) != partitions {
		t.Fatalf("only %d of %d partitions hold changes: %v", len(end), partitions, end)
	}
	for i, p := range procs {
		testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
			if !p.alive() {
				t.Fatalf("instance %d exited after the soak (%v):\n%s", i, p.err, tail(p.log(), 30))
			}
			code, body := readyz(p)
			return code == 200, fmt.Sprintf("instance %d: readyz %d %s", i, code, body)
		})
	}
	e.waitConsumedAndCompare(want, 5*time.Minute)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		committed, err := e.committed()
		if err != nil {
			return false, err.Error()
		}
		for k, v := range end {
			if committed[k] < v {
				return false, fmt.Sprintf("committed offset of %s is %d, end %d (all: %v)", k, committed[k], v, committed)
			}
		}
		return true, ""
	})
	for i, p := range procs {
		if code, _ := p.stop(30 * time.Second); code != 0 {
			t.Fatalf("instance %d: exit code %d after SIGTERM", i, code)
		}
	}
	t.Logf("%d kills in %s; %d changes published in %s (%d applied by then); %d trigger entries checked exactly once; %s in all",
		kills, killed.Round(time.Millisecond), len(msgs), published.Round(time.Millisecond), during, len(want), time.Since(began).Round(time.Second))
}
