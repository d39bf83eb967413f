package pipeline_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/schemas"
)

// edge runs real payloads through decode, the pipeline and a Store on the
// test Redis.
type edge struct {
	t      *testing.T
	rdb    *redis.Client
	org    string
	enc    *synth.Encoder
	reg    *prometheus.Registry
	p      *pipeline.Pipeline
	st     *state.Store
	script *synth.Script
	off    int64
}

// newEdge encodes Opportunity changes also under the extra entity names
// (with the Opportunity schema), so that their headers carry those names.
func newEdge(t *testing.T, entities ...string) *edge {
	e := &edge{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "org"), reg: prometheus.NewRegistry(),
		script: synth.NewScript(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))}
	extra := map[string]string{}
	for _, name := range entities {
		extra[name] = schemas.PubSub(cdc.EntityOpportunity)
	}
	var err error
	if e.enc, err = synth.NewEncoder(synth.EncoderConfig{Schemas: extra}); err != nil {
		t.Fatal(err)
	}
	dec, err := decode.New(decode.Config{}, decode.NewMapSource(e.enc.Schemas()))
	if err != nil {
		t.Fatal(err)
	}
	e.st = inproc.Store(t, e.rdb, state.Config{Org: e.org, IgnoreFields: synth.DefaultIgnoreFields})
	e.p = pipeline.New(pipeline.Config{}, dec, e.st, e.reg, zerolog.Nop())
	return e
}

// handle encodes changes as consecutive messages of one partition and
// hands them to the pipeline as one batch.
func (e *edge) handle(changes ...synth.Change) {
	e.t.Helper()
	msgs := make([]cdc.Message, len(changes))
	for i, ch := range changes {
		m, err := e.enc.Encode(context.Background(), ch)
		if err != nil {
			e.t.Fatal(err)
		}
		m.Topic, m.Offset = "edge", e.off
		e.off++
		msgs[i] = m
	}
	if err := e.p.HandleBatch(context.Background(), msgs); err != nil {
		e.t.Fatalf("HandleBatch: %v", err)
	}
}

func (e *edge) key(parts ...string) string {
	return "oppsync:{" + e.org + "}:" + strings.Join(parts, ":")
}

func (e *edge) deadLetters() []map[string]any {
	e.t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), e.key("dlq"), "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = m.Values
	}
	return out
}

func (e *edge) mustLoad(id string) {
	e.t.Helper()
	if _, ok, err := e.st.Replica().LoadGroup(context.Background(), id); err != nil || !ok {
		e.t.Fatalf("opportunity %s: known %v, %v", id, ok, err)
	}
}

// TestInvalidUTF8EntityIsDeadLettered (issue 14, case 1): such an event
// used to panic in the consumed counter's label, before it could be
// dead-lettered or committed.
func TestInvalidUTF8EntityIsDeadLettered(t *testing.T) {
	const bad = "Opportunit\xe9"
	e := newEdge(t, bad)
	id, next := synth.SalesforceID("006", 1), synth.SalesforceID("006", 2)
	ch := e.script.OpportunityCreated(id, synth.F("Name", cdc.String("Acme")))
	ch.Entity = bad
	e.handle(ch, e.script.OpportunityCreated(next, synth.F("Name", cdc.String("Next"))))
	dlq := e.deadLetters()
	if len(dlq) != 1 || dlq[0]["reason"] != cdc.ReasonNotAChangeEvent || dlq[0]["stage"] != "decode" || dlq[0]["offset"] != "0" {
		t.Fatalf("dead letters = %v", dlq)
	}
	if _, ok, _ := e.st.Replica().LoadGroup(context.Background(), id); ok {
		t.Errorf("the event of entity %q was applied", bad)
	}
	e.mustLoad(next)
}

// TestEntityLabelsAreBounded (issue 14, case 2): distinct entity names,
// skipped or dead-lettered, make no series of their own.
func TestEntityLabelsAreBounded(t *testing.T) {
	names := make([]string, 2000)
	for i := range names {
		names[i] = fmt.Sprintf("Custom%04d__%s__c", i, strings.Repeat("x", 60))
		if i%2 == 1 { // too long for an API name: dead-lettered
			names[i] = strings.Repeat("Y", 100) + names[i]
		}
	}
	e := newEdge(t, names...)
	for i := 0; i < len(names); i += 200 {
		var batch []synth.Change
		for _, name := range names[i : i+200] {
			ch := e.script.OpportunityCreated(synth.SalesforceID("006", uint64(i+1)))
			ch.Entity = name
			batch = append(batch, ch)
		}
		e.handle(batch...)
	}
	e.handle(e.script.OpportunityCreated(synth.SalesforceID("006", 9999)))
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "Custom") || strings.Contains(l.GetValue(), "YYY") {
					t.Fatalf("%s has the label %s=%.40q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
		if mf.GetName() == "oppsync_events_consumed_total" {
			got := map[string]float64{}
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				got[l["entity"]+"/"+l["change_type"]] = m.GetCounter().GetValue()
			}
			if len(got) != 2 || got["other/CREATE"] != 1000 || got["Opportunity/CREATE"] != 1 {
				t.Errorf("consumed = %v, want other/CREATE 1000 and Opportunity/CREATE 1", got)
			}
		}
	}
	if series > 100 {
		t.Errorf("%d series after 2,000 entity names", series)
	}
	if n := len(e.deadLetters()); n != 1000 {
		t.Errorf("%d dead letters, want the 1000 overlong names", n)
	}
}

// TestIDWithKeySuffixIsDeadLettered (issue 14, case 3): an opportunity
// whose id is "<existing id>:roles" used to write its fields into that
// opportunity's roles hash, breaking every read of it.
func TestIDWithKeySuffixIsDeadLettered(t *testing.T) {
	e := newEdge(t)
	ctx := context.Background()
	opp, contact := synth.SalesforceID("006", 1), synth.SalesforceID("003", 1)
	e.handle(
		e.script.OpportunityCreated(opp, synth.F("Name", cdc.String("Acme"))),
		e.script.ContactRoleAdded(synth.SalesforceID("00K", 1), opp, contact, "Buyer"),
	)
	roles := e.rdb.HGetAll(ctx, e.key("opp", opp, "roles")).Val()
	if len(roles) != 1 {
		t.Fatalf("roles = %v", roles)
	}
	hijack := e.script.OpportunityCreated(opp+":roles", synth.F("Name", cdc.String("Hijack")))
	role := e.script.ContactRoleAdded(synth.SalesforceID("00K", 2), opp, contact+"\r\n", "Buyer")
	e.handle(hijack, role, e.script.AmountChanged(opp, 42))
	if got := e.rdb.HGetAll(ctx, e.key("opp", opp, "roles")).Val(); len(got) != 1 {
		t.Fatalf("roles hash of %s now %v, was %v", opp, got, roles)
	}
	g, ok, err := e.st.Replica().LoadGroup(ctx, opp)
	if err != nil || !ok || g.Opp.Fields["Amount"] != cdc.Number(42) || len(g.Roles) != 1 {
		t.Fatalf("LoadGroup = %+v, %v, %v", g, ok, err)
	}
	dlq := e.deadLetters()
	if len(dlq) != 2 {
		t.Fatalf("dead letters = %v", dlq)
	}
	for i, mention := range []string{"recordIds[0]", "field ContactId"} {
		if dlq[i]["reason"] != cdc.ReasonInvalidID || dlq[i]["stage"] != "decode" || !strings.Contains(dlq[i]["error"].(string), mention) {
			t.Errorf("dead letter %d = %v, want invalid_id naming %s", i, dlq[i], mention)
		}
	}
	// The original bytes are kept for re-publishing.
	if v, _ := base64.StdEncoding.DecodeString(dlq[0]["value"].(string)); len(v) == 0 {
		t.Error("dead letter without the message value")
	}
}
