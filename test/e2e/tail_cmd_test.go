package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/state"
)

// oppsync tail, SIGKILLed while it holds entries it read and has not
// acknowledged, loses none: a second consumer of the group (another
// process) claims them after --min-idle and prints exactly the entries the
// first did not acknowledge, each once, leaving nothing pending.
func TestTailKilledMidBatch(t *testing.T) {
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "org")
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	key := replica.OutputStreams(org)[cdc.TriggerAdded]
	feedTriggers(t, rdb, org, 800)
	all, err := rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil || len(all) < 120 {
		t.Fatalf("%d added entries (%v): want more than one read batch", len(all), err)
	}
	args := func(consumer string) []string {
		return []string{"tail", "--org_id", org, "--redis.addrs", testenv.RedisAddr(t), "--stream", "added",
			"--group", "mailer", "--consumer", consumer, "--min-idle", "1s", "--format", "json"}
	}

	// A: its stdout is a pipe nobody reads, so it blocks printing once the
	// pipe is full, in the middle of a batch of 100 it read; it is killed
	// once it holds pending entries (having acknowledged none, or some).
	a := exec.Command(oppsyncBinary(t), args("a")...)
	if _, err := a.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	var pendingA int64
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		p, err := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: key, Group: "mailer", Start: "-", End: "+", Count: 1000, Consumer: "a"}).Result()
		pendingA = int64(len(p))
		return err == nil && pendingA > 0, fmt.Sprintf("A holds %d pending entries (%v)", len(p), err)
	})
	_ = a.Process.Signal(syscall.SIGKILL)
	_ = a.Wait()

	// What A acknowledged: delivered to the group and no longer pending.
	groups, err := rdb.XInfoGroups(context.Background(), key).Result()
	if err != nil || len(groups) != 1 {
		t.Fatalf("groups %v, %v", groups, err)
	}
	pel, err := rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: key, Group: "mailer", Start: "-", End: "+", Count: 10000}).Result()
	if err != nil {
		t.Fatal(err)
	}
	stillPending := map[string]bool{}
	for _, p := range pel {
		stillPending[p.ID] = true
	}
	var want []string // the event ids B must print
	for _, m := range all {
		if !stillPending[m.ID] && !idAfter(m.ID, groups[0].LastDeliveredID) {
			continue // A acknowledged it
		}
		want = append(want, m.Values["event_id"].(string))
	}
	if len(stillPending) == 0 {
		t.Fatalf("A acknowledged %d of %d entries and left none pending: not killed mid-batch", len(all)-len(want), len(all))
	}
	t.Logf("A acknowledged %d of %d entries and died holding %d", len(all)-len(want), len(all), len(stillPending))

	// B: another process of the group.
	b := exec.Command(oppsyncBinary(t), args("b")...)
	out, err := b.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	b.Stderr = &errOut
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Process.Kill(); _ = b.Wait() })
	var mu sync.Mutex
	var got []string
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e struct {
				Fields map[string]string `json:"fields"`
			}
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				mu.Lock()
				got = append(got, e.Fields["event_id"])
				mu.Unlock()
			}
		}
	}()
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want), fmt.Sprintf("B printed %d of %d (stderr %q)", len(got), len(want), errOut.String())
	})
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		p, err := rdb.XPending(context.Background(), key, "mailer").Result()
		return err == nil && p.Count == 0, fmt.Sprintf("pending %+v %v", p, err)
	})
	_ = b.Process.Signal(syscall.SIGTERM)
	if err := b.Wait(); err != nil {
		t.Errorf("B did not stop cleanly on SIGTERM: %v (stderr %q)", err, errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("B printed %d entries, want exactly the %d A did not acknowledge", len(got), len(want))
	}
}

// idAfter reports whether stream id a comes after b.
func idAfter(a, b string) bool {
	var am, as, bm, bs uint64
	fmt.Sscanf(strings.Replace(a, "-", " ", 1), "%d %d", &am, &as)
	fmt.Sscanf(strings.Replace(b, "-", " ", 1), "%d %d", &bm, &bs)
	return am > bm || am == bm && as > bs
}

// feedTriggers writes the trigger streams of org through the real decode →
// pipeline → state path, from n generated changes.
func feedTriggers(t *testing.T, rdb *redis.Client, org string, n int) {
	t.Helper()
	gen := synth.NewGenerator(synth.GenConfig{Org: org, Seed: 21, Opportunities: 60, Contacts: 150, NoOracle: true})
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var clock time.Time
	pipe, _ := inproc.New(t, rdb, enc, decode.Config{}, state.Config{Org: org, Currency: "USD", Now: func() time.Time { return clock }})
	batch := make([]cdc.Message, 0, n)
	for i := 0; i < n; i++ {
		ch := gen.Next()
		m, err := enc.Encode(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		m.Partition, m.Offset = 0, int64(i)
		clock = time.UnixMilli(ch.Version.CommitTimestamp)
		batch = append(batch, m)
	}
	if err := pipe.HandleBatch(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}
