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
//   - A record's stale flag is cleared only by its re-read, and only if no
//     newer gap came while it was read: the stale markers (the gap's
//     version, state.Store.StaleMarks) are read before the REST request and
//     compared when the re-read is applied and when the flag is removed.
//   - The token goes only to the instance: every request URL is the
//     instance URL with a checked path (a nextRecordsUrl that is not a path
//     under /services/data/ fails the query, naming the value), and
//     redirects are followed only to the same origin. Answers are bounded
//     (64 KiB for the token, 64 MiB otherwise) and their ids, token and
//     instance_url checked; a refused answer (AnswerError) is never retried.
//   - Requests pass a token bucket; 5xx, 429 and REQUEST_LIMIT_EXCEEDED are
//     retried with capped exponential backoff (retryable decides); a 401 re-
//     authenticates (OAuth 2.0 client credentials) once per request.
//   - Every sobject and query request (retries included) is counted against
//     Config.MaxCallsPerDay, per UTC day, shared by the org's instances; past
//     it no request is sent until the next day.
//   - GAP_OVERFLOW marks its entity for a whole re-read; the mark stays
//     until a re-read succeeds (not while Config.SkipOverflowResync, nor
//     when the re-read does not fit in the day's budget).
//   - Without configuration nothing runs: stale records stay flagged
//     (oppsync_stale_records) and resync notices stay for an operator.
//
// The hash "oppsync:{org}:reconcile" holds the resync stream cursor
// (resync_cursor), the marked entities (entity_resync:<Entity>) and the
// day's calls (api_calls:<YYYY-MM-DD>).
//
// Metrics: oppsync_salesforce_api_requests_total{kind,code_class},
// oppsync_salesforce_api_calls_used_today,
// oppsync_salesforce_api_calls_remaining_today,
// oppsync_reconcile_records_total{entity,result},
// oppsync_reconcile_errors_total{reason},
// oppsync_reconcile_entity_resync_pending{entity}.
package reconcile
