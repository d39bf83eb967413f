// Package campaigns owns campaign definitions (CONTRACT §8): their JSON and
// YAML form, validation against the constraint catalog with errors that
// name the culprit by JSON path, and their storage in Redis per org, where
// every instance sees them.
//
// Invariants:
//   - A stored definition is canonical JSON: applying the same definition
//     again changes nothing (no new version, no new updated_at).
//   - Versions of one campaign id are 1, 2, ... and continue after a
//     DELETE; DELETE forgets the qualification history (the marks) and
//     the qualified total, and keeps the output stream.
//   - Every change of the definitions (a new version or a delete) raises
//     the org's campaigns revision, in the same script that writes it.
//   - At most Config.Max definitions per org (ErrLimit).
//
// Redis keys (all under oppsync:{<org>}:): campaigns (id → definition),
// campaigns:meta (id → version and updated_at), campaigns:versions (id →
// last version, never deleted), campaigns:rev (revision counter),
// campaigns:qualified (id → entries written), campaign:<id>:marks (person
// → occurred_at of their last entry), and the output stream campaign:<id>.
//
// Metrics (Metrics, on the injected Registerer; fed by the apply path):
//   - oppsync_campaign_entries_total{campaign}: campaign is an active
//     campaign's id; the series of a campaign that leaves the active set is
//     deleted, so there are at most campaigns.max series.
//   - oppsync_campaign_evaluations_total
//   - oppsync_campaign_lag_seconds (entry written − trigger occurred_at)
//   - oppsync_campaigns_active
package campaigns
