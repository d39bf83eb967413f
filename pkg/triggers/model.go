package triggers

import (
	"sort"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Opportunity is the replica of one opportunity.
type Opportunity struct {
	ID    string
	Known bool // some data event (not only a delete or a gap) was applied
	// Deleted is true between a DELETE and the next UNDELETE.
	Deleted bool
	// Stale is true after a GAP_* event until a full record (CREATE/UNDELETE
	// or a resync snapshot) arrives.
	Stale bool
	// Version is the newest version applied to the record by any change;
	// Life is the version of the last CREATE/DELETE/UNDELETE.
	Version cdc.Version
	Life    cdc.Version
	// Fields holds every known field value, FieldVersions the version that
	// last wrote each.
	Fields        map[string]cdc.Value
	FieldVersions map[string]cdc.Version
}

// Source identifies the change that caused a trigger entry.
type Source struct {
	Entity   string
	RecordID string
	Version  cdc.Version
	Header   cdc.EventHeader
	Reason   string
}

// Role is the replica of one OpportunityContactRole.
type Role struct {
	ID            string
	OpportunityID string
	ContactID     string
	Role          string
	// IsPrimary is set when the events for this role carry IsPrimary; nil
	// means primary-ness follows the opportunity's ContactId.
	IsPrimary *bool
	Deleted   bool
	Stale     bool
	Version   cdc.Version
	// Pending is true while the role's added entry waits for its unknown
	// opportunity; PendingSource is the change that will be named in it and
	// Deadline (ms since epoch) when it is released anyway.
	Pending       bool
	PendingSource *Source
	Deadline      int64
}

// Group is an opportunity with its contact roles: the unit that one change
// reads and writes atomically.
type Group struct {
	Opp   Opportunity
	Roles map[string]*Role
}

// NewGroup returns an empty group for an opportunity id.
func NewGroup(oppID string) *Group {
	return &Group{
		Opp: Opportunity{
			ID:            oppID,
			Fields:        map[string]cdc.Value{},
			FieldVersions: map[string]cdc.Version{},
		},
		Roles: map[string]*Role{},
	}
}

// Clone returns a deep copy of g.
func (g *Group) Clone() *Group {
	c := &Group{Opp: g.Opp, Roles: make(map[string]*Role, len(g.Roles))}
	c.Opp.Fields = make(map[string]cdc.Value, len(g.Opp.Fields))
	for k, v := range g.Opp.Fields {
		c.Opp.Fields[k] = v
	}
	c.Opp.FieldVersions = make(map[string]cdc.Version, len(g.Opp.FieldVersions))
	for k, v := range g.Opp.FieldVersions {
		c.Opp.FieldVersions[k] = v
	}
	for id, r := range g.Roles {
		rc := *r
		if r.IsPrimary != nil {
			b := *r.IsPrimary
			rc.IsPrimary = &b
		}
		if r.PendingSource != nil {
			s := *r.PendingSource
			rc.PendingSource = &s
		}
		c.Roles[id] = &rc
	}
	return c
}

// SortedRoles returns the roles ordered by id, for deterministic output.
func (g *Group) SortedRoles() []*Role {
	out := make([]*Role, 0, len(g.Roles))
	for _, r := range g.Roles {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Live reports whether the opportunity exists and is not deleted.
func (o *Opportunity) Live() bool { return o.Known && !o.Deleted }

// PrimaryContact returns the opportunity's ContactId, or "".
func (o *Opportunity) PrimaryContact() string {
	if v, ok := o.Fields["ContactId"]; ok && v.Kind == cdc.KindString {
		return v.Str
	}
	return ""
}

// IsPrimaryFor reports whether role r is primary on opportunity o: the
// event's IsPrimary when the role's events carry it, otherwise whether the
// role's contact is the opportunity's primary contact.
func (r *Role) IsPrimaryFor(o *Opportunity) bool {
	if r.IsPrimary != nil {
		return *r.IsPrimary
	}
	return r.ContactID != "" && r.ContactID == o.PrimaryContact()
}

// Linked reports whether the role links its person to the opportunity as
// the triggers see it: live, and its added entry already emitted.
func (r *Role) Linked() bool { return !r.Deleted && !r.Pending && r.ContactID != "" }

// People returns the persons linked to the opportunity (live, non-pending
// roles on a live opportunity), sorted, each with their roles.
func (g *Group) People() ([]string, map[string][]*Role) {
	by := map[string][]*Role{}
	if !g.Opp.Live() {
		return nil, by
	}
	for _, r := range g.SortedRoles() {
		if r.Linked() {
			by[r.ContactID] = append(by[r.ContactID], r)
		}
	}
	people := make([]string, 0, len(by))
	for p := range by {
		people = append(people, p)
	}
	sort.Strings(people)
	return people, by
}

// ExpectedRevenue returns the opportunity's ExpectedRevenue, or, when it is
// null, Amount × Probability / 100 when both are known.
func (o *Opportunity) ExpectedRevenue() (float64, bool) {
	if v, ok := o.Fields["ExpectedRevenue"]; ok && v.Kind == cdc.KindNumber {
		return v.Num, true
	}
	a, okA := o.Fields["Amount"]
	p, okP := o.Fields["Probability"]
	if okA && okP && a.Kind == cdc.KindNumber && p.Kind == cdc.KindNumber {
		return a.Num * p.Num / 100, true
	}
	return 0, false
}

// Snapshot returns every known field of the opportunity with the derived
// ExpectedRevenue filled in, as the "opportunity" of trigger entries and the
// API's "fields".
func (o *Opportunity) Snapshot() map[string]cdc.Value {
	out := make(map[string]cdc.Value, len(o.Fields)+2)
	for k, v := range o.Fields {
		out[k] = v
	}
	out["Id"] = cdc.String(o.ID)
	if er, ok := o.ExpectedRevenue(); ok {
		out["ExpectedRevenue"] = cdc.Number(er)
	}
	return out
}
