package filters

import (
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// FromGroup converts an opportunity group of the replica into the form the
// filters evaluate: fields as trigger entries and the API show them
// (amounts converted by cur, ExpectedRevenue derived) and the live roles.
func FromGroup(g *triggers.Group, cur triggers.Currency) *Opportunity {
	return fromGroup(g, cur, false)
}

// CompactFromGroup is FromGroup followed by Compact, without building the
// Fields map in between.
func CompactFromGroup(g *triggers.Group, cur triggers.Currency) *Opportunity {
	o := fromGroup(g, cur, true)
	o.Compact()
	return o
}

func fromGroup(g *triggers.Group, cur triggers.Currency, compact bool) *Opportunity {
	o := &Opportunity{ID: g.Opp.ID, Known: g.Opp.Known, Deleted: g.Opp.Deleted, Stale: g.Opp.Stale}
	switch {
	case g.Opp.Known && compact:
		o.Fields = cur.Snapshot(&g.Opp) // Compact reads it once: no interned copy
	case g.Opp.Known:
		snap := cur.Snapshot(&g.Opp)
		o.Fields = make(map[string]cdc.Value, len(snap))
		for k, val := range snap {
			o.Fields[Intern(k)] = val
		}
	default:
		o.Fields = map[string]cdc.Value{}
	}
	for _, r := range g.SortedRoles() {
		if r.Deleted || r.ContactID == "" {
			continue
		}
		o.Roles = append(o.Roles, Role{
			ID: r.ID, ContactID: r.ContactID, Role: r.Role, IsPrimary: r.IsPrimaryFor(&g.Opp), Pending: r.Pending,
		})
	}
	return o
}
