// Package testenv connects tests to the real Redis and Kafka that `make test`
// (test/redis.sh, test/kafka.sh) starts, and holds the small helpers such
// tests share: unique names, topic creation and polling with a deadline.
//
// The services are found through two environment variables, printed by
// `test/redis.sh env` and `test/kafka.sh env`:
//
//	OPPSYNC_TEST_REDIS_ADDR     host:port of a Redis 7 with AOF on
//	OPPSYNC_TEST_KAFKA_BROKERS  comma-separated host:port list of Kafka 4.x brokers
//
// When a variable is missing the test is skipped, except under CI (env CI
// set), where it fails: a CI run that silently skips every integration test
// would prove nothing.
//
// Invariants:
//   - One Redis and one broker are shared by every test package, and `go test`
//     runs packages in parallel: tests never flush Redis or reuse a fixed
//     topic, group or org id; they take names from UniqueName.
//   - Every resource a helper creates (client, topic) is released by
//     t.Cleanup.
//   - Nothing waits a fixed time: waiting is Eventually, bounded by a deadline.
//
// The package is for tests only and emits no metrics.
package testenv
