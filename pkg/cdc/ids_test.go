package cdc

import (
	"strings"
	"testing"
)

func TestValidEntityName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"Opportunity", true},
		{"OpportunityContactRole", true},
		{"ns__Invoice__c", true},
		{"A1", true},
		{strings.Repeat("A", MaxEntityNameLen), true},
		{"", false},
		{"_Opportunity", false},
		{"1Opportunity", false},
		{"Opportunity\xff", false},
		{"Opportunit\u00e9", false},
		{"Opp ortunity", false},
		{"Opportunity\n", false},
		{"Opportunity:roles", false},
		{"../Opportunity", false},
		{strings.Repeat("A", MaxEntityNameLen+1), false},
	}
	for _, tt := range tests {
		t.Run(QuoteInput(tt.name), func(t *testing.T) {
			if got := ValidEntityName(tt.name); got != tt.ok {
				t.Errorf("ValidEntityName(%s) = %v, want %v", QuoteInput(tt.name), got, tt.ok)
			}
		})
	}
}

func TestCheckIDs(t *testing.T) {
	const opp, contact = "006000000000001AAA", "003000000000001AAA"
	long := strings.Repeat("0", 100_000)
	tests := []struct {
		name    string
		ev      Event
		wantErr string // "" = valid
	}{
		{"opportunity 18", Event{Entity: EntityOpportunity, RecordIDs: []string{opp}}, ""},
		{"opportunity 15", Event{Entity: EntityOpportunity, RecordIDs: []string{opp[:15]}}, ""},
		{"overflow", Event{Entity: EntityOpportunity, RecordIDs: []string{OverflowRecordID}}, ""},
		{"wildcard", Event{Entity: EntityOpportunity, RecordIDs: []string{opp, "006*"}}, ""},
		{"key suffix", Event{Entity: EntityOpportunity, RecordIDs: []string{opp + ":roles"}}, `recordIds[0] "006000000000001AAA:roles"`},
		{"brace", Event{Entity: EntityOpportunity, RecordIDs: []string{opp, "{006000000000001A"}}, `recordIds[1] "{006000000000001A"`},
		{"star inside", Event{Entity: EntityOpportunity, RecordIDs: []string{"006*00000000001AAA"}}, "recordIds[0]"},
		{"long wildcard", Event{Entity: EntityOpportunity, RecordIDs: []string{"0060*"}}, "recordIds[0]"},
		{"crlf", Event{Entity: EntityOpportunity, RecordIDs: []string{"006000000000001\r\n"}}, `"006000000000001\r\n"`},
		{"path", Event{Entity: EntityOpportunity, RecordIDs: []string{"../../00600000001"}}, "recordIds[0]"},
		{"invalid utf-8", Event{Entity: EntityOpportunity, RecordIDs: []string{"00600000000001\xff\xfe\xfd"}}, `\xff`},
		{"huge", Event{Entity: EntityOpportunity, RecordIDs: []string{long}}, "(100000 bytes)"},
		{"empty", Event{Entity: EntityOpportunity, RecordIDs: []string{""}}, "recordIds[0]"},
		{"opportunity contact", Event{Entity: EntityOpportunity, RecordIDs: []string{opp},
			Fields: []Field{{Name: "ContactId", Value: String(contact + "}")}}}, "field ContactId"},
		{"opportunity null contact", Event{Entity: EntityOpportunity, RecordIDs: []string{opp},
			Fields: []Field{{Name: "ContactId", Value: Null, Changed: true}}}, ""},
		{"role fields", Event{Entity: EntityContactRole, RecordIDs: []string{"00K000000000001AAA"},
			Fields: []Field{{Name: "OpportunityId", Value: String(opp)}, {Name: "ContactId", Value: String(contact)}}}, ""},
		{"role opportunity", Event{Entity: EntityContactRole, RecordIDs: []string{"00K000000000001AAA"},
			Fields: []Field{{Name: "OpportunityId", Value: String(opp + ":roles")}}}, "field OpportunityId"},
		{"role contact not a string", Event{Entity: EntityContactRole, RecordIDs: []string{"00K000000000001AAA"},
			Fields: []Field{{Name: "ContactId", Value: Number(3)}}}, "field ContactId"},
		{"other entity fields unchecked", Event{Entity: "Account", RecordIDs: []string{"001000000000001AAA"},
			Fields: []Field{{Name: "ContactId", Value: String("anything")}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckIDs(&tt.ev)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckIDs = %v, want nil", err)
				}
				return
			}
			if err == nil || ReasonOf(err) != ReasonInvalidID || IsRetryable(err) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckIDs = %v, want a permanent invalid_id error containing %s", err, tt.wantErr)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error of %d bytes echoes the input", len(err.Error()))
			}
		})
	}
}

func TestCheckKeySafeIDs(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		ok   bool
	}{
		{"short test ids", Event{Entity: EntityContactRole, RecordIDs: []string{"00KA"},
			Fields: []Field{{Name: "OpportunityId", Value: String("006A")}, {Name: "ContactId", Value: String("003P")}}}, true},
		{"wildcard", Event{Entity: EntityOpportunity, RecordIDs: []string{"006*"}}, true},
		{"key suffix", Event{Entity: EntityOpportunity, RecordIDs: []string{"006A:roles"}}, false},
		{"member separator", Event{Entity: EntityContactRole, RecordIDs: []string{"00KA|x"}}, false},
		{"too long", Event{Entity: EntityOpportunity, RecordIDs: []string{strings.Repeat("0", 19)}}, false},
		{"empty", Event{Entity: EntityOpportunity, RecordIDs: []string{""}}, false},
		{"contact hash tag", Event{Entity: EntityContactRole, RecordIDs: []string{"00KA"},
			Fields: []Field{{Name: "ContactId", Value: String("{003P}")}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKeySafeIDs(&tt.ev)
			if (err == nil) != tt.ok || err != nil && ReasonOf(err) != ReasonInvalidID {
				t.Fatalf("CheckKeySafeIDs = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
