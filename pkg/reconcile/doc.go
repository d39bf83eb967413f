// Package reconcile closes gaps through the Salesforce REST API: records
// flagged stale by GAP_* events (the sets "oppsync:{org}:stale:<Entity>")
// are re-read — one sobject GET for a single id, a queryAll SOQL query with
// "WHERE Id IN (...)" for several, a paged queryAll over the whole entity
// after GAP_OVERFLOW — and applied with state.Store.ApplyEvents as SNAPSHOT
// events, whose differences from the state produce triggers. A record gone
// in Salesforce (404 NOT_FOUND, absent from queryAll, or IsDeleted=true)
// becomes a DELETE event.
//
// Invariants:
//   - A re-read's version is the newer of the gap's commit timestamp (from
//     the resync stream) and the record's SystemModstamp, with commit and
//     sequence number 0: newer CDC values are never overwritten.
//   - A record's stale flag is cleared only after its re-read was applied.
//   - Requests pass a token bucket; 5xx, 429 and REQUEST_LIMIT_EXCEEDED are
//     retried with capped exponential backoff (retryable decides); a 401 re-
//     authenticates (OAuth 2.0 client credentials) once per request.
//   - Without configuration nothing runs: stale records stay flagged
//     (oppsync_stale_records) and resync notices stay for an operator.
//
// The resync stream cursor of the periodic Run lives in the hash
// "oppsync:{org}:reconcile" (field resync_cursor). The package emits no
// metrics of its own; the stale gauge shows what is left.
package reconcile
