package e2e

// Helpers shared by the security, cluster and fault tests.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
)

// scriptsDir is the folder of the service scripts (test/ of the repository,
// or $OPPSYNC_TEST_SCRIPTS_DIR).
func scriptsDir(t *testing.T) string {
	t.Helper()
	d, err := testenv.ScriptsDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runScript runs test/<script> with args and extra environment, failing
// the test with its output when it fails.
func runScript(t *testing.T, extraEnv []string, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(scriptsDir(t), script)}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// exportedVar reads VAR from `export VAR=value` lines.
func exportedVar(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export "+name+"="); ok {
			return v
		}
	}
	return ""
}

// readyz returns /readyz's status code and body; code 0 when the HTTP
// listener does not answer.
func readyz(p *proc) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.http + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// positions returns the consumed positions oppsync stored in Redis,
// "topic/partition" → next offset.
func (e *env) positions() map[string]int64 {
	e.t.Helper()
	raw, err := e.rdb.HGetAll(context.Background(), "oppsync:{"+e.org+"}:positions").Result()
	if err != nil {
		e.t.Fatalf("reading positions: %v", err)
	}
	out := map[string]int64{}
	for k, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			e.t.Fatalf("position %s = %q", k, v)
		}
		out[k] = n
	}
	return out
}

// endOffsets returns each partition's end offset, "topic/partition" → offset.
func (e *env) endOffsets() (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
	req := map[string][]kafka.OffsetRequest{}
	for _, topic := range e.topics {
		for p := 0; p < e.parts; p++ {
			req[topic] = append(req[topic], kafka.LastOffsetOf(p))
		}
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	out := map[string]int64{}
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return nil, fmt.Errorf("listing offsets of %s/%d: %w", topic, p.Partition, p.Error)
			}
			if p.LastOffset > 0 {
				out[fmt.Sprintf("%s/%d", topic, p.Partition)] = p.LastOffset
			}
		}
	}
	return out, nil
}

// waitConsumedAndCompare waits until the stored positions reach every
// partition's end (as it is when called) and then checks the streams
// against want.
func (e *env) waitConsumedAndCompare(want []synth.Expected, timeout time.Duration) {
	e.t.Helper()
	var end map[string]int64
	testenv.Eventually(e.t, timeout, func() (bool, string) {
		if end == nil {
			var err error
			// The broker may have just restarted.
			if end, err = e.endOffsets(); err != nil {
				return false, err.Error()
			}
		}
		pos := e.positions()
		for k, v := range end {
			if pos[k] < v {
				return false, fmt.Sprintf("position of %s is %d, end %d (all: %v)", k, pos[k], v, pos)
			}
		}
		return true, ""
	})
	compare(e.t, e.triggers(), want)
}
