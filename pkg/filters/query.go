package filters

import (
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Filter names (CONTRACT §6).
const (
	HasOpportunity     = "has_opportunity"
	WasAdded           = "was_added_to_opportunity"
	WasRemoved         = "was_removed_from_opportunity"
	Updated            = "opportunity_updated"
	NumberOfOpps       = "number_of_opportunities"
	TotalAmount        = "total_opportunity_amount"
	TotalExpected      = "total_expected_revenue"
	DefaultLimit   int = 100
	MaxLimit       int = 10000
)

// Query is a parsed, validated person query.
type Query struct {
	Filters []*Filter
	// Any is true for "match": "any"; false means every filter must hold.
	Any bool
	// Logic, when set, combines the filters instead of Any (CONTRACT §8).
	Logic *Logic
	// Limit is the page size (1..MaxLimit, DefaultLimit when absent).
	Limit int
	// Cursor is the opaque cursor of the request, "" for the first page;
	// After is the person id it resumes after.
	Cursor, After string
	// Now is the clock Parse resolved "within" and "in_past" against.
	Now time.Time
}

// Filter is one parsed filter.
type Filter struct {
	Name        string
	Not         bool
	Constraints []*Constraint

	// Activity filters: the commit-time window [Since, Until] in ms since
	// the epoch, MinTimes the entries needed (≥1), Field the updated field
	// ("" = any) for opportunity_updated.
	Since, Until int64
	MinTimes     int
	Field        string

	// Aggregate filters: the comparison of the person's total; with
	// Constraints, the total runs over the opportunities satisfying them.
	Agg *Constraint

	within time.Duration // the "within" of an activity window, 0 without

	hasRoleConstraint bool
}

// IsActivity reports whether the filter reads the activity log.
func (f *Filter) IsActivity() bool {
	return f.Name == WasAdded || f.Name == WasRemoved || f.Name == Updated
}

// IsAggregate reports whether the filter compares a person's totals.
func (f *Filter) IsAggregate() bool {
	return f.Name == NumberOfOpps || f.Name == TotalAmount || f.Name == TotalExpected
}

// NeedsActivity reports whether evaluating q needs Person.Activity.
func (q *Query) NeedsActivity() bool {
	for _, f := range q.Filters {
		if f.IsActivity() {
			return true
		}
	}
	return false
}

// ActivityWindow returns the commit-time range (ms) covering every activity
// filter of q; ok is false when q has none.
func (q *Query) ActivityWindow() (since, until int64, ok bool) {
	for _, f := range q.Filters {
		if !f.IsActivity() {
			continue
		}
		if !ok || f.Since < since {
			since = f.Since
		}
		if !ok || f.Until > until {
			until = f.Until
		}
		ok = true
	}
	return since, until, ok
}

// Constraint is one parsed comparison.
type Constraint struct {
	Field string
	Op    string
	// Kind and SalesforceType describe the compared field.
	Kind           cdc.Kind
	SalesforceType string

	col   int       // column of an opportunity field (-1 for pseudo-fields)
	strs  []string  // is/is_not on strings (lower-cased), contains, starts_with
	nums  []float64 // numbers, bools (0/1), dates and date-times (ms)
	since int64     // in_past: lower bound (ms); the upper bound is Query.Now
	now   int64
	past  time.Duration // in_past: the duration
}

// maxMillis is "unbounded" for Until.
const maxMillis = int64(1) << 62

// At returns a copy of q whose relative times are measured from now: each
// "within" window becomes [now − within, now] and each "in_past" constraint
// [now − duration, now]. Absolute since/until stay as parsed. q itself is
// not changed, so one parsed query serves evaluations at many instants
// (a campaign's filters at each trigger entry's occurred_at).
func (q *Query) At(now time.Time) *Query {
	c := *q
	c.Now = now
	c.Filters = make([]*Filter, len(q.Filters))
	ms := now.UnixMilli()
	for i, f := range q.Filters {
		g := *f
		if g.within > 0 {
			g.Since, g.Until = ms-g.within.Milliseconds(), min(f.Until, ms)
		}
		g.Constraints = make([]*Constraint, len(f.Constraints))
		for j, k := range f.Constraints {
			g.Constraints[j] = k.at(ms)
		}
		c.Filters[i] = &g
	}
	return &c
}

// at returns c with its in_past window measured from ms (c itself when it
// has none).
func (c *Constraint) at(ms int64) *Constraint {
	if c.Op != OpInPast {
		return c
	}
	d := *c
	d.now, d.since = ms, ms-c.past.Milliseconds()
	return &d
}
