package synth

import (
	"fmt"
	"sort"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Script writes hand-made changes that read well in tests: each call is one
// transaction, one second after the previous one, with a fresh commit
// number. It remembers what it wrote, so StageChanged lists only the stage
// fields that really change and a contact-role DELETE knows its opportunity.
// It is not safe for concurrent use.
type Script struct {
	ts, commitNumber int64
	tx               int
	// User and Origin go into every header.
	User, Origin string

	opps  map[string]map[string]cdc.Value
	roles map[string]map[string]cdc.Value
}

// NewScript starts a script whose first change commits at start (a zero
// start means 2026-01-05T09:00:00Z).
func NewScript(start time.Time) *Script {
	if start.IsZero() {
		start = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	return &Script{
		ts: start.UnixMilli() - 1000, commitNumber: 10_000_000_000,
		User: SalesforceID("005", 1), Origin: "com/salesforce/api/soap/61.0;client=DataLoader",
		opps: map[string]map[string]cdc.Value{}, roles: map[string]map[string]cdc.Value{},
	}
}

func (s *Script) change(entity string, ct cdc.ChangeType, ids []string, opp string, fields []cdc.Field) Change {
	s.ts += 1000
	s.commitNumber += 7
	s.tx++
	return Change{
		Entity: entity, Type: ct, RecordIDs: ids, OpportunityID: opp,
		Version: cdc.Version{CommitTimestamp: s.ts, CommitNumber: s.commitNumber, SequenceNumber: 1},
		Header: cdc.EventHeader{TransactionKey: fmt.Sprintf("0000%04x-0000-0000-0000-%012x", s.tx, s.ts),
			SequenceNumber: 1, CommitUser: s.User, ChangeOrigin: s.Origin},
		Fields: fields,
	}
}

func (s *Script) nowValue() cdc.Value { return cdc.DateTimeFromMillis(s.ts + 1000) }

func withDefault(fields []cdc.Field, name string, v cdc.Value) []cdc.Field {
	for _, f := range fields {
		if f.Name == name {
			return fields
		}
	}
	return append(fields, F(name, v))
}

func remember(m map[string]map[string]cdc.Value, id string, fields []cdc.Field) {
	if m[id] == nil {
		m[id] = map[string]cdc.Value{}
	}
	apply(m[id], fields)
}

// OpportunityCreated creates opportunity id with the given fields (plus
// CreatedDate and LastModifiedDate at commit time unless given).
func (s *Script) OpportunityCreated(id string, fields ...cdc.Field) Change {
	now := s.nowValue()
	fields = withDefault(append([]cdc.Field(nil), fields...), "CreatedDate", now)
	fields = withDefault(fields, "LastModifiedDate", now)
	s.opps[id] = nil
	remember(s.opps, id, fields)
	return s.change(cdc.EntityOpportunity, cdc.Create, []string{id}, id, fields)
}

// OpportunityUpdated changes the given fields of opportunity id (plus
// LastModifiedDate). Fields are written as given, changed or not.
func (s *Script) OpportunityUpdated(id string, fields ...cdc.Field) Change {
	return s.OpportunitiesUpdated([]string{id}, fields...)
}

// OpportunitiesUpdated is one event naming several opportunities, all given
// the same field changes (a mass update).
func (s *Script) OpportunitiesUpdated(ids []string, fields ...cdc.Field) Change {
	fields = withDefault(append([]cdc.Field(nil), fields...), "LastModifiedDate", s.nowValue())
	for _, id := range ids {
		remember(s.opps, id, fields)
	}
	return s.change(cdc.EntityOpportunity, cdc.Update, ids, ids[0], fields)
}

// StageChanged moves opportunity id to the named stage: StageName and the
// fields derived from it that really change, LastStageChangeDate and
// LastModifiedDate. An unknown stage name changes StageName only.
func (s *Script) StageChanged(id, stage string) Change {
	st, ok := StageByName(stage)
	proposed := []cdc.Field{F("StageName", cdc.String(stage))}
	if ok {
		proposed = st.Fields()
	}
	cur := s.opps[id]
	var fields []cdc.Field
	for _, f := range proposed {
		if old, had := cur[f.Name]; !had || !old.Equal(f.Value) {
			fields = append(fields, f)
		}
	}
	fields = append(fields, F("LastStageChangeDate", s.nowValue()))
	return s.OpportunityUpdated(id, fields...)
}

// AmountChanged sets the Amount of opportunity id.
func (s *Script) AmountChanged(id string, amount float64) Change {
	return s.OpportunityUpdated(id, F("Amount", cdc.Number(amount)))
}

// OpportunityDeleted deletes opportunity id (the event carries no fields).
func (s *Script) OpportunityDeleted(id string) Change {
	return s.change(cdc.EntityOpportunity, cdc.Delete, []string{id}, id, nil)
}

// OpportunityUndeleted restores opportunity id with the fields the script
// knows (and a new LastModifiedDate).
func (s *Script) OpportunityUndeleted(id string) Change {
	remember(s.opps, id, []cdc.Field{F("LastModifiedDate", s.nowValue())})
	return s.change(cdc.EntityOpportunity, cdc.Undelete, []string{id}, id, allFieldsSorted(s.opps[id]))
}

// Gap is a GAP_UPDATE of a record of entity (no body).
func (s *Script) Gap(entity, id, opportunityID string) Change {
	return s.change(entity, cdc.GapUpdate, []string{id}, opportunityID, nil)
}

// ContactRoleAdded creates contact role roleID putting contactID on
// opportunity oppID with role ("" = blank).
func (s *Script) ContactRoleAdded(roleID, oppID, contactID, role string) Change {
	now := s.nowValue()
	fields := []cdc.Field{F("OpportunityId", cdc.String(oppID)), F("ContactId", cdc.String(contactID))}
	if role != "" {
		fields = append(fields, F("Role", cdc.String(role)))
	}
	fields = append(fields, F("CreatedDate", now), F("LastModifiedDate", now))
	s.roles[roleID] = nil
	remember(s.roles, roleID, fields)
	return s.change(cdc.EntityContactRole, cdc.Create, []string{roleID}, oppID, fields)
}

func (s *Script) roleOpp(roleID string) string { return s.roles[roleID]["OpportunityId"].Str }

// ContactRoleRemoved deletes contact role roleID (the event carries only
// the id; the key is the opportunity the script knows for it).
func (s *Script) ContactRoleRemoved(roleID string) Change {
	return s.change(cdc.EntityContactRole, cdc.Delete, []string{roleID}, s.roleOpp(roleID), nil)
}

// ContactRoleUndeleted restores contact role roleID with its known fields.
func (s *Script) ContactRoleUndeleted(roleID string) Change {
	remember(s.roles, roleID, []cdc.Field{F("LastModifiedDate", s.nowValue())})
	return s.change(cdc.EntityContactRole, cdc.Undelete, []string{roleID}, s.roleOpp(roleID), allFieldsSorted(s.roles[roleID]))
}

// RoleChanged sets the Role of contact role roleID ("" nulls it).
func (s *Script) RoleChanged(roleID, role string) Change {
	v := cdc.String(role)
	if role == "" {
		v = cdc.Null
	}
	return s.roleUpdated(roleID, F("Role", v))
}

// ContactChanged points contact role roleID at another contact.
func (s *Script) ContactChanged(roleID, contactID string) Change {
	return s.roleUpdated(roleID, F("ContactId", cdc.String(contactID)))
}

func (s *Script) roleUpdated(roleID string, fields ...cdc.Field) Change {
	fields = append(fields, F("LastModifiedDate", s.nowValue()))
	remember(s.roles, roleID, fields)
	return s.change(cdc.EntityContactRole, cdc.Update, []string{roleID}, s.roleOpp(roleID), fields)
}

func allFieldsSorted(m map[string]cdc.Value) []cdc.Field {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return allFields(names, m)
}
