// Package state is oppsync's write path: it plans a batch of changes
// against the replica (read through pkg/replica, whose key layout and
// encodings it writes), builds the merged, guarded script calls that write
// the replica, the person indexes, the activity logs, the trigger,
// dead-letter and resync streams and the consumed Kafka positions, and
// runs them; it also runs the releaser and pruner sweeps and the
// reconcile/import helpers.
//
// Invariants:
//   - A record change is written by a Lua script that also appends the
//     trigger entries it causes: state and triggers never diverge. One call
//     carries up to 64 consecutive changes of a partition (more only to
//     finish a message it began: see build), their writes merged, and
//     writes all of them or none. It appends to the trigger,
//     dead-letter and resync streams without trimming them: pkg/retention
//     does, never past an entry a consumer group has not acknowledged.
//   - A call runs only if the revision of every opportunity group it writes
//     (the "revs" hash) and the partition's stored position are what the
//     caller read (compare and swap). A conflict rolls nothing forward; the
//     caller re-reads and recomputes. Running a call twice is therefore
//     harmless, which is what lets the one executor of script calls (send)
//     send again, after reloading the script, the calls Redis answered
//     NOSCRIPT.
//   - The stored position of a partition is the next offset to consume and
//     never runs ahead of the state: it is written in the same call as the
//     changes of the messages before it. A batch begun ahead (Begin) is
//     built on the state the previous batch will leave and expects the
//     position it will store, so nothing of it applies unless all of the
//     previous batch did.
//   - With campaigns on (SetCampaigns), every call that writes trigger
//     entries also evaluates the active campaigns for them and writes the
//     campaign entries in the same call (campaigns.go): exactly once with
//     the state. The call is guarded by the org's campaigns revision too,
//     so each entry is evaluated by the versions stored before it; a
//     campaign with person filters reads the person before the call and
//     stops batches from being begun ahead.
//
// Readers (pkg/view, the API) follow the changes stream every apply call
// appends to (one entry naming the groups it wrote).
//
// ApplyEvents applies changes that did not come from Kafka (imports,
// resyncs) with the same scripts, without a partition position.
//
// The package emits no metrics itself; ApplyBatch returns counts that
// pkg/pipeline turns into metrics, Stats serves the gauges, and
// CampaignOptions' hooks feed the campaign metrics (campaigns.Metrics).
package state
