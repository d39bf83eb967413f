// Package synth produces synthetic Salesforce change events for tests, the
// demo and load generation: an Encoder that writes Changes as Kafka messages
// in both framings (raw Pub/Sub payload with a schema-id header, Confluent
// wire format) and both body shapes (Pub/Sub bitmaps, Confluent connector
// names); a fake Confluent Schema Registry (Registry) with fault injection and
// a client for a real one (RegistryClient); and a Generator of realistic
// traffic for a synthetic org that keeps the true org state and, through an
// Oracle, the trigger entries oppsync must emit for it. Script writes
// hand-made changes for tests ("opportunity X moved to Closed Won" in one
// call).
//
// Invariants:
//   - Encode writes exactly the Changed fields of a Change; on UPDATE the
//     field lists name exactly those fields (bitmaps over the writer schema's
//     positions, "P-0xHH" for nested fields, or plain names).
//   - A message's key is the opportunity id of its change, so one
//     opportunity's changes (its own and its contact roles') stay in order on
//     one partition. Multi-record events span opportunities and are keyed by
//     their first record's opportunity.
//   - A Generator with the same GenConfig yields the same Changes; versions
//     strictly increase; every UPDATE names only fields whose values really
//     change and always LastModifiedDate.
//   - The Oracle computes expected triggers from the changes alone, assuming
//     the changes of one opportunity are applied in commit order.
//
// The package emits no metrics; only Registry and RegistryClient do I/O (HTTP).
package synth
