package main

// Metrics registered here, beside the ones of the packages it wires (each
// package's doc.go lists its own: pkg/source, pkg/pipeline, pkg/api,
// pkg/retention, pkg/reconcile, pkg/bulk):
//   - the service (run, demo, bench): the gauges oppsync_schemas_cached
//     (Decoder.SchemasCached), oppsync_pending_roles and
//     oppsync_stale_records (state Stats, cached) and oppsync_ready (1 when
//     ready); the counter oppsync_corrupt_records_total{kind} (stored
//     records skipped on read); the Go and process collectors (go_*,
//     process_*).
//   - import: the Go and process collectors, beside pkg/bulk's.
