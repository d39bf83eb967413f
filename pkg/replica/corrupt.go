package replica

// Stored data that does not parse (written by hand, by an older version,
// or through a key that an unchecked id made collide with another) must
// not stop the writer, the view or the API: a record that cannot be read
// is skipped, as if absent, reported to the OnCorrupt function given to New, and the
// rest is read as usual. A skipped opportunity field or contact role is
// overwritten by the next change that writes it.

// Kinds of corrupt records: the closed label set of
// oppsync_corrupt_records_total.
const (
	CorruptField    = "opportunity_field" // a field of an opportunity hash that does not parse
	CorruptRole     = "contact_role"      // a member of a roles hash that does not parse
	CorruptRevision = "revision"          // a group revision that is not a number
	CorruptKey      = "key"               // a key that holds another type than a hash
)

// Corrupt describes a stored record that was skipped. It never carries the
// stored value (customer data).
type Corrupt struct {
	Kind          string // one of the Corrupt* kinds
	OpportunityID string // the group it belongs to
	Name          string // the hash field or role member, "opportunity" or "roles" for a key
}

func (r *Replica) corrupt(kind, oppID, name string) {
	if r.onCorrupt != nil {
		r.onCorrupt(Corrupt{Kind: kind, OpportunityID: oppID, Name: name})
	}
}
