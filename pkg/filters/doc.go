// Package filters owns the person filter language of CONTRACT §6 and §8:
// parsing and validating the query JSON against the field catalog (with
// "match" or a "logic" expression, and aggregate filters with
// constraints), evaluating a parsed Query against one person's
// opportunities, activity and totals, and the constraints of campaign
// triggers (Trigger) evaluated on one trigger entry (Entry), with the same
// operators and typing.
//
// Invariants:
//   - Parse never panics on any input; every error names its culprit by
//     JSON path (`filters[1].constraints[0]: unknown field "Amout"`) and
//     never echoes record values, only what the request itself said.
//   - All constraints of one filter hold for the same opportunity (and for
//     Role and IsPrimary, the same contact role of the person).
//   - Evaluation is deterministic and pure: the caller supplies the clock
//     (Parse's now) and every record in plain structs. Parsed queries are
//     read-only and safe to evaluate from several goroutines.
//   - Two process-wide tables only grow with the bounded set of field
//     names (Intern, the columns of Opportunity.Compact); they make
//     evaluation over hundreds of thousands of opportunities cache-friendly.
//     Compact rows also share short values per column (and role names) in
//     process-wide tables of at most 255 values each, filled first come
//     first served (row.go).
//
// The package does no I/O and emits no metrics.
package filters
