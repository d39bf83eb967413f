// Package view is the in-memory read model of one org's replica: every
// opportunity group, person link and person's activity log (within
// activity.retention), loaded at start and kept current by tailing the
// changes stream (replica.ReadChanges: the groups each call wrote, and the
// people whose activity it wrote, from which time on), that answers the person queries of the
// API (Query) without reading Redis. Record lookups (Opportunity,
// PersonOpportunities) read Redis through pkg/replica.
//
// Memory: opportunities are compact rows (filters.Opportunity.Compact);
// activity logs are one compact string per person (activity.go), trimmed
// of what leaves the retention every minute.
//
// Invariants: an opportunity in the view is immutable once published (an
// update replaces it), so readers never see a half-applied group; a reader
// that falls behind the changes stream's cap loads everything again.
//
// Locks: View.mu guards the maps and person entries; catMu guards the
// cached catalog. Neither is held across another lock.
package view
