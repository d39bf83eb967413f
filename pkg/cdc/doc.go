// Package cdc holds oppsync's domain types: a normalised Salesforce change
// event (Event), its change type, its version, and typed field values.
//
// Invariants:
//   - An Event names one entity and one or more record ids; it applies to each.
//   - Field values are already normalised (CONTRACT §4): DateOnly is
//     "YYYY-MM-DD", DateTime is RFC 3339 UTC with milliseconds, numbers are
//     float64, nested fields are flattened to "Parent.Child".
//   - A Field with Changed=false carried a value that did not change (an
//     enriched field); only Changed fields may alter state.
//
// The package does no I/O and emits no metrics.
package cdc
