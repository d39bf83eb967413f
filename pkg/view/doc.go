// Package view is the in-memory read model of one org's replica: every
// opportunity group and person link, loaded at start and kept current by
// tailing the changes stream (replica.ReadChanges), that answers the
// person queries of the API (Query) without scanning Redis. Record lookups
// (Opportunity, PersonOpportunities) and activity windows read Redis
// through pkg/replica.
//
// Invariants: an opportunity in the view is immutable once published (an
// update replaces it), so readers never see a half-applied group; a reader
// that falls behind the changes stream's cap loads everything again.
//
// Locks: View.mu guards the maps and person entries; catMu guards the
// cached catalog. Neither is held across another lock.
package view
