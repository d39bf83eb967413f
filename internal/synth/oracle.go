package synth

import (
	"sort"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Expected is one trigger entry oppsync must emit, computed from the true
// org state rather than from oppsync.
type Expected struct {
	EventID       string
	Trigger       string // cdc.TriggerAdded, TriggerRemoved, TriggerUpdated
	PersonID      string
	OpportunityID string
	ContactRoleID string // "" for opportunity_updated
	Reason        string // "" for opportunity_updated
	Field         string // "" for added/removed
	At            time.Time
	// Old and New are the field's values for opportunity_updated entries.
	Old, New cdc.Value
}

// Reasons of added/removed entries (CONTRACT §4).
const (
	ReasonRoleCreated    = "contact_role_created"
	ReasonRoleUndeleted  = "contact_role_undeleted"
	ReasonRoleDeleted    = "contact_role_deleted"
	ReasonContactChanged = "contact_changed"
	ReasonOppDeleted     = "opportunity_deleted"
	ReasonOppUndeleted   = "opportunity_undeleted"
)

// DefaultIgnoreFields never produce opportunity_updated entries
// (triggers.ignore_fields' default).
var DefaultIgnoreFields = []string{"LastModifiedDate", "LastModifiedById", "SystemModstamp"}

// TruthOpportunity is an opportunity as it really is in the org.
type TruthOpportunity struct {
	ID      string
	Fields  map[string]cdc.Value // non-null fields; absent means null
	Deleted bool
}

// TruthRole is a contact role as it really is in the org.
type TruthRole struct {
	ID, OpportunityID, ContactID, Role string
	Deleted                            bool
	// Primary: ContactID equals the opportunity's ContactId.
	Primary bool
}

// Truth is the true org state and every trigger entry expected so far.
type Truth struct {
	Opportunities []TruthOpportunity // by id
	ContactRoles  []TruthRole        // by id
	Expected      []Expected         // in commit order
}

// Opportunity returns the opportunity with id.
func (t Truth) Opportunity(id string) (TruthOpportunity, bool) {
	i := sort.Search(len(t.Opportunities), func(i int) bool { return t.Opportunities[i].ID >= id })
	if i < len(t.Opportunities) && t.Opportunities[i].ID == id {
		return t.Opportunities[i], true
	}
	return TruthOpportunity{}, false
}

type oppTruth struct {
	fields  map[string]cdc.Value
	deleted bool
	roles   []string // role ids, in creation order
}

type roleTruth struct {
	id, opp, contact, role string
	deleted                bool
}

// Oracle keeps the true state of an org from the changes applied to it and
// derives the trigger entries each change must produce. It assumes every
// change of one opportunity (its own and its contact roles') is applied in
// commit order. It is not safe for concurrent use.
type Oracle struct {
	org      string
	ignore   map[string]bool
	opps     map[string]*oppTruth
	roles    map[string]*roleTruth
	expected []Expected
}

// NewOracle returns an Oracle for org; ignore lists the fields that never
// produce opportunity_updated entries (nil means DefaultIgnoreFields).
func NewOracle(org string, ignore []string) *Oracle {
	if ignore == nil {
		ignore = DefaultIgnoreFields
	}
	o := &Oracle{org: org, ignore: map[string]bool{}, opps: map[string]*oppTruth{}, roles: map[string]*roleTruth{}}
	for _, f := range ignore {
		o.ignore[f] = true
	}
	return o
}

// Expected returns every entry expected so far, in commit order.
func (o *Oracle) Expected() []Expected { return append([]Expected(nil), o.expected...) }

// Apply applies one change to the truth and returns the entries it must
// produce (also appended to Expected).
func (o *Oracle) Apply(ch Change) []Expected {
	var out []Expected
	for _, id := range ch.RecordIDs {
		switch ch.Entity {
		case cdc.EntityOpportunity:
			out = append(out, o.applyOpp(ch, id)...)
		case cdc.EntityContactRole:
			out = append(out, o.applyRole(ch, id)...)
		}
	}
	o.expected = append(o.expected, out...)
	return out
}

func (o *Oracle) opp(id string) *oppTruth {
	op := o.opps[id]
	if op == nil {
		op = &oppTruth{fields: map[string]cdc.Value{}}
		o.opps[id] = op
	}
	return op
}

func (o *Oracle) entry(ch Change, recordID, trigger, person, opp, role, reason, field string) Expected {
	return Expected{
		EventID:       cdc.EventID(o.org, ch.Entity, recordID, ch.Version, trigger, person, role, field),
		Trigger:       trigger,
		PersonID:      person,
		OpportunityID: opp,
		ContactRoleID: role,
		Reason:        reason,
		Field:         field,
		At:            time.UnixMilli(ch.Version.CommitTimestamp).UTC(),
	}
}

func setFields(dst map[string]cdc.Value, fields []cdc.Field) {
	for _, f := range fields {
		if !f.Changed {
			continue
		}
		if f.Value.IsNull() {
			delete(dst, f.Name)
		} else {
			dst[f.Name] = f.Value
		}
	}
}

func (o *Oracle) liveRoles(op *oppTruth) []*roleTruth {
	var out []*roleTruth
	for _, rid := range op.roles {
		if r := o.roles[rid]; r != nil && !r.deleted {
			out = append(out, r)
		}
	}
	return out
}

func (o *Oracle) applyOpp(ch Change, id string) []Expected {
	op := o.opp(id)
	var out []Expected
	switch ch.Type {
	case cdc.Create:
		op.fields = map[string]cdc.Value{}
		setFields(op.fields, ch.Fields)
		op.deleted = false
	case cdc.Update:
		people := o.people(op)
		for _, f := range ch.Fields {
			if !f.Changed {
				continue
			}
			old, seen := op.fields[f.Name]
			if seen && old.Equal(f.Value) || !seen && f.Value.IsNull() {
				continue
			}
			if !op.deleted && !o.ignore[f.Name] {
				for _, p := range people {
					e := o.entry(ch, id, cdc.TriggerUpdated, p, id, "", "", f.Name)
					e.Old, e.New = old, f.Value
					out = append(out, e)
				}
			}
		}
		setFields(op.fields, ch.Fields)
	case cdc.Delete:
		if !op.deleted {
			for _, r := range o.liveRoles(op) {
				out = append(out, o.entry(ch, id, cdc.TriggerRemoved, r.contact, id, r.id, ReasonOppDeleted, ""))
			}
		}
		op.deleted = true
	case cdc.Undelete:
		if op.deleted {
			for _, r := range o.liveRoles(op) {
				out = append(out, o.entry(ch, id, cdc.TriggerAdded, r.contact, id, r.id, ReasonOppUndeleted, ""))
			}
		}
		op.deleted = false
		setFields(op.fields, ch.Fields)
	default: // gaps: the body says nothing; a hidden change still happened
		setFields(op.fields, ch.hidden)
	}
	return out
}

// people lists the distinct contacts with a live role on op, sorted.
func (o *Oracle) people(op *oppTruth) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range o.liveRoles(op) {
		if !seen[r.contact] {
			seen[r.contact] = true
			out = append(out, r.contact)
		}
	}
	sort.Strings(out)
	return out
}

func (o *Oracle) applyRole(ch Change, id string) []Expected {
	r := o.roles[id]
	if r == nil {
		r = &roleTruth{id: id}
		o.roles[id] = r
	}
	str := func(name string) (string, bool) {
		f, ok := ch.Field(name)
		if !ok || !f.Changed {
			return "", false
		}
		return f.Value.Str, true
	}
	if opp, ok := str("OpportunityId"); ok && r.opp == "" {
		r.opp = opp
		op := o.opp(opp)
		op.roles = append(op.roles, id)
	}
	if r.opp == "" && ch.OpportunityID != "" {
		r.opp = ch.OpportunityID
		op := o.opp(r.opp)
		op.roles = append(op.roles, id)
	}
	oppLive := r.opp != "" && !o.opp(r.opp).deleted
	var out []Expected
	switch ch.Type {
	case cdc.Create, cdc.Undelete:
		wasLive := !r.deleted && r.contact != ""
		if c, ok := str("ContactId"); ok {
			r.contact = c
		}
		if role, ok := str("Role"); ok || ch.Type == cdc.Create {
			r.role = role
		}
		r.deleted = false
		reason := ReasonRoleCreated
		if ch.Type == cdc.Undelete {
			reason = ReasonRoleUndeleted
		}
		if oppLive && !(ch.Type == cdc.Undelete && wasLive) {
			out = append(out, o.entry(ch, id, cdc.TriggerAdded, r.contact, r.opp, id, reason, ""))
		}
	case cdc.Update:
		if c, ok := str("ContactId"); ok && c != r.contact {
			if oppLive && !r.deleted {
				out = append(out,
					o.entry(ch, id, cdc.TriggerRemoved, r.contact, r.opp, id, ReasonContactChanged, ""),
					o.entry(ch, id, cdc.TriggerAdded, c, r.opp, id, ReasonContactChanged, ""))
			}
			r.contact = c
		}
		if role, ok := str("Role"); ok {
			r.role = role
		}
	case cdc.Delete:
		if oppLive && !r.deleted {
			out = append(out, o.entry(ch, id, cdc.TriggerRemoved, r.contact, r.opp, id, ReasonRoleDeleted, ""))
		}
		r.deleted = true
	}
	return out
}

// Truth returns a copy of the true state and the expected entries.
func (o *Oracle) Truth() Truth {
	t := Truth{Expected: o.Expected()}
	for id, op := range o.opps {
		f := make(map[string]cdc.Value, len(op.fields))
		for k, v := range op.fields {
			f[k] = v
		}
		t.Opportunities = append(t.Opportunities, TruthOpportunity{ID: id, Fields: f, Deleted: op.deleted})
	}
	sort.Slice(t.Opportunities, func(i, j int) bool { return t.Opportunities[i].ID < t.Opportunities[j].ID })
	for id, r := range o.roles {
		primary := false
		if op := o.opps[r.opp]; op != nil {
			primary = r.contact != "" && op.fields["ContactId"].Str == r.contact
		}
		t.ContactRoles = append(t.ContactRoles, TruthRole{ID: id, OpportunityID: r.opp, ContactID: r.contact, Role: r.role, Deleted: r.deleted, Primary: primary})
	}
	sort.Slice(t.ContactRoles, func(i, j int) bool { return t.ContactRoles[i].ID < t.ContactRoles[j].ID })
	return t
}
