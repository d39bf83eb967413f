// Package api serves oppsync's HTTP interface (CONTRACT §5): health,
// readiness and metrics, the person and opportunity views, the constraint
// catalog, person queries over the filter language of pkg/filters, a
// server-rendered person page, (CONTRACT §8) campaign definitions
// (Campaigns) and a person's activity history (ActivityLog), and
// GET /v1/openapi.json, the OpenAPI 3.1 document of all of them
// (openapi.json, embedded; CONTRACT §10).
//
// Invariants:
//   - When a token is configured, /v1/* and /people/* answer 401 unless the
//     request carries it (compared in constant time).
//   - Every error is JSON {"error": "..."} naming the offending filter,
//     field, operator or value of the request; no error repeats a record
//     value, and hidden fields never reach this package.
//   - Every route registered through handle is in openapi.json, and every
//     answer matches it: the tests check each exchange they make.
//   - Request bodies are capped (413) and queries bounded by a timeout
//     (504); nothing a client sends can make the server panic.
//
// Metrics (on the injected Registerer):
//   - oppsync_http_requests_total{route,code}
//   - oppsync_http_request_duration_seconds{route}
//
// route is the registered pattern ("GET /v1/opportunities/{id}"), never
// the raw path.
package api
