package triggers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/internal/cdctest"
	"github.com/oppsync/oppsync/pkg/cdc"
)

var testCfg = &Config{
	Org:                  "org1",
	IgnoreFields:         map[string]bool{"LastModifiedDate": true},
	PendingTimeoutMillis: 30000,
}

type step struct {
	entity string
	ct     cdc.ChangeType
	id     string
	ts     int64
	fields []cdc.Field
}

func opp(ct cdc.ChangeType, id string, ts int64, kv ...any) step {
	return step{cdc.EntityOpportunity, ct, id, ts, cdctest.Fields(kv...)}
}

func ocr(ct cdc.ChangeType, id string, ts int64, kv ...any) step {
	return step{cdc.EntityContactRole, ct, id, ts, cdctest.Fields(kv...)}
}

func (s step) change() Change {
	return Change{
		Event: &cdc.Event{
			Entity: s.entity, ChangeType: s.ct, RecordIDs: []string{s.id},
			Version: cdc.Version{CommitTimestamp: s.ts, CommitNumber: s.ts, SequenceNumber: 1},
			Header:  cdc.EventHeader{TransactionKey: fmt.Sprint("tx", s.ts), SequenceNumber: 1},
			Fields:  s.fields,
		},
		RecordID:  s.id,
		NowMillis: 1000,
	}
}

// render turns triggers into compact lines that a reader can check by eye.
func render(ts []Trigger) []string {
	var out []string
	for _, t := range ts {
		switch t.Kind {
		case cdc.TriggerUpdated:
			var roles []string
			for _, r := range t.Roles {
				roles = append(roles, fmt.Sprintf("%s/%s/%v", r.ContactRoleID, r.Role, r.IsPrimary))
			}
			out = append(out, fmt.Sprintf("updated %s %s %s %s->%s [%s]", t.PersonID, t.OpportunityID, t.Field, t.Old.JSON(), t.New.JSON(), strings.Join(roles, " ")))
		default:
			kind := "added"
			if t.Kind == cdc.TriggerRemoved {
				kind = "removed"
			}
			snap := ""
			if t.NoSnapshot {
				snap = " nosnap"
			}
			out = append(out, fmt.Sprintf("%s %s %s %s role=%q primary=%v %s%s", kind, t.PersonID, t.OpportunityID, t.ContactRoleID, t.Role, t.IsPrimary, t.Reason, snap))
		}
	}
	return out
}

func TestApplyScenarios(t *testing.T) {
	create := opp(cdc.Create, "006A", 10, "Name", "Big deal", "StageName", "Prospecting", "Amount", 1000, "ContactId", "003P")
	tests := []struct {
		name  string
		steps []step
		want  [][]string // per step
		dup   []int      // steps expected to be duplicates
	}{
		{
			name: "role created on known opportunity, primary from ContactId",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P", "Role", ""),
				ocr(cdc.Create, "00KB", 12, "OpportunityId", "006A", "ContactId", "003Q", "Role", "Decision Maker")},
			want: [][]string{nil,
				{`added 003P 006A 00KA role="" primary=true contact_role_created`},
				{`added 003Q 006A 00KB role="Decision Maker" primary=false contact_role_created`}},
		},
		{
			name: "updated fires once per person per changed field, ignoring ignored and equal fields",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"),
				ocr(cdc.Create, "00KB", 12, "OpportunityId", "006A", "ContactId", "003P", "Role", "Evaluator"),
				opp(cdc.Update, "006A", 13, "StageName", "Closed Won", "Amount", 1000, "LastModifiedDate", "2026-01-01T00:00:00.000Z", "NextStep", "call")},
			want: [][]string{nil, {`added 003P 006A 00KA role="" primary=true contact_role_created`},
				{`added 003P 006A 00KB role="Evaluator" primary=true contact_role_created`},
				{`updated 003P 006A StageName "Prospecting"->"Closed Won" [00KA//true 00KB/Evaluator/true]`,
					`updated 003P 006A NextStep null->"call" [00KA//true 00KB/Evaluator/true]`}},
		},
		{
			name:  "opportunity without roles is stored but belongs to nobody",
			steps: []step{create, opp(cdc.Update, "006A", 13, "StageName", "Qualification")},
			want:  [][]string{nil, nil},
		},
		{
			name: "delete removes everyone, undelete restores them",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"),
				ocr(cdc.Create, "00KB", 12, "OpportunityId", "006A", "ContactId", "003Q", "Role", "Influencer"),
				ocr(cdc.Delete, "00KB", 13),
				opp(cdc.Delete, "006A", 14),
				opp(cdc.Update, "006A", 15, "StageName", "X"),
				opp(cdc.Undelete, "006A", 16, "Name", "Big deal", "StageName", "Prospecting")},
			want: [][]string{nil,
				{`added 003P 006A 00KA role="" primary=true contact_role_created`},
				{`added 003Q 006A 00KB role="Influencer" primary=false contact_role_created`},
				{`removed 003Q 006A 00KB role="Influencer" primary=false contact_role_deleted`},
				{`removed 003P 006A 00KA role="" primary=true opportunity_deleted`},
				nil,
				{`added 003P 006A 00KA role="" primary=true opportunity_undeleted`}},
		},
		{
			name: "contact change is removed plus added; role-only change emits nothing",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003Q", "Role", "Evaluator"),
				ocr(cdc.Update, "00KA", 12, "Role", "Economic Buyer"),
				ocr(cdc.Update, "00KA", 13, "ContactId", "003P")},
			want: [][]string{nil,
				{`added 003Q 006A 00KA role="Evaluator" primary=false contact_role_created`},
				nil,
				{`removed 003Q 006A 00KA role="Economic Buyer" primary=false contact_changed`,
					`added 003P 006A 00KA role="Economic Buyer" primary=true contact_changed`}},
		},
		{
			name: "role waits for its unknown opportunity and is released once it arrives",
			steps: []step{
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P", "Role", "Evaluator"),
				create,
				opp(cdc.Update, "006A", 14, "StageName", "Qualification")},
			want: [][]string{nil,
				{`added 003P 006A 00KA role="Evaluator" primary=true contact_role_created`},
				{`updated 003P 006A StageName "Prospecting"->"Qualification" [00KA/Evaluator/true]`}},
		},
		{
			name:  "redelivered and older events are duplicates",
			steps: []step{create, create, ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"), ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"), opp(cdc.Update, "006A", 20, "StageName", "B"), opp(cdc.Update, "006A", 20, "StageName", "B")},
			want:  [][]string{nil, nil, {`added 003P 006A 00KA role="" primary=true contact_role_created`}, nil, {`updated 003P 006A StageName "Prospecting"->"B" [00KA//true]`}, nil},
			dup:   []int{1, 3, 5},
		},
		{
			name: "an older update never overwrites a newer field value but applies its other fields",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"),
				opp(cdc.Update, "006A", 30, "StageName", "Negotiation"),
				opp(cdc.Update, "006A", 20, "StageName", "Proposal", "Amount", 2000)},
			want: [][]string{nil, {`added 003P 006A 00KA role="" primary=true contact_role_created`},
				{`updated 003P 006A StageName "Prospecting"->"Negotiation" [00KA//true]`},
				{`updated 003P 006A Amount 1000->2000 [00KA//true]`}},
		},
		{
			name: "event IsPrimary wins over ContactId",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003Q", "IsPrimary", true)},
			want: [][]string{nil, {`added 003Q 006A 00KA role="" primary=true contact_role_created`}},
		},
		{
			name: "deleting a pending role cancels its added entry",
			steps: []step{
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"),
				ocr(cdc.Delete, "00KA", 12),
				create},
			want: [][]string{nil, nil, nil},
		},
		{
			name: "role undeleted",
			steps: []step{create,
				ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P"),
				ocr(cdc.Delete, "00KA", 12),
				ocr(cdc.Undelete, "00KA", 13, "OpportunityId", "006A", "ContactId", "003P")},
			want: [][]string{nil, {`added 003P 006A 00KA role="" primary=true contact_role_created`},
				{`removed 003P 006A 00KA role="" primary=true contact_role_deleted`},
				{`added 003P 006A 00KA role="" primary=true contact_role_undeleted`}},
		},
		{
			name:  "gap marks stale and emits nothing",
			steps: []step{create, opp(cdc.GapUpdate, "006A", 12)},
			want:  [][]string{nil, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGroup("006A")
			for i, s := range tt.steps {
				res := Apply(testCfg, g, s.change())
				got := render(res.Triggers)
				if strings.Join(got, "\n") != strings.Join(tt.want[i], "\n") {
					t.Errorf("step %d (%s %s %s): got\n  %s\nwant\n  %s", i, s.entity, s.ct, s.id,
						strings.Join(got, "\n  "), strings.Join(tt.want[i], "\n  "))
				}
				wantDup := false
				for _, d := range tt.dup {
					wantDup = wantDup || d == i
				}
				if res.Duplicate != wantDup {
					t.Errorf("step %d: Duplicate = %v, want %v", i, res.Duplicate, wantDup)
				}
				for _, tr := range res.Triggers {
					if len(tr.EventID) != 32 {
						t.Errorf("step %d: bad event id %q", i, tr.EventID)
					}
				}
			}
		})
	}
}

func TestReleaseExpired(t *testing.T) {
	g := NewGroup("006A")
	s := ocr(cdc.Create, "00KA", 11, "OpportunityId", "006A", "ContactId", "003P", "Role", "Evaluator")
	ch := s.change()
	res := Apply(testCfg, g, ch)
	if len(res.Triggers) != 0 || !g.Roles["00KA"].Pending {
		t.Fatalf("role should be pending, got %v", render(res.Triggers))
	}
	if d := g.NextDeadline(); d != 1000+30000 {
		t.Fatalf("NextDeadline = %d", d)
	}
	if r := ReleaseExpired(testCfg, g, 30999); len(r.Triggers) != 0 || !r.Duplicate {
		t.Fatalf("released before the deadline: %v", render(r.Triggers))
	}
	r := ReleaseExpired(testCfg, g, 31000)
	if got := render(r.Triggers); len(got) != 1 || got[0] != `added 003P 006A 00KA role="Evaluator" primary=false contact_role_created nosnap` {
		t.Fatalf("release at deadline: %v", got)
	}
	// The id is the one the opportunity's arrival would have produced.
	want := cdc.EventID("org1", cdc.EntityContactRole, "00KA", ch.Event.Version, cdc.TriggerAdded, "003P", "00KA", "")
	if r.Triggers[0].EventID != want {
		t.Fatalf("event id %s, want %s", r.Triggers[0].EventID, want)
	}
	// The opportunity arriving later adds nobody a second time.
	res = Apply(testCfg, g, opp(cdc.Create, "006A", 20, "Name", "x", "ContactId", "003P").change())
	if len(res.Triggers) != 0 {
		t.Fatalf("second added after timeout release: %v", render(res.Triggers))
	}
}

func TestSnapshotDerivesExpectedRevenue(t *testing.T) {
	g := NewGroup("006A")
	Apply(testCfg, g, opp(cdc.Create, "006A", 10, "Amount", 2000, "Probability", 25, "ExpectedRevenue", nil).change())
	snap := g.Opp.Snapshot()
	if er := snap["ExpectedRevenue"]; er.Kind != cdc.KindNumber || er.Num != 500 {
		t.Fatalf("ExpectedRevenue = %+v, want 500", er)
	}
	if snap["Id"].Str != "006A" {
		t.Fatalf("snapshot lacks Id: %+v", snap)
	}
	Apply(testCfg, g, opp(cdc.Update, "006A", 11, "ExpectedRevenue", 700).change())
	if er := g.Opp.Snapshot()["ExpectedRevenue"]; er.Num != 700 {
		t.Fatalf("ExpectedRevenue = %+v, want the event's 700", er)
	}
}

func TestDeleteClearsStale(t *testing.T) {
	g := NewGroup("006A")
	Apply(testCfg, g, opp(cdc.Create, "006A", 10, "Name", "x").change())
	Apply(testCfg, g, opp(cdc.GapUpdate, "006A", 11).change())
	if !g.Opp.Stale {
		t.Fatal("gap did not mark the opportunity stale")
	}
	Apply(testCfg, g, opp(cdc.Delete, "006A", 12).change())
	if g.Opp.Stale || !g.Opp.Deleted {
		t.Fatalf("after delete: stale %v deleted %v, want false, true", g.Opp.Stale, g.Opp.Deleted)
	}
}

// A re-read (SNAPSHOT) clears the stale flag unless KeepStale says a newer
// gap came while it was read; it does so even when its version is not newer
// than the record's (a re-read is versioned by the gap's time).
func TestSnapshotStaleFlag(t *testing.T) {
	tests := []struct {
		name      string
		entity    string
		snapTS    int64
		keepStale bool
		want      bool
	}{
		{"opportunity re-read", cdc.EntityOpportunity, 20, false, false},
		{"opportunity re-read, newer gap meanwhile", cdc.EntityOpportunity, 20, true, true},
		{"opportunity re-read older than the gap", cdc.EntityOpportunity, 5, false, false},
		{"opportunity re-read older than the gap, newer gap meanwhile", cdc.EntityOpportunity, 5, true, true},
		{"role re-read", cdc.EntityContactRole, 20, false, false},
		{"role re-read, newer gap meanwhile", cdc.EntityContactRole, 20, true, true},
		{"role re-read older than the gap", cdc.EntityContactRole, 5, false, false},
		{"role re-read older than the gap, newer gap meanwhile", cdc.EntityContactRole, 5, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGroup("006A")
			Apply(testCfg, g, opp(cdc.Create, "006A", 10, "Name", "x").change())
			Apply(testCfg, g, ocr(cdc.Create, "00KA", 10, "OpportunityId", "006A", "ContactId", "003A").change())
			id, mk := "006A", opp
			if tt.entity == cdc.EntityContactRole {
				id, mk = "00KA", ocr
			}
			Apply(testCfg, g, mk(cdc.GapUpdate, id, 11).change())
			ch := mk(cdc.Snapshot, id, tt.snapTS, "Name", "y").change()
			if tt.entity == cdc.EntityContactRole {
				ch = mk(cdc.Snapshot, id, tt.snapTS, "OpportunityId", "006A", "ContactId", "003A").change()
			}
			ch.KeepStale = tt.keepStale
			Apply(testCfg, g, ch)
			stale := g.Opp.Stale
			if tt.entity == cdc.EntityContactRole {
				stale = g.Roles["00KA"].Stale
			}
			if stale != tt.want {
				t.Fatalf("stale = %v, want %v", stale, tt.want)
			}
		})
	}
}
