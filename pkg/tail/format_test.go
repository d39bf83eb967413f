package tail

import "testing"

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]string
		want   string
	}{
		{"added", map[string]string{"trigger": "added_to_opportunity", "occurred_at": "2026-11-28T16:40:41.123Z", "person_id": "0038c000000R5JtAAK",
			"opportunity_id": "0068c0000004fS0AAI", "reason": "contact_role_created", "role": "Decision Maker", "is_primary": "true", "opportunity": `{"Name":"Acme - 200 seats"}`},
			"16:40:41.123  added      0038c000000R5JtAAK  0068c0000004fS0AAI  contact_role_created (Decision Maker, primary)  [Acme - 200 seats]"},
		{"removed without role or snapshot", map[string]string{"trigger": "removed_from_opportunity", "occurred_at": "2026-11-28T16:40:41.123Z", "person_id": "0038c000000R5JtAAK",
			"opportunity_id": "0068c0000004fS0AAI", "reason": "opportunity_deleted", "role": "", "is_primary": "false", "opportunity": "null"},
			"16:40:41.123  removed    0038c000000R5JtAAK  0068c0000004fS0AAI  opportunity_deleted (no role)"},
		{"updated", map[string]string{"trigger": "opportunity_updated", "occurred_at": "2026-11-28T16:40:41.123Z", "person_id": "0038c000000R5JtAAK",
			"opportunity_id": "0068c0000004fS0AAI", "field": "StageName", "old_value": `"Prospecting"`, "new_value": `"Closed Won"`},
			`16:40:41.123  updated    0038c000000R5JtAAK  0068c0000004fS0AAI  StageName: "Prospecting" → "Closed Won"`},
		{"campaign", map[string]string{"campaign_id": "big-deals", "campaign_version": "3", "trigger": "added_to_opportunity", "occurred_at": "2026-11-28T16:40:41.123Z", "person_id": "0038c000000R5JtAAK",
			"opportunity_id": "0068c0000004fS0AAI", "reason": "contact_role_created", "role": "Evaluator", "is_primary": "false"},
			"16:40:41.123  added      0038c000000R5JtAAK  0068c0000004fS0AAI  campaign big-deals v3: contact_role_created (Evaluator)"},
		{"dead letter", map[string]string{"topic": "salesforce.OpportunityChangeEvent", "partition": "3", "offset": "1207", "stage": "decode",
			"reason": "schema_not_found", "error": "no schema 0Xx", "at": "2026-11-28T16:40:42Z"},
			"16:40:42.000  dlq                                                salesforce.OpportunityChangeEvent/3@1207 schema_not_found: no schema 0Xx"},
		{"resync", map[string]string{"entity": "Opportunity", "record_ids": `["006*"]`, "change_type": "GAP_OVERFLOW", "commit_timestamp": "2026-11-28T16:40:41.123Z"},
			`16:40:41.123  resync                                             Opportunity GAP_OVERFLOW ["006*"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Line(Entry{Values: tc.values}); got != tc.want {
				t.Errorf("Line =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	got := JSON(Entry{Stream: "oppsync:{o}:dlq", ID: "1-0", Values: map[string]string{"reason": "too_large", "at": "x"}})
	want := `{"stream":"oppsync:{o}:dlq","id":"1-0","fields":{"at":"x","reason":"too_large"}}`
	if got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}
