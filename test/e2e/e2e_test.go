package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// generated returns n generated changes for the env's org and the entries
// the ground truth expects from them.
func (e *env) generated(n int, seed uint64, opps int) ([]synth.Change, []synth.Expected) {
	// No multi-opportunity events: across partitions their order is not kept
	// (see TestOracleInProcess, which covers them on one partition).
	gen := synth.NewGenerator(synth.GenConfig{Org: e.org, Seed: seed, Opportunities: opps, MultiRecordRate: -1})
	chs := make([]synth.Change, n)
	for i := range chs {
		chs[i] = gen.Next()
	}
	return chs, gen.Expected()
}

// The main job: a realistic workload through Kafka, every expected trigger
// entry exactly once, nothing else, then the person's state in Redis.
func TestGeneratedWorkloadExactlyOnce(t *testing.T) {
	e := newEnv(t, 1)
	chs, want := e.generated(3000, 7, 150)
	w := e.writer()
	e.publish(w, e.encode(e.encoder(), chs...)...)
	p := e.start()
	e.waitTriggers(len(want), 3*time.Minute)
	// Let anything extra that was still in flight land before comparing.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return e.consumedAll(len(chs)), "positions not at the end yet"
	})
	got := e.triggers()
	compare(t, got, want)
	if len(want) < 500 {
		t.Fatalf("workload too small to mean anything: %d expected entries", len(want))
	}

	// Every entry carries the contract's fields.
	for _, g := range got[:50] {
		for _, k := range []string{"trigger", "event_id", "org_id", "person_id", "opportunity_id", "occurred_at", "transaction_key", "sequence_number", "commit_user", "change_origin", "currency", "opportunity"} {
			if _, ok := g[k]; !ok {
				t.Fatalf("entry lacks %s: %v", k, g)
			}
		}
		if g["org_id"] != e.org || g["currency"] != "USD" {
			t.Fatalf("entry %v", g)
		}
	}
	code, _ := p.stop(30 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if bad := p.errorLines(); len(bad) > 0 {
		t.Fatalf("errors logged:\n%s", strings.Join(bad, "\n"))
	}
}

// kill -9 at random points while consuming, restart, several times: every
// expected entry is present exactly once.
func TestKill9MidStreamExactlyOnce(t *testing.T) {
	e := newEnv(t, 1)
	chs, want := e.generated(4000, 11, 200)
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()
	e.publish(w, msgs[:1000]...)
	rng := rand.New(rand.NewPCG(1, 2))
	published := 1000
	for round := 0; round < 4; round++ {
		p := e.start()
		// Publish more while it consumes, then kill it at a random moment.
		next := min(published+750, len(msgs))
		e.publish(w, msgs[published:next]...)
		published = next
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond) // a random kill point, not a wait for a condition
		p.kill9()
	}
	e.publish(w, msgs[published:]...)
	p := e.start()
	e.waitTriggers(len(want), 3*time.Minute)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return e.consumedAll(len(chs)), "positions not at the end yet"
	})
	compare(t, e.triggers(), want)
	p.stop(30 * time.Second)
}

// consumedAll reports whether the stored positions cover n messages.
func (e *env) consumedAll(n int) bool {
	pos, _ := e.rdb.HGetAll(context.Background(), "oppsync:{"+e.org+"}:positions").Result()
	total := 0
	for _, v := range pos {
		k, _ := strconv.Atoi(v)
		total += k
	}
	return total >= n
}

// With one topic per entity, a contact role can arrive before its
// opportunity: it waits, and is added with the snapshot when the opportunity
// arrives, or with a null opportunity at the timeout; never twice.
func TestPendingRoleAcrossTopics(t *testing.T) {
	e := newEnv(t, 2)
	e.extra["OPPSYNC_TRIGGERS_PENDING_ROLE_TIMEOUT"] = "3s"
	p := e.start()
	enc := e.encoder()
	w := e.writer()
	s := synth.NewScript(time.Now().Add(-time.Minute))
	oppA, oppB := synth.SalesforceID("006", 901), synth.SalesforceID("006", 902)
	roleA, roleB := synth.SalesforceID("00K", 901), synth.SalesforceID("00K", 902)
	person := synth.SalesforceID("003", 901)
	createA := s.OpportunityCreated(oppA, synth.F("Name", cdc.String("Pending Co")), synth.F("StageName", cdc.String("Prospecting")), synth.F("ContactId", cdc.String(person)))
	addA := s.ContactRoleAdded(roleA, oppA, person, "Decision Maker")
	addB := s.ContactRoleAdded(roleB, oppB, person, "Evaluator")

	// The roles first (OCR topic), the opportunity later (opportunity topic).
	e.publish(w, e.encode(enc, addA, addB)...)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := e.metric(p, "oppsync_pending_roles")
		return n == 2, fmt.Sprint("pending roles ", n)
	})
	if n := len(e.triggers()); n != 0 {
		t.Fatalf("%d entries before the opportunity arrived", n)
	}
	e.publish(w, e.encode(enc, createA)...)
	got := e.waitTriggers(1, 30*time.Second)
	if got[0]["opportunity_id"] != oppA || got[0]["role"] != "Decision Maker" || got[0]["is_primary"] != "true" || !strings.Contains(got[0]["opportunity"], "Pending Co") {
		t.Fatalf("released entry = %v", got[0])
	}
	// B's opportunity never comes: the timeout releases it with a null snapshot.
	got = e.waitTriggers(2, 30*time.Second)
	var b entry
	for _, g := range got {
		if g["opportunity_id"] == oppB {
			b = g
		}
	}
	if b == nil || b["opportunity"] != "null" || b["reason"] != "contact_role_created" {
		t.Fatalf("timed-out entry = %v (all: %v)", b, got)
	}
	// The opportunity arriving late adds nobody twice.
	e.publish(w, e.encode(enc, s.OpportunityCreated(oppB, synth.F("Name", cdc.String("Late Co"))), s.StageChanged(oppA, "Qualification"))...)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		n := len(e.stream("triggers:" + cdc.TriggerUpdated))
		return n >= 1, "waiting for the stage update"
	})
	if n := len(e.stream("triggers:" + cdc.TriggerAdded)); n != 2 {
		t.Fatalf("%d added entries, want 2", n)
	}
	p.stop(30 * time.Second)
}

// Poison messages land in the dead-letter stream with their reason, gaps in
// the resync stream, and the consumer goes on.
func TestPoisonGapsAndResync(t *testing.T) {
	e := newEnv(t, 1)
	enc := e.encoder()
	w := e.writer()
	s := synth.NewScript(time.Now().Add(-time.Minute))
	opp, role, person := synth.SalesforceID("006", 1), synth.SalesforceID("00K", 1), synth.SalesforceID("003", 1)
	good := e.encode(enc,
		s.OpportunityCreated(opp, synth.F("Name", cdc.String("Acme")), synth.F("StageName", cdc.String("Prospecting"))),
		s.ContactRoleAdded(role, opp, person, "Influencer"),
		s.Gap(cdc.EntityOpportunity, opp, opp),
		s.StageChanged(opp, "Closed Won"),
	)
	topic := e.topics[0]
	valid := good[0]
	truncated := valid
	truncated.Value = valid.Value[:len(valid.Value)/2]
	unknown := valid
	unknown.Headers = []cdc.Header{{Key: "sf-schema-id", Value: []byte("NoSuchSchemaId")}}
	poison := []cdc.Message{
		{Topic: topic, Key: []byte(opp), Value: []byte("definitely not avro")},
		{Topic: topic, Key: []byte(opp), Value: []byte{0, 0, 0, 0, 42, 1, 2}},
		truncated,
		unknown,
	}
	e.publish(w, poison[0], poison[1], poison[2], poison[3], good[0], good[1], good[2], good[3])
	p := e.start()
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return len(e.stream("triggers:"+cdc.TriggerUpdated)) >= 1, "waiting for the update after the poison"
	})
	dlq := e.stream("dlq")
	reasons := map[string]int{}
	for _, d := range dlq {
		reasons[d["reason"]]++
		if d["stage"] != "decode" || d["topic"] != topic || d["value"] == "" {
			t.Errorf("dlq entry %v", d)
		}
	}
	if len(dlq) != 4 || reasons["unknown_framing"] != 1 || reasons["schema_not_found"] != 2 || reasons["malformed_avro"] != 1 {
		t.Fatalf("dlq reasons = %v (%d entries)", reasons, len(dlq))
	}
	rs := e.stream("resync")
	if len(rs) != 1 || rs[0]["entity"] != "Opportunity" || rs[0]["record_ids"] != `["`+opp+`"]` || rs[0]["change_type"] != "GAP_UPDATE" {
		t.Fatalf("resync = %v", rs)
	}
	if n := e.metric(p, `oppsync_dead_letters_total{stage="decode"}`); n != 4 {
		t.Fatalf("dead_letters_total = %v", n)
	}
	p.stop(30 * time.Second)
}

// The Confluent wire format with a Schema Registry and connector-shaped
// bodies flow the same way.
func TestConfluentFramingConnectorShape(t *testing.T) {
	e := newEnv(t, 1)
	reg := synth.NewRegistry()
	srv := httptestServer(t, reg)
	e.extra["OPPSYNC_SCHEMA_REGISTRY_URL"] = srv
	topic := e.topics[0]
	enc, err := synth.NewEncoder(synth.EncoderConfig{Framing: synth.FramingConfluent, Shape: synth.ShapeConnector, Registry: reg,
		Topic: func(string) string { return topic }})
	if err != nil {
		t.Fatal(err)
	}
	s := synth.NewScript(time.Now().Add(-time.Minute))
	o := synth.NewOracle(e.org, nil)
	opp, role, person := synth.SalesforceID("006", 5), synth.SalesforceID("00K", 5), synth.SalesforceID("003", 5)
	chs := []synth.Change{
		s.OpportunityCreated(opp, synth.F("Name", cdc.String("Wire Co")), synth.F("Amount", cdc.Number(5000)), synth.F("CloseDate", cdc.String("2026-12-01"))),
		s.ContactRoleAdded(role, opp, person, "Economic Buyer"),
		s.AmountChanged(opp, 7500),
		s.OpportunityDeleted(opp),
		s.OpportunityUndeleted(opp),
	}
	for _, ch := range chs {
		o.Apply(ch)
	}
	e.publish(e.writer(), e.encode(enc, chs...)...)
	p := e.start()
	got := e.waitTriggers(len(o.Expected()), 60*time.Second)
	compare(t, got, o.Expected())
	p.stop(30 * time.Second)
}

// Bad configuration exits 2 with a message naming the key.
func TestBadConfigurationExits2(t *testing.T) {
	e := newEnv(t, 0)
	e.topics = []string{"x"}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("kafka:\n  brokerz: [a:1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		message string
	}{
		{"bad value in env", map[string]string{"OPPSYNC_KAFKA_START_OFFSET": "newest"}, nil, "kafka.start_offset"},
		{"unknown key in the file", nil, []string{"--config", bad}, "kafka.brokerz"},
		{"unknown flag", nil, []string{"--kafka.nope=1"}, "kafka.nope"},
		{"bad duration flag", nil, []string{"--triggers.pending_role_timeout=soon"}, "triggers.pending_role_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(oppsyncBinary(t), append([]string{"run"}, tt.args...)...)
			cmd.Env = e.environ("127.0.0.1:0")
			for k, v := range tt.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tt.message) {
				t.Fatalf("want one line naming %s, got:\n%s", tt.message, out)
			}
		})
	}
}

// /metrics exposes every metric of CONTRACT §7 once events flowed.
func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t, 1)
	chs, want := e.generated(400, 3, 30)
	e.publish(e.writer(), e.encode(e.encoder(), chs...)...)
	p := e.start()
	e.waitTriggers(len(want), 2*time.Minute)
	body := e.get(p, "/metrics")
	for _, name := range []string{"oppsync_events_consumed_total", "oppsync_events_skipped_total", "oppsync_decode_errors_total",
		"oppsync_dead_letters_total", "oppsync_triggers_emitted_total", "oppsync_duplicates_total", "oppsync_resync_notices_total",
		"oppsync_apply_duration_seconds", "oppsync_end_to_end_lag_seconds", "oppsync_kafka_consumer_lag", "oppsync_schemas_cached", "oppsync_pending_roles"} {
		if !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if !strings.Contains(e.get(p, "/healthz"), "ok") {
		t.Error("/healthz not ok")
	}
	// The first filter query of the instance loads the view and answers.
	resp, err := http.Post("http://"+p.http+"/v1/people/query", "application/json",
		strings.NewReader(`{"filters":[{"filter":"number_of_opportunities","op":"gte","value":1}],"limit":5}`))
	if err != nil {
		t.Fatal(err)
	}
	var qr struct {
		PersonIDs []string `json:"person_ids"`
	}
	err = json.NewDecoder(resp.Body).Decode(&qr)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || len(qr.PersonIDs) == 0 {
		t.Errorf("first query: %d %v %v", resp.StatusCode, err, qr)
	}
	code, took := p.stop(30 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("stopped in %s", took)
}

func (e *env) get(p *proc, path string) string {
	e.t.Helper()
	resp, err := http.Get("http://" + p.http + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric reads one sample's value from /metrics (0 when absent).
func (e *env) metric(p *proc, series string) float64 {
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			_ = json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, series))), &v)
			return v
		}
	}
	return 0
}

// Redis loses its newest writes (a failover to a lagging replica): state,
// triggers and positions roll back together, the running consumer notices
// the stored position moved back, re-reads from there, and in the end every
// expected entry is present exactly once.
func TestRedisRollbackReplays(t *testing.T) {
	e := newEnv(t, 1)
	chs, want := e.generated(1200, 21, 80)
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()
	e.publish(w, msgs[:600]...)
	p := e.start()
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) { return e.consumedAll(600), "first half not applied yet" })

	// The replica's view: everything of the org as it is now.
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "oppsync:{"+e.org+"}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	dumps := map[string]string{}
	for _, k := range keys {
		dumps[k] = e.rdb.Dump(ctx, k).Val()
	}
	e.publish(w, msgs[600:900]...)
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) { return e.consumedAll(900), "second part not applied yet" })

	// Fail over to the replica: the newest writes are gone.
	after, _ := e.rdb.Keys(ctx, "oppsync:{"+e.org+"}:*").Result()
	pipe := e.rdb.TxPipeline()
	pipe.Del(ctx, after...)
	for k, d := range dumps {
		pipe.RestoreReplace(ctx, k, 0, d)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	e.publish(w, msgs[900:]...)
	e.waitTriggers(len(want), 3*time.Minute)
	testenv.Eventually(t, time.Minute, func() (bool, string) { return e.consumedAll(len(msgs)), "not at the end yet" })
	compare(t, e.triggers(), want)
	if !strings.Contains(p.log(), "rewind") {
		t.Errorf("the consumer never rewound; log:\n%s", tail(p.log(), 30))
	}
	p.stop(30 * time.Second)
}

// With Redis unreachable at start, the process is up (/healthz 200) and
// says why it is not ready (/readyz 503 naming Redis), instead of being
// silent until a liveness probe kills it.
func TestHealthWhileRedisUnreachable(t *testing.T) {
	e := newEnv(t, 1)
	e.redisAddr = freeAddr(t) // nothing listens there
	p := e.spawn()
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		resp, err := http.Get("http://" + p.http + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, fmt.Sprint("healthz ", resp.StatusCode)
	})
	resp, err := http.Get("http://" + p.http + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "redis") {
		t.Fatalf("readyz = %d %s, want 503 naming redis", resp.StatusCode, body)
	}
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM while waiting for Redis", code)
	}
}
