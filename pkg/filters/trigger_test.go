package filters

import (
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

func triggerOpp() *Opportunity {
	return &Opportunity{ID: "006A", Known: true, Fields: map[string]cdc.Value{
		"Name": cdc.String("Acme - Widgets"), "StageName": cdc.String("Closed Won"),
		"Amount": cdc.Number(60000), "IsClosed": cdc.Bool(false), "Region__c": cdc.String("EMEA"),
		"CloseDate":           {Kind: cdc.KindDate, Str: "2026-12-15"},
		"LastStageChangeDate": {Kind: cdc.KindDateTime, Str: "2026-11-27T10:00:00.000Z"},
	}}
}

func TestTriggerMatch(t *testing.T) {
	cat := testCatalog()
	at := now.UnixMilli()
	added := &Entry{Kind: cdc.TriggerAdded, Opportunity: triggerOpp(), Reason: "contact_role_created", At: at,
		Role: &Role{ID: "00KA1", ContactID: me, Role: "Decision Maker", IsPrimary: true}}
	addedNull := &Entry{Kind: cdc.TriggerAdded, Reason: "contact_role_created", At: at,
		Role: &Role{ID: "00KA1", ContactID: me, Role: "Decision Maker"}}
	removed := &Entry{Kind: cdc.TriggerRemoved, Opportunity: triggerOpp(), Reason: "opportunity_deleted", At: at,
		Role: &Role{ID: "00KA1", ContactID: me, Role: "Evaluator"}}
	updated := &Entry{Kind: cdc.TriggerUpdated, Opportunity: triggerOpp(), Field: "StageName", At: at,
		Old: cdc.String("Negotiation/Review"), New: cdc.String("Closed Won"),
		Roles: []Role{{ID: "00KA1", Role: "Evaluator", IsPrimary: true}, {ID: "00KA2", Role: "Decision Maker"}}}
	updatedAmount := &Entry{Kind: cdc.TriggerUpdated, Opportunity: triggerOpp(), Field: "Amount", At: at,
		Old: cdc.Number(40000), New: cdc.Number(60000), Roles: []Role{{ID: "00KA1", Role: "Evaluator"}}}
	updatedDate := &Entry{Kind: cdc.TriggerUpdated, Opportunity: triggerOpp(), Field: "CloseDate", At: at,
		Old: cdc.Value{Kind: cdc.KindDate, Str: "2026-12-31"}, New: cdc.Value{Kind: cdc.KindDate, Str: "2026-12-15"}}
	tests := []struct {
		name, trigger string
		entry         *Entry
		want          bool
	}{
		// added / removed: kind, opportunity fields of every kind, Role, IsPrimary, reason.
		{"added bare", `{"trigger":"added_to_opportunity"}`, added, true},
		{"other kind", `{"trigger":"removed_from_opportunity"}`, added, false},
		{"number gte", `{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"gte","value":50000}]}`, added, true},
		{"number lt", `{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"lt","value":50000}]}`, added, false},
		{"boolean", `{"trigger":"added_to_opportunity","constraints":[{"field":"IsClosed","op":"is","value":false}]}`, added, true},
		{"boolean is_not", `{"trigger":"added_to_opportunity","constraints":[{"field":"IsClosed","op":"is_not","value":false}]}`, added, false},
		{"custom picklist ignores case", `{"trigger":"added_to_opportunity","constraints":[{"field":"Region__c","op":"is","value":"emea"}]}`, added, true},
		{"text contains", `{"trigger":"added_to_opportunity","constraints":[{"field":"Name","op":"contains","value":"widget"}]}`, added, true},
		{"date between", `{"trigger":"added_to_opportunity","constraints":[{"field":"CloseDate","op":"between","value":["2026-12-01","2026-12-31"]}]}`, added, true},
		{"datetime in_past of occurred_at", `{"trigger":"added_to_opportunity","constraints":[{"field":"LastStageChangeDate","op":"in_past","value":"27h"}]}`, added, true},
		{"datetime in_past too short", `{"trigger":"added_to_opportunity","constraints":[{"field":"LastStageChangeDate","op":"in_past","value":"25h"}]}`, added, false},
		{"empty field", `{"trigger":"added_to_opportunity","constraints":[{"field":"NextStep","op":"is_empty"}]}`, added, true},
		{"role and primary", `{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"IsPrimary","op":"is","value":true}]}`, added, true},
		{"all constraints", `{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":70000}]}`, added, false},
		{"reason", `{"trigger":"added_to_opportunity","constraints":[{"field":"reason","op":"is","value":"contact_role_created"}]}`, added, true},
		{"reason is_not", `{"trigger":"removed_from_opportunity","constraints":[{"field":"reason","op":"is_not","value":["opportunity_deleted"]}]}`, removed, false},
		{"removed role", `{"trigger":"removed_from_opportunity","constraints":[{"field":"Role","op":"is","value":"Evaluator"}]}`, removed, true},
		{"null snapshot fails field constraints", `{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"gte","value":0}]}`, addedNull, false},
		{"null snapshot is_empty", `{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"is_empty"}]}`, addedNull, true},
		{"null snapshot role", `{"trigger":"added_to_opportunity","constraints":[{"field":"Role","op":"is","value":"decision maker"}]}`, addedNull, true},
		// updated: field, old/new typed by the field, roles on the same role.
		{"updated any field", `{"trigger":"opportunity_updated"}`, updatedAmount, true},
		{"updated field", `{"trigger":"opportunity_updated","field":"StageName"}`, updated, true},
		{"updated other field", `{"trigger":"opportunity_updated","field":"StageName"}`, updatedAmount, false},
		{"new_value string", `{"trigger":"opportunity_updated","field":"StageName","constraints":[{"field":"new_value","op":"is","value":"closed won"}]}`, updated, true},
		{"old_value string", `{"trigger":"opportunity_updated","field":"StageName","constraints":[{"field":"old_value","op":"starts_with","value":"Closed"}]}`, updated, false},
		{"new_value number", `{"trigger":"opportunity_updated","field":"Amount","constraints":[{"field":"new_value","op":"gt","value":50000},{"field":"old_value","op":"lt","value":50000}]}`, updatedAmount, true},
		{"new_value date", `{"trigger":"opportunity_updated","field":"CloseDate","constraints":[{"field":"new_value","op":"before","value":"2026-12-20"}]}`, updatedDate, true},
		{"changed field", `{"trigger":"opportunity_updated","constraints":[{"field":"field","op":"is","value":["Amount","CloseDate"]}]}`, updatedAmount, true},
		{"changed field no", `{"trigger":"opportunity_updated","constraints":[{"field":"field","op":"is","value":["Amount","CloseDate"]}]}`, updated, false},
		{"roles: one role has both", `{"trigger":"opportunity_updated","constraints":[{"field":"Role","op":"is","value":"Evaluator"},{"field":"IsPrimary","op":"is","value":true}]}`, updated, true},
		{"roles: not on the same role", `{"trigger":"opportunity_updated","constraints":[{"field":"Role","op":"is","value":"Decision Maker"},{"field":"IsPrimary","op":"is","value":true}]}`, updated, false},
		{"roles: none", `{"trigger":"opportunity_updated","constraints":[{"field":"Role","op":"is_empty"}]}`, updatedDate, false},
		{"updated snapshot field", `{"trigger":"opportunity_updated","constraints":[{"field":"Region__c","op":"is","value":"EMEA"}]}`, updated, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTrigger([]byte(tt.trigger), cat, TriggerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Match(tt.entry); got != tt.want {
				t.Fatalf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseTriggerErrors(t *testing.T) {
	cat := testCatalog()
	opts := TriggerOptions{Ignored: []string{"LastModifiedDate", "NextStep"}}
	tests := []struct{ name, trigger, want string }{
		{"not an object", `[]`, `: not a JSON object`},
		{"missing trigger", `{}`, `: missing "trigger"`},
		{"unknown trigger", `{"trigger":"added"}`, `.trigger: unknown trigger "added" (want added_to_opportunity, removed_from_opportunity or opportunity_updated)`},
		{"field on added", `{"trigger":"added_to_opportunity","field":"Amount"}`, `: unknown key "field" (trigger added_to_opportunity)`},
		{"unknown key", `{"trigger":"opportunity_updated","within":"1h"}`, `: unknown key "within" (trigger opportunity_updated)`},
		{"unknown changed field", `{"trigger":"opportunity_updated","field":"Stage"}`, `.field: unknown field "Stage"`},
		{"hidden changed field", `{"trigger":"opportunity_updated","field":"Description"}`, `.field: unknown field "Description"`},
		{"ignored changed field", `{"trigger":"opportunity_updated","field":"NextStep"}`, `.field: "NextStep" is in triggers.ignore_fields: it never gets an entry`},
		{"unknown constraint field", `{"trigger":"added_to_opportunity","constraints":[{"field":"Amount","op":"gt","value":1},{"field":"Amout","op":"gt","value":1}]}`, `.constraints[1]: unknown field "Amout"`},
		{"reason on updated", `{"trigger":"opportunity_updated","constraints":[{"field":"reason","op":"is","value":"contact_changed"}]}`, `.constraints[0]: "reason" applies only to added_to_opportunity and removed_from_opportunity`},
		{"unknown reason", `{"trigger":"added_to_opportunity","constraints":[{"field":"reason","op":"is","value":"opportunity_deleted"}]}`, `.constraints[0].value: "opportunity_deleted" is not a reason of added_to_opportunity (contact_role_created, contact_role_undeleted, contact_changed, opportunity_undeleted)`},
		{"new_value on added", `{"trigger":"added_to_opportunity","constraints":[{"field":"new_value","op":"is","value":1}]}`, `.constraints[0]: "new_value" applies only to opportunity_updated`},
		{"old_value without field", `{"trigger":"opportunity_updated","constraints":[{"field":"old_value","op":"is","value":1}]}`, `.constraints[0]: "old_value" needs the trigger's "field"`},
		{"field on removed", `{"trigger":"removed_from_opportunity","constraints":[{"field":"field","op":"is","value":"Amount"}]}`, `.constraints[0]: "field" applies only to opportunity_updated`},
		{"typed by the changed field", `{"trigger":"opportunity_updated","field":"Amount","constraints":[{"field":"new_value","op":"is","value":"big"}]}`, `.constraints[0].value: "big" is not a number for new_value (Currency)`},
		{"op not for kind", `{"trigger":"added_to_opportunity","constraints":[{"field":"IsPrimary","op":"gt","value":1}]}`, `.constraints[0].op: "gt" does not apply to IsPrimary (boolean)`},
		{"constraints not a list", `{"trigger":"added_to_opportunity","constraints":{}}`, `.constraints: {} is not a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrigger([]byte(tt.trigger), cat, opts)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant  %s", err, tt.want)
			}
		})
	}
}
