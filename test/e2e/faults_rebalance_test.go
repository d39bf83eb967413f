//go:build faults

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
)

// Two, then three, then two oppsync instances in one consumer group, with
// instances joining and leaving (each membership change is a rebalance)
// while events keep being published: every expected entry is present exactly
// once and nothing else, and no instance fails.
func TestFaultRebalanceJoinLeave(t *testing.T) {
	e := newEnv(t, 1) // 4 partitions
	chs, want := e.generated(4000, 51, 200)
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()
	e.publish(w, msgs[:500]...)

	a, b := e.start(), e.start()
	pub := e.publishAsync(w, msgs[500:], 100, 50*time.Millisecond)
	// waitFor waits until n messages were published and the group applied
	// some of them, so that each change hits a group that is consuming.
	waitFor := func(n int64) {
		t.Helper()
		testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
			got := pub.published.Load()
			return got >= n, fmt.Sprintf("%d of %d published", got, n)
		})
	}
	waitFor(700)
	c := e.start() // a third instance joins: partitions move to it
	waitFor(1500)
	if code, _ := a.stop(30 * time.Second); code != 0 { // one leaves
		t.Fatalf("instance a exited %d", code)
	}
	waitFor(2200)
	d := e.start() // another joins
	waitFor(2800)
	if code, _ := b.stop(30 * time.Second); code != 0 { // and one leaves again
		t.Fatalf("instance b exited %d", code)
	}
	if err := pub.wait(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
	e.waitConsumedAndCompare(want, 3*time.Minute)
	for _, p := range []*proc{c, d} {
		if code, _ := p.stop(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	}
	if len(want) < 500 {
		t.Fatalf("workload too small: %d expected entries", len(want))
	}
}
