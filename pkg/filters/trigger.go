package filters

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// Pseudo-fields only a campaign trigger's constraints may name (CONTRACT
// §8), besides Role, IsPrimary, old_value and new_value.
const (
	FieldReason  = "reason" // added/removed: why the entry was written
	FieldChanged = "field"  // updated: the changed field's API name
)

// MaxTriggerConstraints bounds the constraints of one campaign trigger.
const MaxTriggerConstraints = MaxConstraints

// reasons are the reason codes of each trigger kind (CONTRACT §4).
var reasons = map[string][]string{
	cdc.TriggerAdded: {triggers.ReasonRoleCreated, triggers.ReasonRoleUndeleted, triggers.ReasonContactChanged,
		triggers.ReasonOppUndeleted},
	cdc.TriggerRemoved: {triggers.ReasonRoleDeleted, triggers.ReasonContactChanged, triggers.ReasonOpportunityDeleted},
}

// Trigger is one parsed campaign trigger: a trigger kind, for updated an
// optional changed field, and constraints that must all hold for one entry.
type Trigger struct {
	Kind        string // cdc.TriggerAdded, TriggerRemoved or TriggerUpdated
	Field       string // opportunity_updated only: the changed field ("" = any)
	Constraints []*Constraint

	hasRole bool
}

// TriggerOptions are what a trigger's validation needs besides the catalog.
type TriggerOptions struct {
	// Ignored are the fields that never get an opportunity_updated entry
	// (triggers.ignore_fields): naming one as a trigger's field is an error.
	Ignored []string
}

// ParseTrigger reads one campaign trigger
// ({"trigger", "field", "constraints"}) against the catalog. Errors start
// with the rest of the JSON path (": ...", ".constraints[1]: ...").
func ParseTrigger(raw json.RawMessage, cat *Catalog, opts TriggerOptions) (*Trigger, error) {
	if cat == nil {
		cat = NewCatalog(nil)
	}
	m, err := object(raw)
	if err != nil {
		return nil, pathErr("", "%v", err)
	}
	var kind string
	if r, ok := m["trigger"]; !ok {
		return nil, pathErr("", "missing \"trigger\"")
	} else if json.Unmarshal(r, &kind) != nil {
		return nil, pathErr(".trigger", "%s is not a string", show(r))
	}
	switch kind {
	case cdc.TriggerAdded, cdc.TriggerRemoved:
		if err := onlyKeys(m, "trigger", "constraints"); err != nil {
			return nil, pathErr("", "%v (trigger %s)", err, kind)
		}
	case cdc.TriggerUpdated:
		if err := onlyKeys(m, "trigger", "field", "constraints"); err != nil {
			return nil, pathErr("", "%v (trigger %s)", err, kind)
		}
	default:
		return nil, pathErr(".trigger", "unknown trigger %s (want %s, %s or %s)", quote(kind),
			cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated)
	}
	t := &Trigger{Kind: kind}
	var changed Field
	if r, ok := m["field"]; ok && !isNull(r) {
		if json.Unmarshal(r, &t.Field) != nil {
			return nil, pathErr(".field", "%s is not a string", show(r))
		}
		fi, ok := cat.Opportunity(t.Field)
		if !ok {
			return nil, pathErr(".field", "unknown field %s", quote(t.Field))
		}
		if slices.Contains(opts.Ignored, t.Field) {
			return nil, pathErr(".field", "%s is in triggers.ignore_fields: it never gets an entry", quote(t.Field))
		}
		t.Field, changed = fi.Name, fi
	}
	var list []json.RawMessage
	if r, ok := m["constraints"]; ok && !isNull(r) {
		if json.Unmarshal(r, &list) != nil {
			return nil, pathErr(".constraints", "%s is not a list", show(r))
		}
	}
	if len(list) > MaxTriggerConstraints {
		return nil, pathErr(".constraints", "%d constraints, at most %d allowed", len(list), MaxTriggerConstraints)
	}
	for j, cr := range list {
		c, err := parseConstraintWith(cr, time.Time{}, func(c *Constraint) error { return t.resolve(c, cat, changed) })
		if err != nil {
			return nil, fmt.Errorf(".constraints[%d]%w", j, err)
		}
		if err := t.checkReason(c); err != nil {
			return nil, fmt.Errorf(".constraints[%d]%w", j, err)
		}
		if c.Field == FieldRole || c.Field == FieldIsPrimary {
			t.hasRole = true
		}
		t.Constraints = append(t.Constraints, c)
	}
	return t, nil
}

// resolve types a trigger constraint's field, refusing one that cannot
// apply to the trigger.
func (t *Trigger) resolve(c *Constraint, cat *Catalog, changed Field) error {
	switch c.Field {
	case FieldRole:
		c.Kind, c.SalesforceType = cdc.KindString, "picklist"
	case FieldIsPrimary:
		c.Kind, c.SalesforceType = cdc.KindBool, "boolean"
	case FieldReason:
		if t.Kind == cdc.TriggerUpdated {
			return pathErr("", "%s applies only to %s and %s", quote(c.Field), cdc.TriggerAdded, cdc.TriggerRemoved)
		}
		c.Kind, c.SalesforceType = cdc.KindString, "reason"
	case FieldChanged:
		if t.Kind != cdc.TriggerUpdated {
			return pathErr("", "%s applies only to %s", quote(c.Field), cdc.TriggerUpdated)
		}
		c.Kind, c.SalesforceType = cdc.KindString, "field name"
	case FieldOldValue, FieldNewValue:
		if t.Kind != cdc.TriggerUpdated {
			return pathErr("", "%s applies only to %s", quote(c.Field), cdc.TriggerUpdated)
		}
		if t.Field == "" {
			return pathErr("", "%s needs the trigger's \"field\"", quote(c.Field))
		}
		c.Kind, c.SalesforceType = changed.Kind, changed.SalesforceType
	default:
		if err := c.resolveOpportunity(cat); err != nil {
			return err
		}
	}
	return nil
}

// checkReason refuses an is / is_not on reason naming a reason the trigger
// never has (a typo would silently never match).
func (t *Trigger) checkReason(c *Constraint) error {
	if c.Field != FieldReason || (c.Op != OpIs && c.Op != OpIsNot) {
		return nil
	}
	for _, s := range c.strs {
		ok := false
		for _, r := range reasons[t.Kind] {
			if strings.EqualFold(r, s) {
				ok = true
			}
		}
		if !ok {
			return pathErr(".value", "%s is not a reason of %s (%s)", quote(s), t.Kind, strings.Join(reasons[t.Kind], ", "))
		}
	}
	return nil
}

// Entry is a trigger entry as campaign trigger constraints see it.
type Entry struct {
	Kind string
	// Opportunity is the entry's snapshot (the opportunity as it stands
	// after the change); nil when the entry's "opportunity" is null.
	Opportunity *Opportunity
	// Added / removed: the entry's contact role and reason.
	Role   *Role
	Reason string
	// Updated: the changed field, its values and the person's roles on the
	// opportunity.
	Field    string
	Old, New cdc.Value
	Roles    []Role
	// At is the entry's occurred_at (ms): "in_past" is measured from it.
	At int64
}

// Match reports whether the entry is of the trigger's kind (and changed
// field) and satisfies every constraint; role constraints hold on one role
// (for updated, at least one of the entry's roles).
func (t *Trigger) Match(e *Entry) bool {
	if e.Kind != t.Kind || (t.Field != "" && e.Field != t.Field) {
		return false
	}
	if e.Kind != cdc.TriggerUpdated || !t.hasRole {
		return t.all(e, e.Role)
	}
	for i := range e.Roles {
		if t.all(e, &e.Roles[i]) {
			return true
		}
	}
	return false
}

func (t *Trigger) all(e *Entry, role *Role) bool {
	for _, c := range t.Constraints {
		if c.Op == OpInPast {
			c = c.at(e.At)
		}
		if !c.Holds(entryValue(e, role, c)) {
			return false
		}
	}
	return true
}

func entryValue(e *Entry, role *Role, c *Constraint) cdc.Value {
	switch c.Field {
	case FieldRole:
		if role != nil {
			return cdc.String(role.Role)
		}
		return cdc.Null
	case FieldIsPrimary:
		if role != nil {
			return cdc.Bool(role.IsPrimary)
		}
		return cdc.Null
	case FieldReason:
		return cdc.String(e.Reason)
	case FieldChanged:
		return cdc.String(e.Field)
	case FieldOldValue:
		return e.Old
	case FieldNewValue:
		return e.New
	}
	if e.Opportunity == nil {
		return cdc.Null
	}
	if c.Field == "Id" {
		return cdc.String(e.Opportunity.ID)
	}
	return e.Opportunity.Value(c.Field)
}
