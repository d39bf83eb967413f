package bridge

import (
	"context"
	"fmt"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/oppsync/oppsync/pkg/bridge/pubsubpb"
	"github.com/oppsync/oppsync/pkg/decode"
)

// schemaSet holds the writer schemas of the events: those on the schemas
// topic at start, and those fetched with GetSchema since, each published to
// the topic before the first event that uses it. Safe for concurrent use;
// concurrent misses of one id fetch it once.
type schemaSet struct {
	b *Bridge

	mu    sync.Mutex
	byID  map[string]*decode.Schema
	fetch map[string]*sync.Mutex // per id being fetched
}

func newSchemaSet(b *Bridge) *schemaSet {
	return &schemaSet{b: b, byID: map[string]*decode.Schema{}, fetch: map[string]*sync.Mutex{}}
}

// load reads the schemas topic. Records that are not schemas are skipped.
func (s *schemaSet) load(ctx context.Context) error {
	return s.b.kafka.readAll(ctx, s.b.cfg.SchemasTopic, func(m kafka.Message) {
		if m.Value == nil {
			return
		}
		sc, err := decode.ParseSchema(string(m.Value))
		if err != nil {
			s.b.log.Warn().Err(err).Str("schema_id", string(m.Key)).Msg("skipping a schema of the schemas topic that does not parse")
			return
		}
		s.mu.Lock()
		s.byID[string(m.Key)] = sc
		s.mu.Unlock()
	})
}

func (s *schemaSet) known(id string) *decode.Schema {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// get returns the schema of id, fetching and publishing it first when it
// is new. An UNAUTHENTICATED answer is returned as is: the caller
// re-authenticates.
func (s *schemaSet) get(ctx context.Context, id string) (*decode.Schema, error) {
	if sc := s.known(id); sc != nil {
		return sc, nil
	}
	s.mu.Lock()
	lock, ok := s.fetch[id]
	if !ok {
		lock = &sync.Mutex{}
		s.fetch[id] = lock
	}
	s.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	if sc := s.known(id); sc != nil {
		return sc, nil
	}
	octx, err := s.b.session.outgoing(ctx)
	if err != nil {
		return nil, err
	}
	info, err := s.b.client.GetSchema(octx, &pubsubpb.SchemaRequest{SchemaId: id})
	if err != nil {
		return nil, fmt.Errorf("GetSchema %q: %w", id, err)
	}
	sc, err := decode.ParseSchema(info.GetSchemaJson())
	if err != nil {
		return nil, fmt.Errorf("schema %q from GetSchema: %w", id, err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.b.cfg.WriteTimeout)
	defer cancel()
	err = s.b.kafka.Writer.WriteMessages(wctx, kafka.Message{Topic: s.b.cfg.SchemasTopic, Key: []byte(id), Value: []byte(info.GetSchemaJson())})
	if err != nil {
		return nil, fmt.Errorf("publishing schema %q to %s: %w", id, s.b.cfg.SchemasTopic, err)
	}
	s.b.metrics.schemas.Inc()
	s.mu.Lock()
	s.byID[id] = sc
	s.mu.Unlock()
	return sc, nil
}
