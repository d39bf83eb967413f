package api

import (
	"bytes"
	"embed"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
)

//go:embed templates/person.html
var templatesFS embed.FS

var personTmpl = template.Must(template.New("person.html").ParseFS(templatesFS, "templates/person.html"))

// pageRow is one row of the Opportunity Info tab.
type pageRow struct {
	Opp        *filters.Opportunity
	ID         string
	Name       string
	Stage      string
	Amount     string
	CloseDate  string
	Roles      string
	Primary    bool
	LastChange string
}

type pageData struct {
	Person   *personJSON
	Rows     []pageRow
	Currency string
	Amount   string
	Expected string
	// The Activity Log tab: the newest entries, and whether there are more.
	HasActivity bool
	Activity    []activityRow
	MoreActive  bool
}

// activityRow is one row of the Activity Log tab.
type activityRow struct {
	EventID, At, Trigger, Opportunity, Detail string
}

// pageActivity is how many entries the Activity Log tab shows.
const pageActivity = 100

// activityRows renders trigger entries for the Activity Log tab.
func activityRows(entries []map[string]string) []activityRow {
	out := make([]activityRow, 0, len(entries))
	for _, e := range entries {
		r := activityRow{EventID: e["event_id"], At: e["occurred_at"], Trigger: e["trigger"], Opportunity: e["opportunity_id"]}
		switch e["trigger"] {
		case cdc.TriggerUpdated:
			r.Detail = e["field"] + ": " + e["old_value"] + " → " + e["new_value"]
		default:
			role := e["role"]
			if role == "" {
				role = "(no role)"
			}
			r.Detail = e["reason"] + ", " + role
			if e["is_primary"] == "true" {
				r.Detail += ", primary"
			}
		}
		out = append(out, r)
	}
	return out
}

func (s *Server) personPage(w http.ResponseWriter, r *http.Request) {
	p, opps, code, err := s.personView(r)
	switch {
	case err != nil:
		s.failed(w, r, err)
		return
	case code == http.StatusNotFound:
		writeError(w, http.StatusNotFound, "person not found")
		return
	}
	d := pageData{Person: p, Currency: s.deps.Currency, Amount: formatMoney(p.Amount), Expected: formatMoney(p.Expected)}
	for _, o := range opps {
		row := pageRow{Opp: o, ID: o.ID}
		str := func(name string) string {
			if v, ok := o.Fields[name]; ok && !v.IsNull() {
				if v.Kind == cdc.KindNumber {
					return cdc.FormatNumber(v.Num)
				}
				return v.Str
			}
			return ""
		}
		row.Name, row.Stage, row.CloseDate, row.LastChange = str("Name"), str("StageName"), str("CloseDate"), str("LastModifiedDate")
		if v, ok := o.Fields["Amount"]; ok && v.Kind == cdc.KindNumber {
			row.Amount = formatMoney(v.Num)
		}
		var roles []string
		for _, rl := range filters.PersonRoles(o, p.PersonID) {
			name := rl.Role
			if name == "" {
				name = "(no role)"
			}
			roles = append(roles, name)
			row.Primary = row.Primary || rl.IsPrimary
		}
		row.Roles = strings.Join(roles, ", ")
		d.Rows = append(d.Rows, row)
	}
	if s.deps.Activity != nil {
		ctx, cancel := s.ctx(r)
		entries, next, _, err := s.deps.Activity.PersonActivity(ctx, p.PersonID, ActivityQuery{Limit: pageActivity})
		cancel()
		if err != nil {
			s.failed(w, r, err)
			return
		}
		d.HasActivity, d.Activity, d.MoreActive = true, activityRows(entries), next != ""
	}
	var buf bytes.Buffer
	if err := personTmpl.Execute(&buf, d); err != nil {
		s.failed(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// formatMoney renders an amount with two decimals and thousands separators.
func formatMoney(f float64) string {
	s := strconv.FormatFloat(math.Abs(f), 'f', 2, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if f < 0 && s != "0.00" {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String() + "." + frac
}
