package triggers

import (
	"github.com/oppsync/oppsync/pkg/cdc"
)

// Reasons for added and removed entries (CONTRACT §4).
const (
	ReasonRoleCreated        = "contact_role_created"
	ReasonRoleUndeleted      = "contact_role_undeleted"
	ReasonRoleDeleted        = "contact_role_deleted"
	ReasonContactChanged     = "contact_changed"
	ReasonOpportunityDeleted = "opportunity_deleted"
	ReasonOppUndeleted       = "opportunity_undeleted"
)

// Config holds what the rules need besides the group and the change.
type Config struct {
	Org string
	// IgnoreFields never produce opportunity_updated entries.
	IgnoreFields map[string]bool
	// PendingTimeoutMillis is how long a contact role waits for its unknown
	// opportunity.
	PendingTimeoutMillis int64
}

// RoleRef is a contact role as listed in an updated entry's roles.
type RoleRef struct {
	ContactRoleID string `json:"contact_role_id"`
	Role          string `json:"role"`
	IsPrimary     bool   `json:"is_primary"`
}

// Trigger is one entry to append to a trigger stream.
type Trigger struct {
	Kind          string // cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated
	EventID       string
	PersonID      string
	OpportunityID string
	Source        Source

	// Added and removed entries.
	ContactRoleID string
	Role          string
	IsPrimary     bool
	Reason        string

	// Updated entries.
	Field    string
	Old, New cdc.Value
	Roles    []RoleRef

	// NoSnapshot is set when the opportunity is not known: the entry's
	// opportunity is null.
	NoSnapshot bool
}

// Change is one record of a change event: events naming several record ids
// are applied once per id.
type Change struct {
	Event    *cdc.Event
	RecordID string
	// NowMillis is the wall-clock time of the apply, for pending deadlines.
	NowMillis int64
	// KeepStale is set for a re-read (SNAPSHOT or DELETE from a resync)
	// when a newer gap came while the record was fetched: its data applies
	// by version as usual, but the record stays stale.
	KeepStale bool
}

// Result says what applying a change did.
type Result struct {
	// Duplicate is set when the change was already reflected (or older than
	// what it would overwrite): nothing changed.
	Duplicate bool
	// Changed reports whether the group changed at all.
	Changed bool
	// Fields lists opportunity fields whose value or version was written.
	Fields []string
	// Roles lists contact roles that were written.
	Roles    []string
	Triggers []Trigger
	// Stale is set when the change was a gap: the record needs a resync.
	Stale bool
}

func (c Change) source(reason string) Source {
	return Source{
		Entity:   c.Event.Entity,
		RecordID: c.RecordID,
		Version:  c.Event.Version,
		Header:   c.Event.Header,
		Reason:   reason,
	}
}

// Apply applies one record change to g (mutating it) and returns what the
// change means. The group must be the one of the change's opportunity: for a
// contact-role change, the group of the role's OpportunityId.
func Apply(cfg *Config, g *Group, ch Change) Result {
	switch ch.Event.Entity {
	case cdc.EntityOpportunity:
		return applyOpportunity(cfg, g, ch)
	case cdc.EntityContactRole:
		return applyRole(cfg, g, ch)
	}
	return Result{Duplicate: true}
}

func applyOpportunity(cfg *Config, g *Group, ch Change) Result {
	ev := ch.Event
	o := &g.Opp
	var res Result
	switch {
	case ev.ChangeType == cdc.GapOverflow:
		return Result{Stale: true}
	case ev.ChangeType.IsGap():
		if !ev.Version.Newer(o.Version) {
			return Result{Duplicate: true}
		}
		o.Version = ev.Version
		o.Stale = true
		res.Changed, res.Stale = true, true
		return res
	case ev.ChangeType == cdc.Delete:
		if !ev.Version.Newer(o.Life) || !ev.Version.Newer(o.Version) {
			return Result{Duplicate: true}
		}
		wasLive := o.Live()
		o.Life, o.Version, o.Deleted = ev.Version, ev.Version, true
		// A deleted record has nothing left to re-read: it is no longer stale.
		o.Stale = o.Stale && ch.KeepStale
		res.Changed = true
		if wasLive {
			for _, r := range g.SortedRoles() {
				if r.Linked() {
					res.Triggers = append(res.Triggers, roleTrigger(cfg, g, r, cdc.TriggerRemoved, r.ContactID, ch.source(ReasonOpportunityDeleted)))
				}
			}
		}
		return res
	}

	// CREATE, UNDELETE, UPDATE: apply the changed fields that are newer than
	// what the state holds.
	wasLive := o.Live()
	wasKnown := o.Known
	peopleBefore, rolesBefore := g.People()
	// A SNAPSHOT (a resync's re-read of the record) is a full record too,
	// and its differences are reported like an update's.
	full := ev.ChangeType == cdc.Create || ev.ChangeType == cdc.Undelete || ev.ChangeType == cdc.Snapshot
	if full && ev.Version.Newer(o.Life) {
		if ev.ChangeType == cdc.Undelete || !o.Deleted {
			o.Deleted = false
		}
		o.Life = ev.Version
		o.Known = true
		o.Stale = o.Stale && ch.KeepStale
		res.Changed = true
	}
	var updates []fieldUpdate
	for _, f := range ev.Fields {
		if !f.Changed {
			continue
		}
		if fv, ok := o.FieldVersions[f.Name]; ok && !ev.Version.Newer(fv) {
			continue
		}
		old, had := o.Fields[f.Name]
		o.FieldVersions[f.Name] = ev.Version
		res.Fields = append(res.Fields, f.Name)
		res.Changed = true
		if f.Value.IsNull() {
			delete(o.Fields, f.Name)
		} else {
			o.Fields[f.Name] = f.Value
		}
		if !old.Equal(f.Value) {
			updates = append(updates, fieldUpdate{f.Name, old, f.Value, had})
		}
	}
	if len(res.Fields) > 0 {
		o.Known = true
	}
	if ev.ChangeType == cdc.Snapshot && o.Stale && !ch.KeepStale {
		// A re-read that began after the record's last gap covers it,
		// whatever its version (the gap's time, not after it) says.
		o.Stale = false
		res.Changed = true
	}
	if !res.Changed {
		return Result{Duplicate: true}
	}
	if ev.Version.Newer(o.Version) {
		o.Version = ev.Version
	}

	// Updated entries go to the people linked before the change.
	if (ev.ChangeType == cdc.Update || ev.ChangeType == cdc.Snapshot) && wasLive {
		for _, u := range updates {
			if cfg.IgnoreFields[u.name] {
				continue
			}
			for _, p := range peopleBefore {
				refs := make([]RoleRef, 0, len(rolesBefore[p]))
				for _, r := range rolesBefore[p] {
					refs = append(refs, RoleRef{r.ID, r.Role, r.IsPrimaryFor(o)})
				}
				res.Triggers = append(res.Triggers, Trigger{
					Kind:          cdc.TriggerUpdated,
					EventID:       cdc.EventID(cfg.Org, ev.Entity, ch.RecordID, ev.Version, cdc.TriggerUpdated, p, "", u.name),
					PersonID:      p,
					OpportunityID: o.ID,
					Source:        ch.source(""),
					Field:         u.name,
					Old:           u.old,
					New:           u.new,
					Roles:         refs,
				})
			}
		}
	}

	// An undelete brings back the people of its live roles.
	if wasKnown && !wasLive && o.Live() {
		for _, r := range g.SortedRoles() {
			if r.Linked() {
				res.Triggers = append(res.Triggers, roleTrigger(cfg, g, r, cdc.TriggerAdded, r.ContactID, ch.source(ReasonOppUndeleted)))
				res.Roles = append(res.Roles, r.ID)
			}
		}
	}
	// Roles that waited for this opportunity are released now.
	if o.Live() {
		res.Triggers = append(res.Triggers, releasePending(cfg, g, &res)...)
	}
	return res
}

type fieldUpdate struct {
	name     string
	old, new cdc.Value
	had      bool
}

func applyRole(cfg *Config, g *Group, ch Change) Result {
	ev := ch.Event
	o := &g.Opp
	r, existed := g.Roles[ch.RecordID]
	if ev.ChangeType == cdc.GapOverflow {
		return Result{Stale: true}
	}
	if existed && !ev.Version.Newer(r.Version) {
		if ev.ChangeType == cdc.Snapshot && r.Stale && !ch.KeepStale {
			// A re-read older than the role's last change (versioned by the
			// gap's time, not after it) still covers the gap it began from.
			r.Stale = false
			return Result{Changed: true, Roles: []string{r.ID}}
		}
		return Result{Duplicate: true}
	}
	if !existed {
		r = &Role{ID: ch.RecordID, OpportunityID: o.ID}
		g.Roles[r.ID] = r
	}
	ct := ev.ChangeType
	if ct == cdc.Snapshot {
		// A re-read role: new (or back from deletion) like a create,
		// otherwise like an update.
		ct = cdc.Update
		if !existed || r.Deleted {
			ct = cdc.Create
		}
	}
	res := Result{Changed: true, Roles: []string{r.ID}}
	r.Version = ev.Version
	wasLinked := existed && r.Linked() && o.Live()
	before := *r

	switch {
	case ct.IsGap():
		r.Stale = true
		res.Stale = true
		return res
	case ct == cdc.Delete:
		r.Deleted = true
		if r.Pending {
			r.Pending, r.PendingSource, r.Deadline = false, nil, 0
		}
		if wasLinked {
			res.Triggers = append(res.Triggers, roleTrigger(cfg, g, r, cdc.TriggerRemoved, r.ContactID, ch.source(ReasonRoleDeleted)))
		}
		return res
	}

	for _, f := range ev.Fields {
		if !f.Changed {
			continue
		}
		switch f.Name {
		case "ContactId":
			r.ContactID = f.Value.Str
		case "Role":
			r.Role = f.Value.Str
		case "IsPrimary":
			b := f.Value.Kind == cdc.KindBool && f.Value.Bool
			r.IsPrimary = &b
		}
	}
	if ev.ChangeType == cdc.Snapshot {
		r.Stale = r.Stale && ch.KeepStale
	}
	if ct == cdc.Create || ct == cdc.Undelete {
		r.Stale = r.Stale && ch.KeepStale
		reason := ReasonRoleCreated
		if ct == cdc.Undelete {
			reason = ReasonRoleUndeleted
		}
		wasDeleted := r.Deleted
		r.Deleted = false
		if existed && !wasDeleted && !r.Pending {
			// A CREATE for a role already live: only its fields changed.
			return res
		}
		switch {
		case o.Live():
			res.Triggers = append(res.Triggers, roleTrigger(cfg, g, r, cdc.TriggerAdded, r.ContactID, ch.source(reason)))
		case !o.Known && r.ContactID != "":
			src := ch.source(reason)
			r.Pending, r.PendingSource = true, &src
			r.Deadline = ch.NowMillis + cfg.PendingTimeoutMillis
		}
		return res
	}

	// UPDATE: a new contact moves the role from one person to another.
	if wasLinked && r.ContactID != before.ContactID {
		src := ch.source(ReasonContactChanged)
		if before.ContactID != "" {
			old := before
			old.Role = r.Role
			res.Triggers = append(res.Triggers, roleTrigger(cfg, g, &old, cdc.TriggerRemoved, before.ContactID, src))
		}
		if r.ContactID != "" {
			res.Triggers = append(res.Triggers, roleTrigger(cfg, g, r, cdc.TriggerAdded, r.ContactID, src))
		}
	}
	return res
}

// roleTrigger builds an added or removed entry for role r and person.
func roleTrigger(cfg *Config, g *Group, r *Role, kind, person string, src Source) Trigger {
	return Trigger{
		Kind:          kind,
		EventID:       cdc.EventID(cfg.Org, src.Entity, src.RecordID, src.Version, kind, person, r.ID, ""),
		PersonID:      person,
		OpportunityID: g.Opp.ID,
		Source:        src,
		ContactRoleID: r.ID,
		Role:          r.Role,
		IsPrimary:     r.IsPrimaryFor(&g.Opp),
		Reason:        src.Reason,
		NoSnapshot:    !g.Opp.Known,
	}
}

// releasePending emits the added entries of the pending roles of a group
// whose opportunity just became known.
func releasePending(cfg *Config, g *Group, res *Result) []Trigger {
	var out []Trigger
	for _, r := range g.SortedRoles() {
		if !r.Pending || r.Deleted {
			continue
		}
		src := *r.PendingSource
		r.Pending, r.PendingSource, r.Deadline = false, nil, 0
		res.Roles = append(res.Roles, r.ID)
		res.Changed = true
		if g.Opp.Known && g.Opp.Deleted {
			continue // restored by the opportunity's undelete, if any
		}
		out = append(out, roleTrigger(cfg, g, r, cdc.TriggerAdded, r.ContactID, src))
	}
	return out
}

// ReleaseExpired releases the pending roles of g whose deadline is at or
// before nowMillis, with a null opportunity when it is still unknown.
func ReleaseExpired(cfg *Config, g *Group, nowMillis int64) Result {
	var res Result
	for _, r := range g.SortedRoles() {
		if !r.Pending || r.Deadline > nowMillis || r.Deleted {
			continue
		}
		src := *r.PendingSource
		r.Pending, r.PendingSource, r.Deadline = false, nil, 0
		res.Roles = append(res.Roles, r.ID)
		res.Changed = true
		res.Triggers = append(res.Triggers, roleTrigger(cfg, g, r, cdc.TriggerAdded, r.ContactID, src))
	}
	if !res.Changed {
		res.Duplicate = true
	}
	return res
}

// NextDeadline returns the earliest deadline of g's pending roles, or 0.
func (g *Group) NextDeadline() int64 {
	var d int64
	for _, r := range g.Roles {
		if r.Pending && !r.Deleted && (d == 0 || r.Deadline < d) {
			d = r.Deadline
		}
	}
	return d
}
