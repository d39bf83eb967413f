package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Campaigns manages campaign definitions (CONTRACT §8). Implementations
// block for their storage round trips, honour ctx and are safe for
// concurrent use. Returned definitions are JSON-marshalable documents.
// An error with a method Invalid() bool returning true is the client's
// (400, its text names the culprit); one with Conflict() bool returning
// true is a 409 (campaigns.max reached).
type Campaigns interface {
	// PutCampaign validates body as the definition of campaign id and
	// stores it (an identical definition is left as it is); it returns the
	// stored definition with campaign_id, version and updated_at.
	PutCampaign(ctx context.Context, id string, body []byte) (any, error)
	// GetCampaign returns one definition with qualified_total; ok is false
	// for an unknown id. ListCampaigns returns all, ordered by id.
	GetCampaign(ctx context.Context, id string) (def any, ok bool, err error)
	ListCampaigns(ctx context.Context) ([]any, error)
	// DeleteCampaign forgets a campaign; ok is false for an unknown id.
	DeleteCampaign(ctx context.Context, id string) (ok bool, err error)
}

// ActivityQuery selects a page of a person's activity.
type ActivityQuery struct {
	// Type is a trigger name, "" for every kind.
	Type string
	// Since and Until bound occurred_at (ms since the epoch, inclusive);
	// zero means unbounded.
	Since, Until int64
	// Limit is the page size (1..MaxActivityLimit).
	Limit int
	// Cursor is the opaque cursor of the request ("" = the newest entries).
	Cursor string
}

// Page sizes of GET /v1/people/{id}/activity.
const (
	DefaultActivityLimit = 100
	MaxActivityLimit     = 1000
)

// ActivityLog reads a person's trigger entries within activity.retention,
// newest first by occurred_at. It blocks, honours ctx and is safe for
// concurrent use. ok is false for a person never seen; an error with
// Invalid() bool returning true is a bad cursor (400).
type ActivityLog interface {
	PersonActivity(ctx context.Context, personID string, q ActivityQuery) (entries []map[string]string, next string, ok bool, err error)
}

type campaignsJSON struct {
	Campaigns []any `json:"campaigns"`
}

// clientError answers an error the implementation marked as the client's.
func clientError(w http.ResponseWriter, err error) bool {
	var inv interface{ Invalid() bool }
	var conflict interface{ Conflict() bool }
	switch {
	case errors.As(err, &inv) && inv.Invalid():
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &conflict) && conflict.Conflict():
		writeError(w, http.StatusConflict, err.Error())
	default:
		return false
	}
	return true
}

func (s *Server) campaignsOff(w http.ResponseWriter) bool {
	if s.deps.Campaigns == nil {
		writeError(w, http.StatusServiceUnavailable, "campaigns are not available on this server")
		return true
	}
	return false
}

func (s *Server) putCampaign(w http.ResponseWriter, r *http.Request) {
	if s.campaignsOff(w) {
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	def, err := s.deps.Campaigns.PutCampaign(ctx, r.PathValue("campaignId"), body)
	if err != nil {
		if !clientError(w, err) {
			s.failed(w, r, err)
		}
		return
	}
	writeJSON(w, http.StatusOK, def)
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	if s.campaignsOff(w) {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	def, ok, err := s.deps.Campaigns.GetCampaign(ctx, r.PathValue("campaignId"))
	switch {
	case err != nil:
		s.failed(w, r, err)
	case !ok:
		writeError(w, http.StatusNotFound, "campaign not found")
	default:
		writeJSON(w, http.StatusOK, def)
	}
}

func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request) {
	if s.campaignsOff(w) {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	list, err := s.deps.Campaigns.ListCampaigns(ctx)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	if list == nil {
		list = []any{}
	}
	writeJSON(w, http.StatusOK, campaignsJSON{Campaigns: list})
}

func (s *Server) deleteCampaign(w http.ResponseWriter, r *http.Request) {
	if s.campaignsOff(w) {
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	ok, err := s.deps.Campaigns.DeleteCampaign(ctx, r.PathValue("campaignId"))
	switch {
	case err != nil:
		s.failed(w, r, err)
	case !ok:
		writeError(w, http.StatusNotFound, "campaign not found")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

type activityJSON struct {
	PersonID   string              `json:"person_id"`
	Activity   []map[string]string `json:"activity"`
	NextCursor string              `json:"next_cursor"`
}

func (s *Server) personActivity(w http.ResponseWriter, r *http.Request) {
	if s.deps.Activity == nil {
		writeError(w, http.StatusServiceUnavailable, "the activity log is not available on this server")
		return
	}
	id := r.PathValue("personId")
	if !cdc.ValidID(id) {
		writeError(w, http.StatusNotFound, "person not found") // never seen: no Salesforce id reaches the replica
		return
	}
	q, msg := activityQuery(r)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	entries, next, ok, err := s.deps.Activity.PersonActivity(ctx, id, q)
	switch {
	case err != nil:
		if !clientError(w, err) {
			s.failed(w, r, err)
		}
	case !ok:
		writeError(w, http.StatusNotFound, "person not found")
	default:
		if entries == nil {
			entries = []map[string]string{}
		}
		writeJSON(w, http.StatusOK, activityJSON{PersonID: id, Activity: entries, NextCursor: next})
	}
}

// activityQuery reads the query string; msg names the bad parameter.
func activityQuery(r *http.Request) (ActivityQuery, string) {
	v := r.URL.Query()
	q := ActivityQuery{Limit: DefaultActivityLimit, Type: v.Get("type"), Cursor: v.Get("cursor")}
	switch q.Type {
	case "", cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated:
	default:
		return q, "type: " + strconv.Quote(short(q.Type)) + " is not " + cdc.TriggerAdded + ", " + cdc.TriggerRemoved + " or " + cdc.TriggerUpdated
	}
	for _, k := range []string{"since", "until"} {
		s := v.Get(k)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, k + ": " + strconv.Quote(short(s)) + " is not an RFC 3339 time"
		}
		if k == "since" {
			q.Since = t.UnixMilli()
		} else {
			q.Until = t.UnixMilli()
		}
	}
	if q.Since != 0 && q.Until != 0 && q.Since > q.Until {
		return q, "until: before since"
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxActivityLimit {
			return q, "limit: " + strconv.Quote(short(s)) + " is not an integer from 1 to " + strconv.Itoa(MaxActivityLimit)
		}
		q.Limit = n
	}
	return q, ""
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// readBody reads a capped request body; false means the error was answered.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body: larger than the limit")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "body: could not be read")
		return nil, false
	}
	return body, true
}
