package synth

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

var testStart = time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC)

// brief renders an entry as "trigger person opp role reason field".
func brief(e Expected) string {
	short := func(id string) string {
		switch id {
		case opp1:
			return "opp1"
		case opp2:
			return "opp2"
		case contact1:
			return "c1"
		case contact2:
			return "c2"
		case role1:
			return "r1"
		case role2:
			return "r2"
		}
		return id
	}
	s := strings.TrimSuffix(strings.TrimSuffix(e.Trigger, "_opportunity"), "_to") // added / removed_from / opportunity_updated
	s = strings.TrimSuffix(s, "_from")
	out := fmt.Sprintf("%s %s %s", s, short(e.PersonID), short(e.OpportunityID))
	if e.ContactRoleID != "" {
		out += " " + short(e.ContactRoleID) + " " + e.Reason
	}
	if e.Field != "" {
		out += " " + e.Field
	}
	return out
}

func TestOracleRules(t *testing.T) {
	type step struct {
		ch   func(s *Script) Change
		want []string // brief entries of this change, sorted
	}
	created := step{func(s *Script) Change {
		return s.OpportunityCreated(opp1, append(Stages[0].Fields(), F("Amount", cdc.Number(5000)), F("ContactId", cdc.String(contact1)))...)
	}, nil}
	addR1 := step{func(s *Script) Change { return s.ContactRoleAdded(role1, opp1, contact1, "") }, []string{"added c1 opp1 r1 contact_role_created"}}
	addR2 := step{func(s *Script) Change { return s.ContactRoleAdded(role2, opp1, contact2, "Evaluator") }, []string{"added c2 opp1 r2 contact_role_created"}}
	tests := []struct {
		name  string
		steps []step
	}{
		{"create alone emits nothing", []step{created}},
		{"role created on live opportunity", []step{created, addR1}},
		{"update fans out per person and changed field", []step{created, addR1, addR2,
			{func(s *Script) Change { return s.StageChanged(opp1, "Needs Analysis") }, []string{
				"opportunity_updated c1 opp1 LastStageChangeDate", "opportunity_updated c1 opp1 Probability", "opportunity_updated c1 opp1 StageName",
				"opportunity_updated c2 opp1 LastStageChangeDate", "opportunity_updated c2 opp1 Probability", "opportunity_updated c2 opp1 StageName"}}}},
		{"two roles of one person: one updated entry per field", []step{created, addR1,
			{func(s *Script) Change { return s.ContactRoleAdded(role2, opp1, contact1, "Evaluator") }, []string{"added c1 opp1 r2 contact_role_created"}},
			{func(s *Script) Change { return s.AmountChanged(opp1, 7000) }, []string{"opportunity_updated c1 opp1 Amount"}}}},
		{"unchanged value and ignored fields emit nothing", []step{created, addR1,
			{func(s *Script) Change {
				return s.OpportunityUpdated(opp1, F("Amount", cdc.Number(5000)), F("LastModifiedById", cdc.String("0058c00000ScRiPTAA")))
			}, nil}}},
		{"update without people emits nothing", []step{created,
			{func(s *Script) Change { return s.AmountChanged(opp1, 9000) }, nil}}},
		{"role deleted", []step{created, addR1, addR2,
			{func(s *Script) Change { return s.ContactRoleRemoved(role2) }, []string{"removed c2 opp1 r2 contact_role_deleted"}},
			{func(s *Script) Change { return s.AmountChanged(opp1, 1) }, []string{"opportunity_updated c1 opp1 Amount"}},
			{func(s *Script) Change { return s.ContactRoleRemoved(role2) }, nil},
			{func(s *Script) Change { return s.ContactRoleUndeleted(role2) }, []string{"added c2 opp1 r2 contact_role_undeleted"}}}},
		{"contact changed", []step{created, addR1, addR2,
			{func(s *Script) Change { return s.ContactChanged(role2, contact1) }, []string{"added c1 opp1 r2 contact_changed", "removed c2 opp1 r2 contact_changed"}},
			{func(s *Script) Change { return s.RoleChanged(role2, "Other") }, nil}}},
		{"opportunity deleted and undeleted", []step{created, addR1, addR2,
			{func(s *Script) Change { return s.ContactRoleRemoved(role2) }, []string{"removed c2 opp1 r2 contact_role_deleted"}},
			{func(s *Script) Change { return s.OpportunityDeleted(opp1) }, []string{"removed c1 opp1 r1 opportunity_deleted"}},
			{func(s *Script) Change { return s.ContactRoleAdded("00K8c00000Rl003AAA", opp1, contact2, "") }, nil},
			{func(s *Script) Change { return s.ContactChanged(role1, contact2) }, nil},
			{func(s *Script) Change { return s.OpportunityUndeleted(opp1) }, []string{
				"added c2 opp1 00K8c00000Rl003AAA opportunity_undeleted", "added c2 opp1 r1 opportunity_undeleted"}}}},
		{"gap emits nothing", []step{created, addR1,
			{func(s *Script) Change { return s.Gap(cdc.EntityOpportunity, opp1, opp1) }, nil}}},
		{"multi-record event: each record is its own source", []step{created, addR1,
			{func(s *Script) Change { return s.OpportunityCreated(opp2, Stages[0].Fields()...) }, nil},
			{func(s *Script) Change { return s.ContactRoleAdded(role2, opp2, contact2, "") }, []string{"added c2 opp2 r2 contact_role_created"}},
			{func(s *Script) Change {
				return s.OpportunitiesUpdated([]string{opp1, opp2}, F("StageName", cdc.String("Qualification")))
			},
				[]string{"opportunity_updated c1 opp1 StageName", "opportunity_updated c2 opp2 StageName"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewScript(testStart)
			o := NewOracle("org1", nil)
			total := 0
			for i, st := range tt.steps {
				ch := st.ch(s)
				got := o.Apply(ch)
				total += len(got)
				var briefs []string
				for _, e := range got {
					briefs = append(briefs, brief(e))
					var rec string
					if e.Trigger == cdc.TriggerUpdated || e.Reason == ReasonOppDeleted || e.Reason == ReasonOppUndeleted {
						rec = e.OpportunityID
					} else {
						rec = e.ContactRoleID
					}
					if want := cdc.EventID("org1", ch.Entity, rec, ch.Version, e.Trigger, e.PersonID, e.ContactRoleID, e.Field); e.EventID != want {
						t.Errorf("step %d: %s has event id %s, want %s", i, brief(e), e.EventID, want)
					}
					if !e.At.Equal(time.UnixMilli(ch.Version.CommitTimestamp)) {
						t.Errorf("step %d: At = %v, want the commit time", i, e.At)
					}
				}
				sort.Strings(briefs)
				if strings.Join(briefs, "\n") != strings.Join(st.want, "\n") {
					t.Errorf("step %d (%s %s):\n got %q\nwant %q", i, ch.Type, ch.Entity, briefs, st.want)
				}
			}
			if len(o.Expected()) != total {
				t.Errorf("Expected() has %d entries, the steps returned %d", len(o.Expected()), total)
			}
		})
	}
}

func TestOracleTruth(t *testing.T) {
	s := NewScript(testStart)
	o := NewOracle("org1", nil)
	for _, ch := range []Change{
		s.OpportunityCreated(opp1, F("ContactId", cdc.String(contact1)), F("Amount", cdc.Number(100))),
		s.ContactRoleAdded(role1, opp1, contact1, ""),
		s.ContactRoleAdded(role2, opp1, contact2, "Evaluator"),
		s.OpportunityUpdated(opp1, F("Amount", cdc.Null)),
		s.ContactRoleRemoved(role2),
	} {
		o.Apply(ch)
	}
	tr := o.Truth()
	op, ok := tr.Opportunity(opp1)
	if !ok || op.Deleted {
		t.Fatalf("opportunity missing or deleted: %+v", op)
	}
	if _, has := op.Fields["Amount"]; has {
		t.Error("nulled Amount still in the truth")
	}
	want := []TruthRole{
		{ID: role1, OpportunityID: opp1, ContactID: contact1, Primary: true},
		{ID: role2, OpportunityID: opp1, ContactID: contact2, Role: "Evaluator", Deleted: true},
	}
	if fmt.Sprint(tr.ContactRoles) != fmt.Sprint(want) {
		t.Errorf("roles\n got %+v\nwant %+v", tr.ContactRoles, want)
	}
	if len(tr.Expected) != 5 {
		t.Errorf("%d expected entries, want 5 (2 added, 2 updated Amount, 1 removed)", len(tr.Expected))
	}
}
