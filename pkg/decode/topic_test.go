package decode

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

// A schema Put while a lookup waits for it ends the wait; one that never
// comes is schema_not_found after the bound; a cancelled lookup is not
// schema_not_found (the message must not be dead-lettered).
func TestTopicSourceWaits(t *testing.T) {
	id := schemas.ID(oppSchema)
	tests := []struct {
		name     string
		put      bool
		cancel   bool
		wantErr  string
		wantText string
	}{
		{name: "arrives while waiting", put: true, wantText: oppSchema},
		{name: "never arrives", wantErr: cdc.ReasonSchemaNotFound},
		{name: "cancelled", cancel: true, wantErr: "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 200 * time.Millisecond
			if tt.put || tt.cancel {
				wait = time.Minute // the test ends long before unless the Put or cancel ends the wait
			}
			src := NewTopicSource(wait)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				text string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				s, err := src.Schema(ctx, id)
				done <- result{s, err}
			}()
			if tt.put {
				if !src.Put("other", ocrSchema) || !src.Put(id, oppSchema) {
					t.Fatal("Put refused a schema")
				}
			}
			if tt.cancel {
				cancel()
			}
			r := <-done
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error()+cdc.ReasonOf(r.err), tt.wantErr) {
					t.Fatalf("err = %v, want %s", r.err, tt.wantErr)
				}
				if tt.cancel && cdc.ReasonOf(r.err) == cdc.ReasonSchemaNotFound {
					t.Fatal("a cancelled lookup is schema_not_found")
				}
				return
			}
			if r.err != nil || r.text != tt.wantText {
				t.Fatalf("Schema = %.40q, %v", r.text, r.err)
			}
		})
	}
}

func TestTopicSourceRefusesBadRecords(t *testing.T) {
	src := NewTopicSource(time.Millisecond)
	for _, id := range []string{"", "../x", ".hidden", "registry:1", strings.Repeat("a", 300)} {
		if src.Put(id, oppSchema) {
			t.Errorf("Put(%q) accepted", id)
		}
	}
	if src.Put("ok", "") || src.Put("big", strings.Repeat(" ", maxSchemaBytes+1)) {
		t.Error("Put accepted an empty or oversized schema")
	}
	if _, err := src.Schema(context.Background(), "registry:1"); cdc.ReasonOf(err) != cdc.ReasonSchemaNotFound {
		t.Errorf("registry id: %v", err)
	}
}

// A decoder whose schemas come from a TopicSource decodes a message whose
// schema is published after the message arrived (no restart, no file).
func TestDecoderLearnsSchemaFromTopic(t *testing.T) {
	src := NewTopicSource(time.Minute)
	d, err := New(Config{}, src)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := synth.NewScript(time.Now())
	m, err := enc.Encode(context.Background(), s.OpportunityCreated(synth.SalesforceID("006", 1), synth.F("Name", cdc.String("Acme"))))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.Decode(context.Background(), &m)
		done <- err
	}()
	src.Put(enc.SchemaID(cdc.EntityOpportunity), enc.Schema(cdc.EntityOpportunity))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHeaderOf(t *testing.T) {
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := synth.NewScript(time.Now())
	role, opp, person := synth.SalesforceID("00K", 7), synth.SalesforceID("006", 7), synth.SalesforceID("003", 7)
	m, err := enc.Encode(context.Background(), s.ContactRoleAdded(role, opp, person, "Evaluator"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseSchema(enc.Schema(cdc.EntityContactRole))
	if err != nil {
		t.Fatal(err)
	}
	h, err := sc.HeaderOf(m.Value)
	if err != nil || h.Entity != cdc.EntityContactRole || len(h.RecordIDs) != 1 || h.RecordIDs[0] != role ||
		h.CommitTimestamp != m.Time.UnixMilli() || sc.EventName() != "OpportunityContactRoleChangeEvent" {
		t.Fatalf("HeaderOf = %+v %v, event name %s", h, err, sc.EventName())
	}
	for _, bad := range [][]byte{nil, m.Value[:3], {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		_, err := sc.HeaderOf(bad)
		var ce *cdc.Error
		if !errors.As(err, &ce) {
			t.Errorf("HeaderOf(%x) = %v, want a *cdc.Error", bad, err)
		}
	}
	conn, err := ParseSchema(ocrConnSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.HeaderOf(m.Value); cdc.ReasonOf(err) != cdc.ReasonNotAChangeEvent {
		t.Fatalf("connector schema: %v", err)
	}
}
