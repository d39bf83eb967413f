// Package replica owns oppsync's Redis key layout and every read of it:
// the replica of opportunities and contact roles (LoadGroups), the person
// links and the people index, the activity logs, the constraint catalog
// and the changes stream the apply calls append to. pkg/state writes these
// keys with the encodings defined here (EncodeField, EncodeRole,
// ActivityJSON, CatalogEntry); pkg/view and the API read them through
// Replica.
//
// Every key lives under "oppsync:{<org>}:" (Keys) so that one org's keys
// share a Redis Cluster hash slot and every script is single-slot.
//
// Stored data that does not parse is skipped, as if absent, and reported
// (Corrupt), so a bad record never stops a reader or the writer.
//
// The package does no writes and emits no metrics.
package replica
