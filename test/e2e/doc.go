// Package e2e runs the real oppsync binary against the real Kafka broker and
// Redis of the test suite (test/kafka.sh, test/redis.sh): it publishes
// encoded Salesforce change events, reads the Redis streams, and compares
// them with the trigger entries the generator's ground truth expects.
package e2e
