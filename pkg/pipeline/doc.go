// Package pipeline turns batches of Kafka messages into durable state: it
// decodes each message, sends what cannot be decoded to the dead-letter
// stream, applies the rest through the state store, and retries transient
// failures (Redis or the Schema Registry unavailable) with capped backoff,
// so that a batch is reported handled only when all of it is durable.
//
// Metrics (on the Registerer given to New; prefix oppsync_):
// events_consumed_total{entity,change_type}, events_skipped_total{reason},
// decode_errors_total{reason}, dead_letters_total{stage},
// triggers_emitted_total{trigger}, duplicates_total,
// resync_notices_total{entity}, apply_duration_seconds,
// end_to_end_lag_seconds, apply_retries_total, apply_conflicts_total,
// panics_total{stage}. The gauges schemas_cached, pending_roles and
// stale_records are registered by cmd/oppsync.
//
// A panic while handling one message does not stop the consumer: it is
// contained at the batch boundary (panics.go), the message is dead-lettered
// with reason internal_error and counted in panics_total{stage}.
package pipeline
