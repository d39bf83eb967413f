package filters

import (
	"sort"
	"sync"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Field is a field of the constraint catalog.
type Field struct {
	Entity         string   `json:"entity"`
	Name           string   `json:"field"`
	Kind           cdc.Kind `json:"-"`
	SalesforceType string   `json:"salesforce_type"`
}

// Catalog lists the fields constraints may name. Build it with NewCatalog.
type Catalog struct {
	opp map[string]Field
	all []Field
}

// Pseudo-fields every constraint may name besides the opportunity fields.
const (
	FieldRole      = "Role"
	FieldIsPrimary = "IsPrimary"
	FieldOldValue  = "old_value"
	FieldNewValue  = "new_value"
)

// NewCatalog builds a catalog from the fields of the schemas seen so far.
// Opportunity fields become constraint fields; Id is always known.
func NewCatalog(fields []Field) *Catalog {
	c := &Catalog{opp: map[string]Field{}}
	for _, f := range fields {
		c.all = append(c.all, f)
		if f.Entity == cdc.EntityOpportunity {
			f.Name = Intern(f.Name)
			c.opp[f.Name] = f
		}
	}
	if _, ok := c.opp["Id"]; !ok {
		c.opp["Id"] = Field{Entity: cdc.EntityOpportunity, Name: "Id", Kind: cdc.KindString, SalesforceType: "Id"}
	}
	sort.Slice(c.all, func(i, j int) bool {
		if c.all[i].Entity != c.all[j].Entity {
			return c.all[i].Entity < c.all[j].Entity
		}
		return c.all[i].Name < c.all[j].Name
	})
	return c
}

// Fields returns every catalog field ordered by entity and name.
func (c *Catalog) Fields() []Field { return c.all }

// Opportunity returns the opportunity field named name.
func (c *Catalog) Opportunity(name string) (Field, bool) {
	f, ok := c.opp[name]
	return f, ok
}

// Role is one live (non-deleted) contact role of an opportunity.
type Role struct {
	ID        string
	ContactID string
	Role      string
	IsPrimary bool
	// Pending is set while the role waits for its unknown opportunity.
	Pending bool
}

// Opportunity is an opportunity as the filters see it.
type Opportunity struct {
	ID      string
	Known   bool // some data event was applied; otherwise only roles wait for it
	Deleted bool
	Stale   bool
	// Fields are the opportunity's fields as served (amounts in the default
	// currency, ExpectedRevenue derived when null).
	Fields map[string]cdc.Value
	// Roles are the live contact roles of the opportunity, of every person
	// (nil once compact: see Compact).
	Roles []Role

	// row holds the ID, the fields and the roles in compact form (see
	// Compact); "" means use Fields and Roles.
	row string
}

// Value returns a field of the opportunity (Null when absent).
func (o *Opportunity) Value(name string) cdc.Value {
	if o.row != "" {
		return o.at(column(name))
	}
	return o.Fields[name]
}

// FieldMap returns the fields as a map (a new one for a compact
// opportunity).
func (o *Opportunity) FieldMap() map[string]cdc.Value {
	if o.row == "" {
		return o.Fields
	}
	columns.RLock()
	names := make(map[string]int, len(columns.idx))
	for name, c := range columns.idx {
		names[name] = c
	}
	columns.RUnlock()
	m := map[string]cdc.Value{}
	for name, c := range names {
		if v := o.at(c); !v.IsNull() {
			m[name] = v
		}
	}
	return m
}

// Activity is one entry of a person's activity log.
type Activity struct {
	Kind          string // cdc.TriggerAdded, TriggerRemoved, TriggerUpdated
	OpportunityID string
	RoleID        string
	Role          string
	IsPrimary     bool
	Field         string
	Old, New      cdc.Value
	At            int64 // commit time, ms since epoch
}

// Person is everything the filters evaluate for one person.
type Person struct {
	ID string
	// Opportunities are those the person holds a live role on, including
	// deleted ones (which count for nothing) and unknown ones (pending).
	Opportunities []*Opportunity
	// Activity is the person's activity log within the query's window
	// (ActivityWindow); nil when the query has no activity filter.
	Activity []Activity
	// Lookup returns an opportunity named by an activity entry, for
	// constraints on its fields; nil means only Opportunities are known.
	Lookup func(id string) (*Opportunity, bool)
	// Totals, when set, are the person's precomputed aggregates (they must
	// equal TotalsOf(ID, Opportunities)); nil computes them.
	Totals *Totals
}

var interned sync.Map

// Intern returns a canonical copy of a field name. Field maps whose keys
// are interned, looked up with interned names (as parsed constraints are),
// compare keys by pointer: much faster over many opportunities. Intern only
// bounded sets of names (catalog fields).
func Intern(s string) string {
	if v, ok := interned.Load(s); ok {
		return v.(string)
	}
	v, _ := interned.LoadOrStore(s, s)
	return v.(string)
}

// Totals are a person's aggregates.
type Totals struct {
	Count    int     // non-deleted opportunities with a live role, known or pending
	Amount   float64 // sum of the known Amounts of those
	Expected float64 // sum of their known ExpectedRevenue
}

// PersonRoles returns the person's roles on o.
func PersonRoles(o *Opportunity, personID string) []Role {
	var out []Role
	c := o.roleCursor()
	var r Role
	for c.next(&r) {
		if r.ContactID == personID {
			out = append(out, r)
		}
	}
	return out
}

// TotalsOf computes a person's aggregates from their opportunities.
func TotalsOf(personID string, opps []*Opportunity) Totals {
	var t Totals
	for _, o := range opps {
		if o.Known && o.Deleted {
			continue
		}
		if !holds(o, personID) {
			continue
		}
		t.Count++
		if !o.Known {
			continue
		}
		if v := o.Value("Amount"); v.Kind == cdc.KindNumber {
			t.Amount += v.Num
		}
		if v := o.Value("ExpectedRevenue"); v.Kind == cdc.KindNumber {
			t.Expected += v.Num
		}
	}
	return t
}

func holds(o *Opportunity, personID string) bool {
	c := o.roleCursor()
	var r Role
	for c.next(&r) {
		if r.ContactID == personID {
			return true
		}
	}
	return false
}
