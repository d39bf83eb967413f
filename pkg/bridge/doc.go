// Package bridge brings Salesforce change events into Kafka with no
// commercial connector (CONTRACT §9, `oppsync bridge`): it subscribes to
// Pub/Sub API channels over gRPC (pubsubpb, generated from
// proto/pubsub_api.proto) and writes every event unchanged, in the raw
// Pub/Sub framing of CONTRACT §3, to Kafka.
//
// Per channel, one subscription: the first FetchRequest names the channel
// and where to start, and num_requested is topped up as events are
// acknowledged by Kafka, so that the events requested from Salesforce and
// not yet acknowledged never exceed Config.MaxInFlight (each request asks
// for at most 100, Salesforce's bound). Events are written in batches, one
// batch at a time per channel, with acks from all in-sync replicas:
//
//   - topic: TopicPrefix + the change event name (the writer schema's record
//     name, e.g. OpportunityChangeEvent); key: the first record id of the
//     ChangeEventHeader; value: the Avro payload as received;
//   - headers sf-schema-id, sf-replay-id (hex), sf-event-id (CONTRACT §3),
//     and two of the bridge's own: sf-channel (the channel) and
//     sf-replay-committed (hex replay id of the channel's last event Kafka
//     had acknowledged when the record's batch was sent; empty for the first
//     event of a subscription with no position, which is written alone).
//
// Schemas: each schema id not yet on SchemasTopic is fetched once with
// GetSchema and written to that compacted topic (key schema id, value the
// schema JSON) before the first event that uses it. The topic is read at
// start, so a restart does not fetch known schemas again.
//
// Position: the replay id of the last event Kafka acknowledged lives in
// Kafka itself. On start, the tails of the output topics (every topic
// starting with TopicPrefix) are read: W, the highest sf-replay-committed of
// the channel's records, is a point before which every event is in Kafka;
// the records sent after it (committed == W: the last batch, possibly only
// part of it landed) are the only events after W that Kafka may hold. The
// subscription resumes after W (replay preset CUSTOM) and skips exactly
// those events, so a SIGKILL loses nothing and writes nothing twice. Replay
// ids are compared as big-endian numbers (shorter is smaller), which is
// what Salesforce's replay ids are. A channel with no record starts at
// Config.Start; one whose replay id Salesforce no longer has (retention is
// 72 hours) fails, or restarts at the earliest or latest event, per
// Config.OnExpiredReplay.
//
// Duplicates: kafka-go's Writer has no idempotent producer. When a produce
// request times out or its connection drops after the broker appended the
// batch, the Writer sends it again and Kafka holds those events twice; a
// batch that failed after kafka-go's own retries is written again whole by
// the bridge. A duplicate is the same event (same replay id, same
// commitTimestamp/commitNumber/sequenceNumber), so oppsync's per-record
// versions make the second copy a no-op that emits nothing (CONTRACT §4).
//
// Failures: a dropped stream, an idle stream (no response, not even a
// keepalive, for Config.IdleTimeout) and Kafka write errors are retried with
// capped backoff (pkg/backoff); after a stream ends, what it delivered is
// written before resubscribing after it. An UNAUTHENTICATED answer makes
// the bridge fetch a new token and try again once; a second one in a row,
// or a token endpoint that refuses the credentials, ends Run with an error
// naming the salesforce.* keys to check. GetTopic is asked once per channel
// before its first subscription; a channel the session may not read
// (can_subscribe false, PERMISSION_DENIED) ends Run naming bridge.channels.
//
// Metrics (registered on the injected registerer):
// oppsync_bridge_events_total{channel}, oppsync_bridge_lag_seconds (now −
// commit time of the newest event written, 0 once a keepalive shows a
// channel caught up; the highest over channels), oppsync_bridge_reconnects_total,
// oppsync_bridge_in_flight{channel}, oppsync_bridge_schemas_published_total,
// oppsync_bridge_replay_resets_total{channel},
// oppsync_bridge_ack_seconds (receipt of an event → Kafka acknowledgement).
// The channel label takes only the configured channels.
package bridge
