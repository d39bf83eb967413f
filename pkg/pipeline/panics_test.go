package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// panicDecoder panics on the message "panic", with a runtime error on
// "index", decodes "boom" as fakeDecoder does "opp", and the rest as
// fakeDecoder does.
type panicDecoder struct{ fakeDecoder }

func (d *panicDecoder) Decode(ctx context.Context, m *cdc.Message) (*cdc.Event, error) {
	switch string(m.Value) {
	case "panic":
		panic("decoder bug with a value: secret")
	case "index":
		_ = m.Value[len(m.Value)]
	case "boom": // decodes fine; applying it panics
		return &cdc.Event{Entity: cdc.EntityOpportunity, ChangeType: cdc.Update, RecordIDs: []string{"006B"}}, nil
	}
	return d.fakeDecoder.Decode(ctx, m)
}

// panicApplier panics on any batch holding the message "boom" (not
// dead-lettered), and records what it applied, one entry per message.
type panicApplier struct {
	applied []string // message values, "dlq:<stage>:<reason>" for dead letters
	calls   int
}

func (a *panicApplier) ApplyBatch(_ context.Context, items []state.Item) (state.BatchResult, error) {
	a.calls++
	for _, it := range items {
		if it.DeadLetter == nil && string(it.Msg.Value) == "boom" {
			panic("applier bug")
		}
	}
	res := state.BatchResult{}
	for _, it := range items {
		if it.DeadLetter != nil {
			a.applied = append(a.applied, "dlq:"+it.DeadLetter.Stage+":"+it.DeadLetter.Reason)
			res.DeadLetters = map[string]int{it.DeadLetter.Stage: 1}
			continue
		}
		a.applied = append(a.applied, string(it.Msg.Value))
	}
	return res, nil
}

// panicBeginner also begins batches ahead, and panics there on "boom".
type panicBeginner struct{ panicApplier }

func (b *panicBeginner) Begin(_ context.Context, items []state.Item) *state.Applying {
	for _, it := range items {
		if it.DeadLetter == nil && string(it.Msg.Value) == "boom" {
			panic("begin bug")
		}
	}
	panic("not reached in these tests")
}

func TestPanicsAreContained(t *testing.T) {
	for _, tc := range []struct {
		name   string
		app    func() (Applier, *panicApplier)
		ahead  bool
		msgs   []string
		want   []string
		stage  string
		errTxt string
	}{
		{
			name:  "decoder panics",
			app:   func() (Applier, *panicApplier) { a := &panicApplier{}; return a, a },
			msgs:  []string{"opp", "panic", "opp"},
			want:  []string{"opp", "dlq:decode:internal_error", "opp"},
			stage: stageDecode, errTxt: "a value of type string",
		},
		{
			name:  "decoder hits a runtime error",
			app:   func() (Applier, *panicApplier) { a := &panicApplier{}; return a, a },
			msgs:  []string{"index", "opp"},
			want:  []string{"dlq:decode:internal_error", "opp"},
			stage: stageDecode, errTxt: "index out of range [5] with length 5",
		},
		{
			name:  "applier panics on one message",
			app:   func() (Applier, *panicApplier) { a := &panicApplier{}; return a, a },
			msgs:  []string{"opp", "account", "boom", "opp", "garbage"},
			want:  []string{"opp", "account", "dlq:apply:internal_error", "opp", "dlq:decode:malformed_avro"},
			stage: stageApply, errTxt: "a value of type string",
		},
		{
			name:  "beginning ahead panics",
			app:   func() (Applier, *panicApplier) { b := &panicBeginner{}; return b, &b.panicApplier },
			ahead: true,
			msgs:  []string{"opp", "boom", "opp"},
			want:  []string{"opp", "dlq:apply:internal_error", "opp"},
			stage: stageApply, errTxt: "a value of type string",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, rec := tc.app()
			var logs strings.Builder
			p := New(Config{}, &panicDecoder{}, app, prometheus.NewRegistry(), zerolog.New(&logs))
			var err error
			if tc.ahead {
				err = p.BeginBatch(context.Background(), msgs(tc.msgs...)).Wait()
			} else {
				err = p.HandleBatch(context.Background(), msgs(tc.msgs...))
			}
			if err != nil {
				t.Fatalf("batch: %v", err)
			}
			if strings.Join(rec.applied, " ") != strings.Join(tc.want, " ") {
				t.Errorf("applied %q, want %q", rec.applied, tc.want)
			}
			if got := testutil.ToFloat64(p.m.panics.WithLabelValues(tc.stage)); got != 1 {
				t.Errorf("panics{stage=%s} = %v, want 1", tc.stage, got)
			}
			if got := testutil.ToFloat64(p.m.deadLetters.WithLabelValues(tc.stage)); got != 1 {
				t.Errorf("dead_letters{stage=%s} = %v, want 1", tc.stage, got)
			}
			out := logs.String()
			for _, want := range []string{`"level":"error"`, `"stack":"goroutine`, "panics_test.go", tc.errTxt} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "secret") {
				t.Errorf("log carries the panic's value:\n%s", out)
			}
			// The consumer goes on: the next batch is applied as usual.
			rec.applied = nil
			if err := p.HandleBatch(context.Background(), msgs("opp")); err != nil || len(rec.applied) != 1 {
				t.Fatalf("next batch: %v, applied %q", err, rec.applied)
			}
		})
	}
}

// A batch whose panic does not recur one message at a time (it depended on
// the batch) is applied whole, message by message, and still counted.
func TestPanicNotReproducedAlone(t *testing.T) {
	app := &onceApplier{}
	p := New(Config{}, &fakeDecoder{}, app, prometheus.NewRegistry(), zerolog.Nop())
	if err := p.HandleBatch(context.Background(), msgs("opp", "opp", "account")); err != nil {
		t.Fatal(err)
	}
	if app.applied != 3 {
		t.Errorf("applied %d messages, want 3", app.applied)
	}
	if got := testutil.ToFloat64(p.m.panics.WithLabelValues(stageApply)); got != 1 {
		t.Errorf("panics = %v, want 1", got)
	}
	if got := testutil.ToFloat64(p.m.deadLetters.WithLabelValues(stageApply)); got != 0 {
		t.Errorf("dead letters = %v, want 0", got)
	}
}

// onceApplier panics on its first call only.
type onceApplier struct {
	calls, applied int
}

func (a *onceApplier) ApplyBatch(_ context.Context, items []state.Item) (state.BatchResult, error) {
	a.calls++
	if a.calls == 1 {
		var s []int
		_ = s[len(items)]
	}
	a.applied += len(items)
	return state.BatchResult{}, nil
}
