package filters

import (
	"strings"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Match reports whether the person satisfies the query: every filter
// (match "all") or at least one (match "any"). A query without filters
// matches everyone with "all" and no one with "any".
func (q *Query) Match(p *Person) bool {
	var totals Totals
	haveTotals := p.Totals != nil
	if haveTotals {
		totals = *p.Totals
	}
	one := func(f *Filter) bool {
		if f.IsAggregate() && len(f.Constraints) == 0 {
			if !haveTotals {
				totals, haveTotals = TotalsOf(p.ID, p.Opportunities), true
			}
			return f.matchTotals(totals)
		}
		return f.Match(p)
	}
	if q.Logic != nil {
		return q.Logic.Eval(func(i int) bool { return one(q.Filters[i]) })
	}
	for _, f := range q.Filters {
		ok := one(f)
		if q.Any && ok {
			return true
		}
		if !q.Any && !ok {
			return false
		}
	}
	return !q.Any
}

// Match reports whether the person satisfies the filter, "not" applied.
func (f *Filter) Match(p *Person) bool {
	var ok bool
	switch {
	case f.IsAggregate() && len(f.Constraints) > 0:
		ok = f.Agg.holdsNumber(aggValue(f.Name, f.totalsWhere(p)))
	case f.IsAggregate():
		t := p.Totals
		if t == nil {
			x := TotalsOf(p.ID, p.Opportunities)
			t = &x
		}
		ok = f.Agg.holdsNumber(aggValue(f.Name, *t))
	case f.IsActivity():
		ok = f.matchActivity(p)
	default:
		ok = f.matchHas(p)
	}
	return ok != f.Not
}

// totalsWhere is TotalsOf over the person's opportunities that satisfy
// every constraint of f (role constraints on one role of the person);
// pending (unknown) opportunities never satisfy a constraint.
func (f *Filter) totalsWhere(p *Person) Totals {
	var t Totals
	for _, o := range p.Opportunities {
		if !o.Known || o.Deleted || !f.matchRoles(p.ID, o, nil) {
			continue
		}
		t.Count++
		if v := o.Value("Amount"); v.Kind == cdc.KindNumber {
			t.Amount += v.Num
		}
		if v := o.Value("ExpectedRevenue"); v.Kind == cdc.KindNumber {
			t.Expected += v.Num
		}
	}
	return t
}

func (f *Filter) matchTotals(t Totals) bool {
	return f.Agg.holdsNumber(aggValue(f.Name, t)) != f.Not
}

func aggValue(name string, t Totals) float64 {
	switch name {
	case NumberOfOpps:
		return float64(t.Count)
	case TotalAmount:
		return t.Amount
	}
	return t.Expected
}

// subject is what one constraint check looks at.
type subject struct {
	opp  *Opportunity // nil when unknown
	role *Role        // nil when the filter has no role constraint
	act  *Activity
}

func (s *subject) value(c *Constraint) cdc.Value {
	if c.col >= 0 && s.opp != nil && s.opp.row != "" && c.Field != "Id" {
		if !s.opp.Known {
			return cdc.Null
		}
		return s.opp.at(c.col)
	}
	field := c.Field
	switch field {
	case FieldRole:
		if s.role != nil {
			return cdc.String(s.role.Role)
		}
		return cdc.Null
	case FieldIsPrimary:
		if s.role != nil {
			return cdc.Bool(s.role.IsPrimary)
		}
		return cdc.Null
	case FieldOldValue:
		if s.act != nil {
			return s.act.Old
		}
		return cdc.Null
	case FieldNewValue:
		if s.act != nil {
			return s.act.New
		}
		return cdc.Null
	case "Id":
		if s.opp != nil {
			return cdc.String(s.opp.ID)
		}
		return cdc.Null
	}
	if s.opp == nil || !s.opp.Known {
		return cdc.Null
	}
	return s.opp.Value(field)
}

func (f *Filter) all(s *subject) bool {
	for _, c := range f.Constraints {
		if !c.Holds(s.value(c)) {
			return false
		}
	}
	return true
}

// matchHas: some live opportunity, and one live role of the person on it,
// satisfy every constraint together.
func (f *Filter) matchHas(p *Person) bool {
	for _, o := range p.Opportunities {
		if !o.Known || o.Deleted {
			continue
		}
		if f.matchRoles(p.ID, o, nil) {
			return true
		}
	}
	return false
}

// matchRoles tries the person's live roles on o (all constraints on one
// role); act is the activity entry for old/new values, if any.
func (f *Filter) matchRoles(person string, o *Opportunity, act *Activity) bool {
	c := o.roleCursor()
	var r Role
	for c.next(&r) {
		if r.ContactID != person || r.Pending {
			continue
		}
		if f.all(&subject{opp: o, role: &r, act: act}) {
			return true
		}
		if !f.hasRoleConstraint {
			// Without role constraints every role gives the same answer.
			return false
		}
	}
	return false
}

func (f *Filter) matchActivity(p *Person) bool {
	kind := map[string]string{WasAdded: cdc.TriggerAdded, WasRemoved: cdc.TriggerRemoved, Updated: cdc.TriggerUpdated}[f.Name]
	n := 0
	for i := range p.Activity {
		a := &p.Activity[i]
		if a.Kind != kind || a.At < f.Since || a.At > f.Until {
			continue
		}
		if f.Name == Updated && f.Field != "" && a.Field != f.Field {
			continue
		}
		if !f.matchEntry(p, a) {
			continue
		}
		if n++; n >= f.MinTimes {
			return true
		}
	}
	return false
}

func (f *Filter) matchEntry(p *Person, a *Activity) bool {
	if len(f.Constraints) == 0 {
		return true
	}
	opp := lookup(p, a.OpportunityID)
	if a.Kind == cdc.TriggerUpdated {
		if f.hasRoleConstraint {
			// Roles of an updated entry are the person's current ones.
			return opp != nil && f.matchRoles(p.ID, opp, a)
		}
		return f.all(&subject{opp: opp, act: a})
	}
	role := Role{ID: a.RoleID, ContactID: p.ID, Role: a.Role, IsPrimary: a.IsPrimary}
	return f.all(&subject{opp: opp, role: &role, act: a})
}

func lookup(p *Person, id string) *Opportunity {
	for _, o := range p.Opportunities {
		if o.ID == id {
			return o
		}
	}
	if p.Lookup != nil {
		if o, ok := p.Lookup(id); ok {
			return o
		}
	}
	return nil
}

// Holds reports whether a field value satisfies the constraint.
func (c *Constraint) Holds(v cdc.Value) bool {
	switch c.Op {
	case OpIsEmpty:
		return empty(v)
	case OpIsNotEmpty:
		return !empty(v)
	case OpIsNot:
		return !c.is(v)
	case OpIs:
		return c.is(v)
	case OpContains, OpNotContain, OpStartsWith:
		if v.Kind != cdc.KindString {
			return c.Op == OpNotContain
		}
		s := strings.ToLower(v.Str)
		switch c.Op {
		case OpContains:
			return strings.Contains(s, c.strs[0])
		case OpNotContain:
			return !strings.Contains(s, c.strs[0])
		}
		return strings.HasPrefix(s, c.strs[0])
	}
	n, ok := c.number(v)
	if !ok {
		return false
	}
	switch c.Op {
	case OpInPast:
		return n >= float64(c.since) && n <= float64(c.now)
	case OpBefore:
		return n < c.nums[0]
	case OpAfter:
		return n > c.nums[0]
	}
	return c.holdsNumber(n)
}

func (c *Constraint) holdsNumber(n float64) bool {
	switch c.Op {
	case OpIs:
		for _, x := range c.nums {
			if n == x {
				return true
			}
		}
		return false
	case OpIsNot:
		for _, x := range c.nums {
			if n == x {
				return false
			}
		}
		return true
	case OpGt:
		return n > c.nums[0]
	case OpGte:
		return n >= c.nums[0]
	case OpLt:
		return n < c.nums[0]
	case OpLte:
		return n <= c.nums[0]
	case OpBetween:
		return n >= c.nums[0] && n <= c.nums[1]
	}
	return false
}

func empty(v cdc.Value) bool {
	return v.IsNull() || ((v.Kind == cdc.KindString || v.Kind == cdc.KindDate || v.Kind == cdc.KindDateTime) && v.Str == "")
}

func (c *Constraint) is(v cdc.Value) bool {
	if v.IsNull() {
		return false
	}
	if c.Kind == cdc.KindString || c.Kind == cdc.KindNull {
		var s string
		switch v.Kind {
		case cdc.KindString, cdc.KindDate, cdc.KindDateTime:
			s = v.Str
		case cdc.KindNumber:
			s = cdc.FormatNumber(v.Num)
		case cdc.KindBool:
			s = v.JSON()
		}
		for _, x := range c.strs {
			if strings.EqualFold(s, x) {
				return true
			}
		}
		return false
	}
	n, ok := c.number(v)
	if !ok {
		return false
	}
	// Membership, whatever the operator: Holds negates it for is_not.
	for _, x := range c.nums {
		if n == x {
			return true
		}
	}
	return false
}

// number maps a record value onto the constraint's number line: numbers,
// booleans (0/1), dates and date-times (ms since the epoch).
func (c *Constraint) number(v cdc.Value) (float64, bool) {
	switch v.Kind {
	case cdc.KindNumber:
		return v.Num, c.Kind == cdc.KindNumber
	case cdc.KindBool:
		return boolNum(v.Bool), c.Kind == cdc.KindBool
	case cdc.KindDate, cdc.KindDateTime, cdc.KindString:
		if c.Kind != cdc.KindDate && c.Kind != cdc.KindDateTime {
			return 0, false
		}
		ms, err := parseStored(v.Str)
		return float64(ms), err == nil
	}
	return 0, false
}

func parseStored(s string) (int64, error) {
	if len(s) == len(cdc.DateLayout) {
		t, err := time.Parse(cdc.DateLayout, s)
		return t.UnixMilli(), err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t.UnixMilli(), err
}
