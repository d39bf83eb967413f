// Package triggers holds the pure rules that decide what one record change
// means: how the replica of an opportunity group (an opportunity and its
// contact roles) changes, and which person-level trigger entries the change
// produces (CONTRACT §4).
//
// Invariants:
//   - Apply is deterministic: the same group and change always give the same
//     result, and the same event ids.
//   - A change whose version is not newer than what it would overwrite changes
//     nothing and produces nothing (Result.Duplicate).
//   - A person is on an opportunity while at least one of their contact roles
//     on it is live; added/removed fire per contact role, updated once per
//     person per field.
//   - A contact role waiting for its unknown opportunity (pending) produces its
//     added entry exactly once: when the opportunity arrives or at the
//     deadline, whichever comes first.
//
// The package does no I/O and emits no metrics; pkg/state loads and stores
// groups and turns Results into one atomic Redis script.
package triggers
