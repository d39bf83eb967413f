// Package source consumes the Salesforce change-event topics from Kafka with a
// kafka-go consumer group and hands the records, as cdc.Message batches, to a
// Handler that applies them durably. It owns the consumer-group membership,
// the per-partition fetch loops, where each partition resumes, batching, offset
// commits and clean rebalances; it also builds the kafka-go Writer (same TLS
// and SASL settings) used by `oppsync produce` and by tests.
//
// Invariants:
//   - Per partition, HandleBatch sees messages in offset order, one batch at a
//     time; partitions are handled concurrently, each by its own goroutine.
//     A batch holds what was already fetched (up to MaxBatch): the source
//     never waits to fill one, yet under load batches fill up by themselves.
//   - An offset is committed only after HandleBatch returned nil for every
//     message before it; a batch whose HandleBatch failed is never committed.
//     Commits are batched: every CommitInterval, and when a generation ends.
//   - On every assignment a partition resumes from Positions.Position (the
//     position stored with the state) when there is one, else from the group's
//     committed offset, else from Config.StartOffset. Committed offsets are
//     therefore only a fallback: losing a commit never loses data.
//   - When a generation ends (rebalance, or a topic's partition count changed)
//     or Run's ctx is cancelled, fetching stops, the in-flight HandleBatch may
//     finish (its ctx is cancelled only when DrainTimeout passes), offsets are
//     committed, then the source rejoins or leaves the group.
//   - Kafka being unreachable is never fatal: joining, fetching and committing
//     are retried with capped exponential backoff; Ready reports why meanwhile.
//     Run returns an error only when the Handler reports an unrecoverable one.
//   - Logs never carry message keys or values.
//
// Metrics (on the injected registerer):
//
//	oppsync_kafka_consumer_lag{topic,partition}  gauge: high watermark − next offset, per batch; removed when the partition is revoked
//	oppsync_kafka_commits_total{result}           counter: offset commit requests, result=ok|error
//	oppsync_kafka_rebalances_total                counter: generations (partition assignments) received
//	oppsync_kafka_batch_size                      histogram: messages per HandleBatch call
package source
