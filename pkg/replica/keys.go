package replica

import "github.com/oppsync/oppsync/pkg/cdc"

// Keys builds the Redis key names of one org. Every key lives under
// "oppsync:{<org>}:" so that one org's keys share a Redis Cluster hash slot
// and every script is single-slot.
type Keys struct{ prefix string }

// NewKeys returns the key names of org.
func NewKeys(org string) Keys { return Keys{prefix: "oppsync:{" + org + "}:"} }

// Prefix is what every key of the org starts with.
func (k Keys) Prefix() string { return k.prefix }

// Opp is an opportunity's hash: "_..." metadata and "f:<Field>" values
// (see EncodeField).
func (k Keys) Opp(id string) string { return k.prefix + "opp:" + id }

// Roles is the hash of an opportunity's contact roles (role id → EncodeRole).
func (k Keys) Roles(oppID string) string { return k.prefix + "opp:" + oppID + ":roles" }

// RoleOpp maps each contact role id to its opportunity id (never changes).
func (k Keys) RoleOpp() string { return k.prefix + "roleopp" }

// Person is the hash of a person's opportunities (opportunity id → the
// number of live roles they hold on it).
func (k Keys) Person(id string) string { return k.prefix + "person:" + id }

// Activity is a person's activity log: a sorted set of ActivityJSON
// members scored by their time (ms).
func (k Keys) Activity(id string) string { return k.prefix + "activity:" + id }

// People is the sorted set of people scored by their last activity (ms).
func (k Keys) People() string { return k.prefix + "people" }

// Pending is the sorted set of contact roles waiting for their
// opportunity, scored by their deadline (ms).
func (k Keys) Pending() string { return k.prefix + "pending" }

// Stale is the set of records of entity marked stale by a gap.
func (k Keys) Stale(entity string) string { return k.prefix + "stale:" + entity }

// StaleGaps holds, per stale record of entity, the version of the gap that
// made it stale (the marker a re-read compares).
func (k Keys) StaleGaps(entity string) string { return k.prefix + "stale_gap:" + entity }

// Revs holds each opportunity group's revision (group id → count of the
// changes written to it), the compare-and-swap guard of the apply script.
func (k Keys) Revs() string { return k.prefix + "revs" }

// Positions holds the next Kafka offset to consume per "<topic>/<partition>".
func (k Keys) Positions() string { return k.prefix + "positions" }

// Catalog is the constraint catalog: "<Entity>.<Field>" → CatalogEntry JSON.
func (k Keys) Catalog() string { return k.prefix + "catalog" }

// Opps is the set of known opportunity ids.
func (k Keys) Opps() string { return k.prefix + "opps" }

// Stream is the org's stream called name (StreamDLQ, StreamResync,
// StreamChanges).
func (k Keys) Stream(name string) string { return k.prefix + name }

// Progress is the progress hash of a long job ("import", "reconcile").
func (k Keys) Progress(name string) string { return k.prefix + name }

// Trigger is the stream of one trigger kind (cdc.TriggerAdded, ...).
func (k Keys) Trigger(kind string) string { return k.prefix + "triggers:" + kind }

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
	k := NewKeys(org)
	return map[string]string{
		cdc.TriggerAdded:   k.Trigger(cdc.TriggerAdded),
		cdc.TriggerRemoved: k.Trigger(cdc.TriggerRemoved),
		cdc.TriggerUpdated: k.Trigger(cdc.TriggerUpdated),
		StreamDLQ:          k.Stream(StreamDLQ),
		StreamResync:       k.Stream(StreamResync),
	}
}

// ChangesMaxLen bounds the changes stream: a reader that falls further
// behind reloads everything.
const ChangesMaxLen = 100000
