package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
)

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// checkTimeout bounds one readiness check.
const checkTimeout = 2 * time.Second

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	names := make([]string, 0, len(s.deps.Checks))
	for n := range s.deps.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	failing := map[string]string{}
	var first string
	for _, n := range names {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		err := s.deps.Checks[n](ctx)
		cancel()
		if err != nil {
			failing[n] = err.Error()
			if first == "" {
				first = n
			}
		}
	}
	if first != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "not ready: " + first, "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// failed answers a storage or timeout error (never with record data).
func (s *Server) failed(w http.ResponseWriter, r *http.Request, err error) {
	var un interface{ Unavailable() bool }
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "the request timed out")
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "the request was canceled")
	case errors.As(err, &un) && un.Unavailable():
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		s.log.Error().Err(err).Str("path", r.URL.Path).Msg("request failed")
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
}

type roleJSON struct {
	ContactRoleID string `json:"contact_role_id"`
	PersonID      string `json:"person_id,omitempty"`
	Role          string `json:"role"`
	IsPrimary     bool   `json:"is_primary"`
}

type personOppJSON struct {
	OpportunityID string               `json:"opportunity_id"`
	Roles         []roleJSON           `json:"roles"`
	Fields        map[string]cdc.Value `json:"fields"`
}

type personJSON struct {
	PersonID      string          `json:"person_id"`
	Currency      string          `json:"currency"`
	Count         int             `json:"number_of_opportunities"`
	Amount        float64         `json:"total_opportunity_amount"`
	Expected      float64         `json:"total_expected_revenue"`
	Opportunities []personOppJSON `json:"opportunities"`
}

// personView is what the JSON and the HTML page of a person show.
func (s *Server) personView(r *http.Request) (*personJSON, []*filters.Opportunity, int, error) {
	id := r.PathValue("personId")
	if !cdc.ValidID(id) {
		return nil, nil, http.StatusNotFound, nil // never seen: no Salesforce id reaches the replica
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	opps, ok, err := s.deps.Queries.PersonOpportunities(ctx, id)
	if err != nil {
		return nil, nil, 0, err
	}
	if !ok {
		return nil, nil, http.StatusNotFound, nil
	}
	t := filters.TotalsOf(id, opps)
	out := &personJSON{PersonID: id, Currency: s.deps.Currency, Count: t.Count, Amount: t.Amount, Expected: t.Expected,
		Opportunities: []personOppJSON{}}
	for _, o := range opps {
		po := personOppJSON{OpportunityID: o.ID, Roles: []roleJSON{}, Fields: o.Fields}
		if po.Fields == nil {
			po.Fields = map[string]cdc.Value{}
		}
		for _, rl := range filters.PersonRoles(o, id) {
			po.Roles = append(po.Roles, roleJSON{ContactRoleID: rl.ID, Role: rl.Role, IsPrimary: rl.IsPrimary})
		}
		out.Opportunities = append(out.Opportunities, po)
	}
	return out, opps, http.StatusOK, nil
}

func (s *Server) personOpportunities(w http.ResponseWriter, r *http.Request) {
	p, _, code, err := s.personView(r)
	switch {
	case err != nil:
		s.failed(w, r, err)
	case code == http.StatusNotFound:
		writeError(w, http.StatusNotFound, "person not found")
	default:
		writeJSON(w, http.StatusOK, p)
	}
}

type opportunityJSON struct {
	OpportunityID string               `json:"opportunity_id"`
	Deleted       bool                 `json:"deleted"`
	Stale         bool                 `json:"stale"`
	Fields        map[string]cdc.Value `json:"fields"`
	ContactRoles  []roleJSON           `json:"contact_roles"`
}

func (s *Server) opportunity(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !cdc.ValidID(id) {
		writeError(w, http.StatusNotFound, "opportunity not found") // never seen: no Salesforce id reaches the replica
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	o, ok, err := s.deps.Queries.Opportunity(ctx, id)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "opportunity not found")
		return
	}
	out := opportunityJSON{OpportunityID: o.ID, Deleted: o.Known && o.Deleted, Stale: o.Stale, Fields: o.Fields, ContactRoles: []roleJSON{}}
	if out.Fields == nil {
		out.Fields = map[string]cdc.Value{}
	}
	for _, rl := range o.Roles {
		out.ContactRoles = append(out.ContactRoles, roleJSON{ContactRoleID: rl.ID, PersonID: rl.ContactID, Role: rl.Role, IsPrimary: rl.IsPrimary})
	}
	writeJSON(w, http.StatusOK, out)
}

type constraintJSON struct {
	Entity         string `json:"entity"`
	Field          string `json:"field"`
	Type           string `json:"type"`
	SalesforceType string `json:"salesforce_type"`
}

func (s *Server) constraints(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	cat, err := s.deps.Queries.Catalog(ctx)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	out := []constraintJSON{}
	for _, f := range cat.Fields() {
		out = append(out, constraintJSON{Entity: f.Entity, Field: f.Name, Type: f.Kind.String(), SalesforceType: f.SalesforceType})
	}
	writeJSON(w, http.StatusOK, out)
}

type queryJSON struct {
	PersonIDs  []string `json:"person_ids"`
	NextCursor string   `json:"next_cursor"`
}

func (s *Server) query(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	cat, err := s.deps.Queries.Catalog(ctx)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	q, err := filters.Parse(body, cat, s.cfg.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ids, next, err := s.deps.Queries.Query(ctx, q)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, queryJSON{PersonIDs: ids, NextCursor: next})
}
