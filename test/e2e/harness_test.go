package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/source"
	"github.com/oppsync/oppsync/schemas"
)

// The oppsync binary, built with -race on first use (oppsyncBinary), so that
// a run where every test skips (no services configured) builds nothing.
var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
)

// oppsyncBinary returns the path of the race-enabled oppsync binary,
// building it on the first call; a failed build fails every caller.
func oppsyncBinary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "oppsync-e2e-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryDir = dir
		path := filepath.Join(dir, "oppsync")
		out, err := exec.Command("go", "build", "-race", "-o", path, "github.com/oppsync/oppsync/cmd/oppsync").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("building oppsync: %v\n%s", err, out)
			return
		}
		binaryPath = path
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// env is one test's world: a unique org, topics, group and schema dir on
// the shared Kafka and Redis.
type env struct {
	t         *testing.T
	brokers   []string
	redisAddr string
	rdb       *redis.Client
	org       string
	group     string
	topics    []string
	parts     int // partitions of each topic
	schemaDir string
	extra     map[string]string // more OPPSYNC_* settings
}

// defaultPartitions is the partition count of an env's topics.
const defaultPartitions = 4

func newEnv(t *testing.T, topics int) *env {
	return newEnvParts(t, topics, defaultPartitions)
}

// newEnvParts is newEnv with parts partitions per topic.
func newEnvParts(t *testing.T, topics, parts int) *env {
	return newEnvOn(t, testenv.KafkaBrokers(t), testenv.RedisAddr(t), testenv.NewRedis(t), testenv.UniqueName(t, "org"), topics, parts)
}

// newEnvOn is newEnv for services other than the default test ones: brokers
// (plaintext, for the test's own producer and topic admin), the redis
// address(es) oppsync gets, and rdb, the client the test reads the streams
// with; topics topics of parts partitions each.
func newEnvOn(t *testing.T, brokers []string, redisAddrs string, rdb *redis.Client, org string, topics, parts int) *env {
	t.Helper()
	e := &env{
		t:         t,
		brokers:   brokers,
		redisAddr: redisAddrs,
		rdb:       rdb,
		org:       org,
		parts:     parts,
		group:     testenv.UniqueName(t, "group"),
		schemaDir: t.TempDir(),
		extra:     map[string]string{},
	}
	for i := 0; i < topics; i++ {
		topic := testenv.UniqueName(t, fmt.Sprintf("t%d", i))
		testenv.CreateTopic(t, e.brokers, topic, parts)
		e.topics = append(e.topics, topic)
	}
	if err := schemas.WriteDir(e.schemaDir); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) environ(httpAddr string) []string {
	vars := map[string]string{
		"OPPSYNC_ORG_ID":                        e.org,
		"OPPSYNC_KAFKA_BROKERS":                 strings.Join(e.brokers, ","),
		"OPPSYNC_KAFKA_TOPICS":                  strings.Join(e.topics, ","),
		"OPPSYNC_KAFKA_GROUP_ID":                e.group,
		"OPPSYNC_REDIS_ADDRS":                   e.redisAddr,
		"OPPSYNC_SCHEMAS_DIR":                   e.schemaDir,
		"OPPSYNC_HTTP_ADDR":                     httpAddr,
		"OPPSYNC_LOG_LEVEL":                     "info",
		"OPPSYNC_SHUTDOWN_TIMEOUT":              "20s",
		"OPPSYNC_TRIGGERS_PENDING_ROLE_TIMEOUT": "30s",
	}
	for k, v := range e.extra {
		vars[k] = v
	}
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// proc is a running oppsync.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	http   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// start runs `oppsync run` and waits until /readyz answers 200.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	p := e.spawn(args...)
	waitReady(e.t, p, 90*time.Second, "oppsync")
	return p
}

// waitReady waits until the process's /readyz answers 200, failing the test
// if it exits first (name says which command it was).
func waitReady(t *testing.T, p *proc, timeout time.Duration, name string) {
	t.Helper()
	testenv.Eventually(t, timeout, func() (bool, string) {
		select {
		case <-p.done:
			return false, name + " exited: " + p.log()
		default:
		}
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Sprintf("readyz %d %s", resp.StatusCode, body)
	})
}

func (e *env) spawn(args ...string) *proc {
	e.t.Helper()
	p := &proc{t: e.t, http: freeAddr(e.t), done: make(chan struct{})}
	p.cmd = exec.Command(oppsyncBinary(e.t), append([]string{"run"}, args...)...)
	p.cmd.Env = e.environ(p.http)
	p.cmd.Stdout = p
	p.cmd.Stderr = p
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("oppsync log (%s):\n%s", p.http, tail(p.log(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill9 kills the process without letting it clean up.
func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and returns the exit code and how long it took.
func (p *proc) stop(timeout time.Duration) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("oppsync did not stop within %s:\n%s", timeout, tail(p.log(), 40))
	}
	return p.cmd.ProcessState.ExitCode(), time.Since(start)
}

// errorLines returns the lines of the log at level error or above, and any
// line where go-redis reports its client closed (an actor still using
// Redis after the service closed it).
func (p *proc) errorLines() []string {
	var bad []string
	for _, line := range strings.Split(p.log(), "\n") {
		if strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"fatal"`) ||
			strings.Contains(line, `"level":"panic"`) || strings.Contains(line, redis.ErrClosed.Error()) {
			bad = append(bad, line)
		}
	}
	return bad
}

// writer publishes to the test broker.
func (e *env) writer() *kafka.Writer {
	w, err := source.NewWriter(source.Config{Brokers: e.brokers, Topics: e.topics, GroupID: "producer"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = w.Close() })
	return w
}

func (e *env) publish(w *kafka.Writer, msgs ...cdc.Message) {
	e.t.Helper()
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			km[i].Headers = append(km[i].Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, km...); err != nil {
		e.t.Fatalf("publishing %d messages: %v", len(msgs), err)
	}
}

// encoder encodes Pub/Sub-framed events; all entities go to topic (or, with
// two topics, one per entity).
func (e *env) encoder() *synth.Encoder {
	e.t.Helper()
	topics := e.topics
	enc, err := synth.NewEncoder(synth.EncoderConfig{Topic: func(entity string) string {
		if len(topics) > 1 && entity == cdc.EntityContactRole {
			return topics[1]
		}
		return topics[0]
	}})
	if err != nil {
		e.t.Fatal(err)
	}
	return enc
}

func (e *env) encode(enc *synth.Encoder, chs ...synth.Change) []cdc.Message {
	e.t.Helper()
	out := make([]cdc.Message, len(chs))
	for i, ch := range chs {
		m, err := enc.Encode(context.Background(), ch)
		if err != nil {
			e.t.Fatalf("encoding change %d: %v", i, err)
		}
		out[i] = m
	}
	return out
}

// entry is one trigger stream entry.
type entry map[string]string

func (e *env) stream(name string) []entry {
	e.t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), "oppsync:{"+e.org+"}:"+name, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]entry, len(msgs))
	for i, m := range msgs {
		out[i] = entry{}
		for k, v := range m.Values {
			out[i][k] = fmt.Sprint(v)
		}
	}
	return out
}

func (e *env) triggers() []entry {
	var all []entry
	for _, k := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		all = append(all, e.stream("triggers:"+k)...)
	}
	return all
}

// waitTriggers waits until the streams hold at least n entries.
func (e *env) waitTriggers(n int, timeout time.Duration) []entry {
	e.t.Helper()
	var got []entry
	testenv.Eventually(e.t, timeout, func() (bool, string) {
		got = e.triggers()
		return len(got) >= n, fmt.Sprintf("%d of %d trigger entries", len(got), n)
	})
	return got
}

// compare asserts that the streams hold every expected entry exactly once
// and nothing else, field by field.
func compare(t *testing.T, got []entry, want []synth.Expected) {
	t.Helper()
	byID := map[string][]entry{}
	for _, g := range got {
		byID[g["event_id"]] = append(byID[g["event_id"]], g)
	}
	var problems []string
	seen := map[string]bool{}
	for _, w := range want {
		seen[w.EventID] = true
		es := byID[w.EventID]
		switch {
		case len(es) == 0:
			problems = append(problems, fmt.Sprintf("missing %s %s person %s opp %s role %s %s%s", w.EventID, w.Trigger, w.PersonID, w.OpportunityID, w.ContactRoleID, w.Reason, w.Field))
			continue
		case len(es) > 1:
			problems = append(problems, fmt.Sprintf("%d copies of %s (%s %s)", len(es), w.EventID, w.Trigger, w.PersonID))
		}
		g := es[0]
		if g["trigger"] != w.Trigger || g["person_id"] != w.PersonID || g["opportunity_id"] != w.OpportunityID ||
			g["contact_role_id"] != w.ContactRoleID && w.Trigger != cdc.TriggerUpdated || g["reason"] != w.Reason && w.Trigger != cdc.TriggerUpdated ||
			g["field"] != w.Field && w.Trigger == cdc.TriggerUpdated {
			problems = append(problems, fmt.Sprintf("entry %s = %v, want %+v", w.EventID, g, w))
		}
		if w.Trigger == cdc.TriggerUpdated && (g["old_value"] != w.Old.JSON() || g["new_value"] != w.New.JSON()) {
			problems = append(problems, fmt.Sprintf("entry %s %s: %s -> %s, want %s -> %s", w.EventID, w.Field, g["old_value"], g["new_value"], w.Old.JSON(), w.New.JSON()))
		}
	}
	for id, es := range byID {
		if !seen[id] {
			problems = append(problems, fmt.Sprintf("unexpected entry %v", es[0]))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		if len(problems) > 25 {
			problems = append(problems[:25], fmt.Sprintf("... and %d more", len(problems)-25))
		}
		t.Fatalf("%d expected entries, %d got; problems:\n%s", len(want), len(got), strings.Join(problems, "\n"))
	}
}
