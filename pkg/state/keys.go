package state

import "github.com/oppsync/oppsync/pkg/cdc"

// keys builds the Redis key names of one org.
type keys struct{ prefix string }

func newKeys(org string) keys { return keys{prefix: "oppsync:{" + org + "}:"} }

func (k keys) opp(id string) string      { return k.prefix + "opp:" + id }
func (k keys) roles(oppID string) string { return k.prefix + "opp:" + oppID + ":roles" }
func (k keys) roleOpp() string           { return k.prefix + "roleopp" }
func (k keys) person(id string) string   { return k.prefix + "person:" + id }
func (k keys) activity(id string) string { return k.prefix + "activity:" + id }
func (k keys) people() string            { return k.prefix + "people" }
func (k keys) pending() string           { return k.prefix + "pending" }
func (k keys) stale(entity string) string {
	return k.prefix + "stale:" + entity
}

// staleGaps holds, per stale record of entity, the version of the gap that
// made it stale (the marker a re-read compares: see ClearStale).
func (k keys) staleGaps(entity string) string {
	return k.prefix + "stale_gap:" + entity
}

// revs holds each opportunity group's revision (group id → count of the
// changes written to it), the compare-and-swap guard of the apply script.
func (k keys) revs() string              { return k.prefix + "revs" }
func (k keys) positions() string         { return k.prefix + "positions" }
func (k keys) catalog() string           { return k.prefix + "catalog" }
func (k keys) opps() string              { return k.prefix + "opps" }
func (k keys) stream(name string) string { return k.prefix + name }
func (k keys) trigger(kind string) string {
	return k.prefix + "triggers:" + kind
}

// Stream names under the org prefix (CONTRACT §4).
const (
	StreamDLQ    = "dlq"
	StreamResync = "resync"
	// StreamChanges lists the opportunity groups each applied change wrote.
	StreamChanges = "changes"
)

// OutputStreams returns the keys of the streams consumers read (CONTRACT
// §4) for org, by stream name: the three trigger streams ("added_to_opportunity",
// "removed_from_opportunity", "opportunity_updated"), "dlq" and "resync". The
// apply script never trims them: pkg/retention does, never past an entry a
// consumer group has not acknowledged.
func OutputStreams(org string) map[string]string {
	k := newKeys(org)
	return map[string]string{
		cdc.TriggerAdded:   k.trigger(cdc.TriggerAdded),
		cdc.TriggerRemoved: k.trigger(cdc.TriggerRemoved),
		cdc.TriggerUpdated: k.trigger(cdc.TriggerUpdated),
		StreamDLQ:          k.stream(StreamDLQ),
		StreamResync:       k.stream(StreamResync),
	}
}

// changesMaxLen bounds the changes stream: a reader that falls further
// behind reloads everything.
const changesMaxLen = 100000
