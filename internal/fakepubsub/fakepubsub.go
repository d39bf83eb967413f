// Package fakepubsub is an in-process Salesforce for tests of oppsync
// bridge: a Pub/Sub API gRPC server (Subscribe with num_requested flow
// control, keepalives and replay ids; GetSchema; GetTopic) and an OAuth 2.0
// token endpoint (client credentials), with the faults the bridge must
// survive: dropped streams, expired sessions, refused credentials, replay
// ids past retention, and schema requests held back.
//
// Events are whatever the test publishes (Publish, PublishChange with the
// synth encoder: real Avro payloads with real bitmaps). Replay ids are
// 8-byte big-endian sequence numbers, one sequence per server.
//
// For tests only; it emits no metrics.
package fakepubsub

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/bridge/pubsubpb"
)

// Credentials the token endpoint accepts.
const (
	ClientID     = "fake-client"
	ClientSecret = "fake-secret"
)

// OrgID is the org the fake serves (tenantid).
var OrgID = synth.SalesforceID("00D", 1)

// Server is the fake Salesforce. Create it with Start.
type Server struct {
	pubsubpb.UnimplementedPubSubServer

	// Addr is the gRPC address (plaintext), InstanceURL the token
	// endpoint's origin (the token URL is InstanceURL/services/oauth2/token).
	Addr, InstanceURL string

	// KeepaliveEvery is how often an idle stream gets an empty FetchResponse.
	KeepaliveEvery time.Duration

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced when anything changes
	seq       uint64
	logs      map[string][]*pubsubpb.ConsumerEvent // channel → events in replay order
	trimmed   map[string]int                       // channel → events dropped from the front (retention)
	schemas   map[string]string
	topicSch  map[string]string // channel → its latest schema id
	tokens    map[string]bool   // valid access tokens
	tokenN    int
	refuse    bool            // the token endpoint refuses the credentials
	rejectAll bool            // every session is refused
	holdSch   bool            // GetSchema waits until released
	denied    map[string]bool // channels the session may not subscribe to
	dropGen   int             // bumped to drop every open stream
	stats     Stats
}

// Stats counts what the fake saw.
type Stats struct {
	TokenRequests  int
	GetSchemaCalls int
	Subscribes     int
	Keepalives     int
	// Requested and Delivered are cumulative over all streams;
	// MaxOutstanding is the highest requested − delivered of one stream
	// seen when a FetchRequest arrived.
	Requested, Delivered int
	MaxOutstanding       int
	// MaxRequested is the highest cumulative num_requested of one stream at
	// a moment when GetSchema was being held back.
	MaxRequestedWhileHeld int
}

// Start runs the fake until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{KeepaliveEvery: 100 * time.Millisecond, changed: make(chan struct{}), logs: map[string][]*pubsubpb.ConsumerEvent{},
		trimmed: map[string]int{}, schemas: map[string]string{}, topicSch: map[string]string{}, tokens: map[string]bool{}, denied: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pubsubpb.RegisterPubSubServer(gs, s)
	go func() { _ = gs.Serve(ln) }()
	hs := httptest.NewServer(http.HandlerFunc(s.token))
	s.Addr, s.InstanceURL = ln.Addr().String(), hs.URL
	t.Cleanup(func() {
		hs.Close()
		gs.Stop()
	})
	return s
}

// notify wakes every waiter; call with mu held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Channel returns the channel of an entity's change events.
func Channel(entity string) string { return "/data/" + entity + "ChangeEvent" }

// ReplayID renders sequence number n as a replay id.
func ReplayID(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// AddSchema makes a schema known to GetSchema.
func (s *Server) AddSchema(id, schemaJSON string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.schemas[id] = schemaJSON
}

// Publish appends an event to channel and returns its replay id.
func (s *Server) Publish(channel, schemaID string, payload []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := ReplayID(s.seq)
	s.logs[channel] = append(s.logs[channel], &pubsubpb.ConsumerEvent{ReplayId: id, Event: &pubsubpb.ProducerEvent{
		Id: fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq), SchemaId: schemaID, Payload: payload}})
	s.topicSch[channel] = schemaID
	s.notify()
	return id
}

// PublishChange encodes ch with enc (Pub/Sub framing and shape), registers
// its schema and publishes it on its entity's channel.
func (s *Server) PublishChange(t testing.TB, enc *synth.Encoder, ch synth.Change) []byte {
	t.Helper()
	m, err := enc.Encode(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	id := enc.SchemaID(ch.Entity)
	s.AddSchema(id, enc.Schema(ch.Entity))
	return s.Publish(Channel(ch.Entity), id, m.Value)
}

// Trim drops the oldest n events of channel, as Salesforce's retention
// does: a replay id before the first kept event is no longer valid.
func (s *Server) Trim(channel string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.logs[channel]))
	s.logs[channel] = s.logs[channel][n:]
	s.trimmed[channel] += n
}

// DropStreams ends every open Subscribe stream with UNAVAILABLE.
func (s *Server) DropStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropGen++
	s.notify()
}

// ExpireSessions invalidates every access token issued so far.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]bool{}
	s.dropGen++ // open streams end with UNAUTHENTICATED on their next look
	s.notify()
}

// RejectSessions makes every call, with any token, UNAUTHENTICATED.
func (s *Server) RejectSessions(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectAll = on
	s.dropGen++
	s.notify()
}

// RefuseCredentials makes the token endpoint answer 400 invalid_client.
func (s *Server) RefuseCredentials(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = on
}

// HoldSchemas makes GetSchema wait until HoldSchemas(false).
func (s *Server) HoldSchemas(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdSch = on
	s.notify()
}

// Deny makes channel one the session may not subscribe to (GetTopic's
// can_subscribe false, Subscribe PERMISSION_DENIED).
func (s *Server) Deny(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[channel] = true
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/services/oauth2/token" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	_ = r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.TokenRequests++
	w.Header().Set("Content-Type", "application/json")
	if s.refuse || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != ClientID || r.PostForm.Get("client_secret") != ClientSecret {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"invalid client credentials"}`))
		return
	}
	s.tokenN++
	tok := fmt.Sprintf("token-%d", s.tokenN)
	s.tokens[tok] = true
	_ = json.NewEncoder(w).Encode(map[string]string{"access_token": tok, "token_type": "Bearer", "instance_url": "http://" + r.Host,
		"id": "http://" + r.Host + "/id/" + OrgID + "/" + synth.SalesforceID("005", 1)})
}

// authorized checks the call's metadata; call with mu held.
func (s *Server) authorized(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	one := func(k string) string {
		if v := md.Get(k); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	if s.rejectAll || !s.tokens[one("accesstoken")] || one("instanceurl") == "" || one("tenantid") != OrgID {
		return status.Error(codes.Unauthenticated, "sfdc.platform.eventbus.grpc.service.auth.error: the session is not valid")
	}
	return nil
}

// GetTopic implements pubsubpb.PubSubServer.
func (s *Server) GetTopic(ctx context.Context, req *pubsubpb.TopicRequest) (*pubsubpb.TopicInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorized(ctx); err != nil {
		return nil, err
	}
	return &pubsubpb.TopicInfo{TopicName: req.GetTopicName(), TenantGuid: OrgID, CanSubscribe: !s.denied[req.GetTopicName()],
		SchemaId: s.topicSch[req.GetTopicName()]}, nil
}

// GetSchema implements pubsubpb.PubSubServer.
func (s *Server) GetSchema(ctx context.Context, req *pubsubpb.SchemaRequest) (*pubsubpb.SchemaInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorized(ctx); err != nil {
		return nil, err
	}
	s.stats.GetSchemaCalls++
	for s.holdSch {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
	text, ok := s.schemas[req.GetSchemaId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no schema %q", req.GetSchemaId())
	}
	return &pubsubpb.SchemaInfo{SchemaJson: text, SchemaId: req.GetSchemaId()}, nil
}

// Subscribe implements pubsubpb.PubSubServer.
func (s *Server) Subscribe(stream pubsubpb.PubSub_SubscribeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	channel := first.GetTopicName()
	s.mu.Lock()
	if err := s.authorized(ctx); err != nil {
		s.mu.Unlock()
		return err
	}
	if s.denied[channel] {
		s.mu.Unlock()
		return status.Errorf(codes.PermissionDenied, "no access to %s", channel)
	}
	s.stats.Subscribes++
	gen := s.dropGen
	next, err := s.startIndex(channel, first)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	st := &streamState{requested: int(first.GetNumRequested())}
	s.stats.Requested += st.requested
	s.observe(st)
	s.mu.Unlock()

	// Further FetchRequests top up the request.
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				return
			}
			s.mu.Lock()
			if t := req.GetTopicName(); t != "" && t != channel {
				st.bad = true
			}
			st.requested += int(req.GetNumRequested())
			s.stats.Requested += int(req.GetNumRequested())
			s.observe(st)
			s.notify()
			s.mu.Unlock()
		}
	}()

	keepalive := time.NewTicker(s.KeepaliveEvery)
	defer keepalive.Stop()
	for {
		s.mu.Lock()
		if st.bad {
			s.mu.Unlock()
			return status.Error(codes.InvalidArgument, "topic_name changed within a stream")
		}
		if s.dropGen != gen {
			err := s.authorized(ctx)
			s.mu.Unlock()
			if err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "stream dropped by the server")
		}
		log := s.logs[channel]
		base := s.trimmed[channel]
		if next < base {
			s.mu.Unlock()
			return status.Error(codes.InvalidArgument, "The Replay ID validation failed: the stream fell behind retention")
		}
		var resp *pubsubpb.FetchResponse
		if idx := next - base; idx < len(log) && st.requested > st.delivered {
			n := min(len(log)-idx, st.requested-st.delivered, 50)
			resp = &pubsubpb.FetchResponse{Events: log[idx : idx+n], LatestReplayId: log[idx+n-1].GetReplayId()}
			next += n
			st.delivered += n
			s.stats.Delivered += n
			resp.PendingNumRequested = int32(st.requested - st.delivered)
		}
		changed := s.changed
		s.mu.Unlock()
		if resp != nil {
			if err := stream.Send(resp); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-keepalive.C:
			s.mu.Lock()
			s.stats.Keepalives++
			latest := []byte(nil)
			if i := next - 1 - s.trimmed[channel]; i >= 0 && i < len(s.logs[channel]) {
				latest = s.logs[channel][i].GetReplayId()
			}
			pending := int32(st.requested - st.delivered)
			s.mu.Unlock()
			if err := stream.Send(&pubsubpb.FetchResponse{LatestReplayId: latest, PendingNumRequested: pending}); err != nil {
				return err
			}
		}
	}
}

type streamState struct {
	requested, delivered int
	bad                  bool
}

// observe records the flow-control figures; call with mu held.
func (s *Server) observe(st *streamState) {
	s.stats.MaxOutstanding = max(s.stats.MaxOutstanding, st.requested-st.delivered)
	if s.holdSch {
		s.stats.MaxRequestedWhileHeld = max(s.stats.MaxRequestedWhileHeld, st.requested)
	}
}

// startIndex returns the absolute index (trimmed events included) of the
// first event to deliver; call with mu held.
func (s *Server) startIndex(channel string, first *pubsubpb.FetchRequest) (int, error) {
	base, n := s.trimmed[channel], len(s.logs[channel])
	switch first.GetReplayPreset() {
	case pubsubpb.ReplayPreset_LATEST:
		return base + n, nil
	case pubsubpb.ReplayPreset_EARLIEST:
		return base, nil
	}
	id := first.GetReplayId()
	if len(id) != 8 {
		return 0, status.Error(codes.InvalidArgument, "The Replay ID validation failed: malformed replay id")
	}
	want := binary.BigEndian.Uint64(id)
	// The replay id must be the one of a retained event (or the newest
	// trimmed one's successor position).
	for i, ev := range s.logs[channel] {
		if binary.BigEndian.Uint64(ev.GetReplayId()) == want {
			return base + i + 1, nil
		}
	}
	if n > 0 && want > binary.BigEndian.Uint64(s.logs[channel][n-1].GetReplayId()) {
		return base + n, nil // a keepalive's id past the newest event
	}
	if n == 0 && base == 0 {
		return 0, nil
	}
	return 0, status.Error(codes.InvalidArgument, "The Replay ID validation failed: the replay id is no longer retained")
}

// Events returns the events published on channel, trimmed ones excluded.
func (s *Server) Events(channel string) []*pubsubpb.ConsumerEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pubsubpb.ConsumerEvent(nil), s.logs[channel]...)
}
