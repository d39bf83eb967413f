package decode

import (
	"context"
	"sync"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// TopicSource is the SchemaSource of the compacted schemas topic that
// `oppsync bridge` publishes to (schemas.topic): a follower of the topic
// (source.FollowSchemas) Puts every schema it reads, from the start of the
// topic and then live, so a new schema id becomes usable without a restart.
//
// The bridge writes a schema before the first event that uses it, but the
// follower may not have read it yet when that event arrives: Schema waits up
// to the configured bound for the id to be Put before it answers
// schema_not_found. Safe for concurrent use.
type TopicSource struct {
	wait time.Duration

	mu      sync.Mutex
	schemas map[string]string
	changed chan struct{} // closed and replaced on every Put
}

// NewTopicSource returns an empty TopicSource whose lookups of an unknown
// id wait up to wait.
func NewTopicSource(wait time.Duration) *TopicSource {
	return &TopicSource{wait: wait, schemas: map[string]string{}, changed: make(chan struct{})}
}

// Put records the schema of id, as read from the topic. An id that is not
// a plain schema id, or a text larger than a schema may be, is refused
// (false): the topic is input from outside.
func (t *TopicSource) Put(id, text string) bool {
	if !safeID(id) || len(text) == 0 || len(text) > maxSchemaBytes {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.schemas[id] == text {
		return true
	}
	t.schemas[id] = text
	close(t.changed)
	t.changed = make(chan struct{})
	return true
}

// Len returns how many schemas the source holds.
func (t *TopicSource) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.schemas)
}

// Schema implements SchemaSource: it returns the schema as soon as the
// topic holds it, waiting up to the bound (or until ctx ends) for an id it
// does not know yet; then schema_not_found.
func (t *TopicSource) Schema(ctx context.Context, id string) (string, error) {
	if !safeID(id) {
		return "", notFound(id)
	}
	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	for {
		t.mu.Lock()
		s, ok := t.schemas[id]
		changed := t.changed
		t.mu.Unlock()
		if ok {
			return s, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return "", cdc.Permanent(cdc.ReasonSchemaNotFound, "schema %q not found (not on the schemas topic after waiting %s)", id, t.wait)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
