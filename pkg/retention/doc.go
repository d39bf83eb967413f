// Package retention bounds oppsync's output streams (the three trigger
// streams, dlq and resync; CONTRACT §4 "Retention") without losing what
// their readers have not read: a stream is trimmed to streams.maxlen entries,
// but never past an entry that one of its consumer groups has not
// acknowledged. A stream without consumer groups is simply kept at about
// maxlen entries.
//
// The apply script appends to these streams without trimming them; a
// Trimmer, run by every instance (it is idempotent), trims each of them with
// one atomic Lua script per stream every few seconds, so a stream may exceed
// maxlen by what is written between two passes. Trimming is approximate
// (whole macro nodes): it keeps slightly more than it must, never less.
//
// Invariants:
//   - An entry a group has pending (delivered, not acknowledged) or not yet
//     delivered is never removed, whatever maxlen says.
//   - A stream is cut at the older of its oldest needed entry and the id that
//     leaves maxlen entries (XTRIM MINID ~ LIMIT), so it keeps at least maxlen
//     entries. A pass reads no entries, except to count a group's undelivered
//     entries when Redis cannot (after an XDEL), within a budget, and removes
//     at most 100,000 entries.
//
// Metrics (gauges, updated on each pass):
//   - oppsync_stream_length{stream}: entries in the stream after the pass.
//   - oppsync_stream_group_lag{stream,group}: entries the group has not
//     acknowledged (pending + not yet delivered). Group names come from Redis:
//     a name outside [A-Za-z0-9_.:-]{1,64} and every group beyond the first
//     16 (by name) of a stream count under group="other".
//   - oppsync_stream_maxlen{stream}: streams.maxlen, for alert rules.
//
// and the counter oppsync_stream_trimmed_total{stream} (entries removed).
package retention
