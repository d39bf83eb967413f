package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/fakepubsub"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
)

// Every event reaches Kafka unchanged in the raw framing of CONTRACT §3:
// topic prefix + change event name, key the first record id, value the
// payload, headers sf-schema-id, sf-replay-id (hex), sf-event-id; the
// schemas topic holds each schema, fetched once, written before the first
// event that uses it; the decoder reads the records with the schemas from
// that topic.
func TestForwardsInRawFraming(t *testing.T) {
	h := newHarness(t, 2)
	h.publish(30)
	r := h.start(h.config())
	got := h.waitAll(60 * time.Second)
	h.exactlyOnce(got)

	sch := h.records(h.schemas)
	if len(sch) != 2 || h.srv.Stats().GetSchemaCalls != 2 {
		t.Fatalf("%d schema records, %d GetSchema calls; want 2 and 2", len(sch), h.srv.Stats().GetSchemaCalls)
	}
	schemaAt := map[string]time.Time{}
	src := decode.NewTopicSource(time.Second)
	for _, m := range sch {
		schemaAt[string(m.Key)] = m.Time
		src.Put(string(m.Key), string(m.Value))
	}
	dec, err := decode.New(decode.Config{}, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, entity := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		events := h.srv.Events(fakepubsub.Channel(entity))
		recs := h.records(h.topic(entity))
		if len(recs) != len(events) {
			t.Fatalf("%s: %d records, %d events", entity, len(recs), len(events))
		}
		for i, m := range recs {
			ev := events[i]
			schemaID, _ := header(m, HeaderSchemaID)
			replay, _ := header(m, HeaderReplayID)
			eventID, _ := header(m, HeaderEventID)
			if !bytes.Equal(m.Value, ev.GetEvent().GetPayload()) || schemaID != ev.GetEvent().GetSchemaId() ||
				replay != hex.EncodeToString(ev.GetReplayId()) || eventID != ev.GetEvent().GetId() {
				t.Fatalf("%s record %d = %s %s %s, want the event %+v", entity, i, schemaID, replay, eventID, ev)
			}
			at, ok := schemaAt[schemaID]
			if !ok || at.After(m.Time) {
				t.Fatalf("schema %s written at %v, after the event written at %v (or never)", schemaID, at, m.Time)
			}
			msg := cdc.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
			for _, hd := range m.Headers {
				msg.Headers = append(msg.Headers, cdc.Header{Key: hd.Key, Value: hd.Value})
			}
			evd, err := dec.Decode(context.Background(), &msg)
			if err != nil {
				t.Fatalf("decoding the record: %v", err)
			}
			if string(m.Key) != evd.RecordIDs[0] || evd.Entity != entity {
				t.Fatalf("key %s, want the first record id %s of %s", m.Key, evd.RecordIDs[0], evd.Entity)
			}
		}
	}
	if n := counter(r.b.metrics.events.WithLabelValues(channels[0])); n != 30 {
		t.Fatalf("oppsync_bridge_events_total{channel=%s} = %v, want 30", channels[0], n)
	}
	if err := r.halt(t); err != nil {
		t.Fatal(err)
	}

	// A restart fetches no schema again: they are read back from the topic.
	h.publish(5)
	r = h.start(h.config())
	h.exactlyOnce(h.waitAll(60 * time.Second))
	if n := h.srv.Stats().GetSchemaCalls; n != 2 {
		t.Fatalf("%d GetSchema calls after a restart, want still 2", n)
	}
	if err := r.halt(t); err != nil {
		t.Fatal(err)
	}
}

// Stopping and starting again, with events published in between, resumes
// after the last event written: nothing lost, nothing twice. bridge.start
// applies only without a stored position.
func TestResumesFromKafka(t *testing.T) {
	h := newHarness(t, 3)
	h.publish(10)
	cfg := h.config()
	cfg.Start = StartLatest // nothing before the first start is read
	r := h.start(cfg)
	// Ready means the subscriptions were sent; "latest" is where each
	// stands when the server receives it, so publish only after it did.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return r.b.Ready() == nil && h.srv.Stats().Subscribes >= len(channels), "not subscribed"
	})
	h.publish(25)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		n := len(h.replayCounts())
		return n == 50, "events in Kafka"
	})
	if err := r.halt(t); err != nil {
		t.Fatal(err)
	}
	h.publish(25)
	r = h.start(cfg)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return len(h.replayCounts()) == 100, "events in Kafka"
	})
	got := h.replayCounts()
	for i, ch := range channels {
		for j, ev := range h.srv.Events(ch) {
			n := got[hex.EncodeToString(ev.GetReplayId())]
			if want := 1; j < 10 {
				want = 0 // published before the first start, with bridge.start latest
				if n != want {
					t.Errorf("channel %d event %d before the first start is in Kafka %d times", i, j, n)
				}
			} else if n != want {
				t.Errorf("channel %d event %d is in Kafka %d times", i, j, n)
			}
		}
	}
	if err := r.halt(t); err != nil {
		t.Fatal(err)
	}
}

// The server dropping every stream, or sending keepalives only, costs
// nothing: the bridge subscribes again after the last event written.
func TestStreamDropsAndKeepalives(t *testing.T) {
	h := newHarness(t, 2)
	r := h.start(h.config())
	for round := 0; round < 4; round++ {
		subs := h.srv.Stats().Subscribes
		testenv.Eventually(t, 30*time.Second, func() (bool, string) { return r.b.Ready() == nil, "not subscribed" })
		h.publish(15)
		h.srv.DropStreams()
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			return h.srv.Stats().Subscribes >= subs+len(channels), "not subscribed again"
		})
	}
	h.exactlyOnce(h.waitAll(60 * time.Second))
	if n := counter(r.b.metrics.reconnects); n < 4 {
		t.Fatalf("oppsync_bridge_reconnects_total = %v, want at least 4", n)
	}
	// Keepalives only: the subscription stays up, the lag is 0.
	k := h.srv.Stats().Keepalives
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return h.srv.Stats().Keepalives >= k+10 && r.b.Ready() == nil && r.b.lag() == 0, "keepalives"
	})
	reconnects := counter(r.b.metrics.reconnects)
	h.publish(5)
	h.exactlyOnce(h.waitAll(60 * time.Second))
	if n := counter(r.b.metrics.reconnects); n != reconnects {
		t.Fatalf("reconnected during keepalives: %v → %v", reconnects, n)
	}
	if err := r.halt(t); err != nil {
		t.Fatal(err)
	}
}

// A stored replay id Salesforce no longer has: per bridge.on_expired_replay,
// fail with a message naming the key, or start again at the earliest or
// the latest event.
func TestExpiredReplay(t *testing.T) {
	tests := []struct {
		policy  string
		wantErr string
		// want is which of the events published while stopped reach Kafka:
		// the retained ones (earliest) or none (latest).
		wantRetained bool
	}{
		{policy: ExpiredFail, wantErr: "set bridge.on_expired_replay to earliest or latest"},
		{policy: StartEarliest, wantRetained: true},
		{policy: StartLatest},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			h := newHarness(t, 1)
			h.publish(5)
			cfg := h.config()
			cfg.OnExpiredReplay = tt.policy
			r := h.start(cfg)
			h.waitAll(60 * time.Second)
			if err := r.halt(t); err != nil {
				t.Fatal(err)
			}
			// While stopped: more events, then retention drops all but the
			// last 3 of each channel (the stored position among them).
			h.publish(10)
			for _, ch := range channels {
				h.srv.Trim(ch, len(h.srv.Events(ch))-3)
			}
			r = h.start(cfg)
			if tt.wantErr != "" {
				err := r.failed(t)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			testenv.Eventually(t, 30*time.Second, func() (bool, string) {
				return counter(r.b.metrics.resets.WithLabelValues(channels[0])) == 1 && r.b.Ready() == nil, "no replay reset yet"
			})
			h.publish(2) // after the reset: always forwarded
			want := 10 + 4
			if tt.wantRetained {
				want += 6
			}
			testenv.Eventually(t, 60*time.Second, func() (bool, string) {
				return len(h.replayCounts()) == want, "events in Kafka"
			})
			for r, n := range h.replayCounts() {
				if n != 1 {
					t.Errorf("event %s in Kafka %d times", r, n)
				}
			}
			if err := r.halt(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An expired session is renewed once and the bridge goes on; a session
// refused again right after renewal, or credentials the token endpoint
// refuses, end Run with a message naming the keys to check.
func TestAuthErrors(t *testing.T) {
	t.Run("expired session", func(t *testing.T) {
		h := newHarness(t, 1)
		r := h.start(h.config())
		h.publish(5)
		h.waitAll(60 * time.Second)
		tokens := h.srv.Stats().TokenRequests
		h.srv.ExpireSessions()
		h.publish(5)
		h.exactlyOnce(h.waitAll(60 * time.Second))
		if n := h.srv.Stats().TokenRequests; n <= tokens {
			t.Fatalf("no new token after the session expired (%d requests)", n)
		}
		if err := r.halt(t); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		name   string
		fault  func(*fakepubsub.Server)
		before bool // the fault is there before the bridge starts
		want   []string
	}{
		{"session refused after renewal", func(s *fakepubsub.Server) { s.RejectSessions(true) },
			false, []string{"a fresh session was refused too", "salesforce.client_id", "Unauthenticated"}},
		{"credentials refused", func(s *fakepubsub.Server) { s.RefuseCredentials(true); s.ExpireSessions() },
			false, []string{"invalid_client", "salesforce.client_secret"}},
		{"channel no longer permitted", func(s *fakepubsub.Server) { s.Deny(channels[1]); s.DropStreams() }, false,
			[]string{"channel " + channels[1], "PermissionDenied", "bridge.channels"}},
		{"channel never permitted", func(s *fakepubsub.Server) { s.Deny(channels[1]) }, true,
			[]string{"may not subscribe to " + channels[1], "bridge.channels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1)
			if tt.before {
				tt.fault(h.srv)
			}
			r := h.start(h.config())
			if !tt.before {
				h.publish(3)
				h.waitAll(60 * time.Second)
				tt.fault(h.srv)
			}
			err := r.failed(t)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("Run = %v, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), fakepubsub.ClientSecret) {
				t.Fatal("the error shows the client secret")
			}
		})
	}
}

// Flow control: with nothing written (GetSchema held back), the bridge
// never requests more than bridge.max_in_flight; once writes flow, it
// requests more as events are written, never more than that outstanding.
func TestFlowControl(t *testing.T) {
	h := newHarness(t, 1)
	h.publish(100)
	h.srv.HoldSchemas(true)
	cfg := h.config()
	cfg.MaxInFlight = 7
	cfg.Channels = channels[:1]
	r := h.start(cfg)
	// The window is delivered, then only keepalives flow: a bridge that
	// requested on receipt rather than on write would have asked for more.
	var k int
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		st := h.srv.Stats()
		if st.Delivered < 7 {
			return false, "window not delivered yet"
		}
		if k == 0 {
			k = st.Keepalives
		}
		return st.Keepalives >= k+5, "waiting for keepalives after the window"
	})
	if st := h.srv.Stats(); st.MaxRequestedWhileHeld != 7 || st.Delivered != 7 {
		t.Fatalf("requested %d (delivered %d) with nothing written, want exactly max_in_flight 7", st.MaxRequestedWhileHeld, st.Delivered)
	}
	h.srv.HoldSchemas(false)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return len(h.records(h.topic(cdc.EntityOpportunity))) == 100, "events in Kafka"
	})
	if st := h.srv.Stats(); st.MaxOutstanding > 7 || st.Requested > 100+7 {
		t.Fatalf("outstanding up to %d, requested %d in all: more than max_in_flight 7", st.MaxOutstanding, st.Requested)
	}
	if err := r.halt(t); err != nil {
		t.Fatal(err)
	}
}
