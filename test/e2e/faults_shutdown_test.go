//go:build faults

package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
)

// SIGTERM while events are published as fast as the producer can: the
// process drains what it fetched, commits, and exits 0 within
// shutdown_timeout, logging no error (none of its actors uses Redis after
// it closed); afterwards the positions stored in Redis and the group's
// committed offsets agree partition by partition (what was applied was
// committed, nothing unapplied was), and a restart ends with exactly the
// expected entries. The background loops are busy at the signal: the
// reconciler passes every second against a Salesforce that is down, the
// releaser every half second, and the lazy view follows the replica.
func TestFaultShutdownGracefulUnderLoad(t *testing.T) {
	e := newEnv(t, 1)
	const shutdownTimeout = 20 * time.Second
	e.extra["OPPSYNC_SHUTDOWN_TIMEOUT"] = shutdownTimeout.String()
	// A Salesforce outage: the reconciler retries it at every interval and
	// never stops the service for it, nor re-reads anything.
	sf := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	e.extra["OPPSYNC_SALESFORCE_INSTANCE_URL"] = sf
	e.extra["OPPSYNC_SALESFORCE_CLIENT_ID"] = "cid"
	e.extra["OPPSYNC_SALESFORCE_CLIENT_SECRET"] = "secret"
	e.extra["OPPSYNC_SALESFORCE_INTERVAL"] = "1s"
	chs, want := e.generated(5000, 81, 250)
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()
	p := e.start()
	// About 2500 messages/s, so that publishing is still going on at the
	// signal.
	pub := e.publishAsync(w, msgs, 50, 20*time.Millisecond)
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		n := pub.published.Load()
		return n >= 1500 && e.consumedAll(500), fmt.Sprintf("%d published, waiting for 1500 published and 500 applied", n)
	})

	// The first filter query starts the lazy view, which then follows the
	// replica until the stop.
	resp, err := http.Post("http://"+p.http+"/v1/people/query", "application/json",
		strings.NewReader(`{"filters":[{"filter":"number_of_opportunities","op":"gte","value":1}],"limit":5}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first filter query: %s", resp.Status)
	}

	code, took := p.stop(2 * shutdownTimeout)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM under load:\n%s", code, tail(p.log(), 20))
	}
	if bad := p.errorLines(); len(bad) > 0 {
		t.Fatalf("errors logged by a graceful stop:\n%s", strings.Join(bad, "\n"))
	}
	if took > shutdownTimeout {
		t.Fatalf("stopping took %s, more than shutdown_timeout %s", took, shutdownTimeout)
	}
	if !strings.Contains(p.log(), "stopped cleanly") {
		t.Fatalf("no clean stop logged:\n%s", tail(p.log(), 20))
	}
	pos := e.positions()
	committed, err := e.committed()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(pos, committed) {
		t.Fatalf("after a graceful stop the applied positions and the committed offsets differ:\napplied   %v\ncommitted %v", pos, committed)
	}
	var applied int64
	for _, v := range pos {
		applied += v
	}
	t.Logf("stopped in %s with %d of %d messages published, %d applied and committed", took.Round(time.Millisecond), pub.published.Load(), len(msgs), applied)

	if err := pub.wait(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	p = e.start()
	e.waitConsumedAndCompare(want, 3*time.Minute)
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
