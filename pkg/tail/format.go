package tail

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Header is the column header of the lines Line prints.
var Header = fmt.Sprintf("%-12s  %-9s  %-18s  %-18s  %s", "time", "kind", "person", "opportunity", "what")

// Line renders an entry of any oppsync output stream as one line: trigger
// and campaign entries by their person, opportunity and what happened;
// dead letters by their source position and reason; resync notices by
// their entity and records.
func Line(e Entry) string {
	v := e.Values
	at := v["occurred_at"]
	clock := at
	if t, err := time.Parse(cdc.DateTimeLayout, at); err == nil {
		clock = t.Format("15:04:05.000")
	}
	var what, kind, person, opp string
	switch {
	case v["trigger"] != "":
		person, opp = v["person_id"], v["opportunity_id"]
		kind, what = triggerLine(v)
		if c := v["campaign_id"]; c != "" {
			what = "campaign " + c + " v" + v["campaign_version"] + ": " + what
		}
	case v["stage"] != "": // a dead letter
		kind = "dlq"
		clock = clockOf(v["at"], time.RFC3339)
		what = fmt.Sprintf("%s/%s@%s %s: %s", v["topic"], v["partition"], v["offset"], v["reason"], v["error"])
	case v["entity"] != "": // a resync notice
		kind = "resync"
		clock = clockOf(v["commit_timestamp"], cdc.DateTimeLayout)
		what = fmt.Sprintf("%s %s %s", v["entity"], v["change_type"], v["record_ids"])
	default:
		kind = "entry"
		what = fmt.Sprint(v)
	}
	return strings.TrimRight(fmt.Sprintf("%-12s  %-9s  %-18s  %-18s  %s", clock, kind, person, opp, what), " ")
}

func clockOf(s, layout string) string {
	if t, err := time.Parse(layout, s); err == nil {
		return t.UTC().Format("15:04:05.000")
	}
	return s
}

func triggerLine(v map[string]string) (kind, what string) {
	switch v["trigger"] {
	case cdc.TriggerAdded, cdc.TriggerRemoved:
		kind = "added"
		if v["trigger"] == cdc.TriggerRemoved {
			kind = "removed"
		}
		role := v["role"]
		if role == "" {
			role = "no role"
		}
		primary := ""
		if v["is_primary"] == "true" {
			primary = ", primary"
		}
		what = fmt.Sprintf("%s (%s%s)", v["reason"], role, primary)
	default:
		kind = "updated"
		what = fmt.Sprintf("%s: %s → %s", v["field"], v["old_value"], v["new_value"])
	}
	var name struct {
		Name string `json:"Name"`
	}
	_ = json.Unmarshal([]byte(v["opportunity"]), &name)
	if name.Name != "" {
		what += "  [" + name.Name + "]"
	}
	return kind, what
}

// JSON renders an entry as one JSON object: {"stream", "id", "fields"}.
func JSON(e Entry) string {
	b, _ := json.Marshal(struct {
		Stream string            `json:"stream"`
		ID     string            `json:"id"`
		Fields map[string]string `json:"fields"`
	}{e.Stream, e.ID, e.Values})
	return string(b)
}
