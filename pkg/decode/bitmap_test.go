package decode

import (
	"reflect"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

func mustSchema(t testing.TB, text string) *Schema {
	t.Helper()
	s, err := ParseSchema(text)
	if err != nil {
		t.Fatalf("ParseSchema: %v", err)
	}
	return s
}

func TestExpandBitmaps(t *testing.T) {
	s := mustSchema(t, oppSchema)
	addr := []string{"Billing_Address__c.Street", "Billing_Address__c.City", "Billing_Address__c.PostalCode", "Billing_Address__c.Country"}
	tests := []struct {
		name    string
		list    []string
		want    []string
		wantErr string // bad_bitmap detail, "" for success
	}{
		{"documented vector", []string{"0x0503C0A0"}, []string{"StageName", "Probability", "IsClosed", "IsWon",
			"ForecastCategory", "ForecastCategoryName", "LastModifiedDate", "LastStageChangeDate"}, ""},
		{"lower case and leading zeros", []string{"0x000000000000000000000000000503c0a0"}, []string{"StageName", "Probability", "IsClosed", "IsWon",
			"ForecastCategory", "ForecastCategoryName", "LastModifiedDate", "LastStageChangeDate"}, ""},
		{"upper case X", []string{"0X2"}, []string{"AccountId"}, ""},
		{"bit 0 (header) ignored", []string{"0x3"}, []string{"AccountId"}, ""},
		{"several elements merged in schema order", []string{"0x1000000", "0x20", "0x1000000"}, []string{"StageName", "LastModifiedDate"}, ""},
		{"nested only", []string{"35-0x0A"}, []string{"Billing_Address__c.City", "Billing_Address__c.Country"}, ""},
		{"nested and top", []string{"0x40", "35-0x1"}, []string{"Amount", "Billing_Address__c.Street"}, ""},
		{"top bit on nested field names all children", []string{"0x800000000"}, addr, ""},
		{"plain names", []string{"Amount", "Billing_Address__c.City", "NoSuchField"}, []string{"Amount", "Billing_Address__c.City"}, ""},
		{"plain nested parent", []string{"Billing_Address__c"}, addr, ""},
		{"empty list", nil, nil, ""},
		{"highest field", []string{"0x800000000"}, addr, ""},
		{"bit past schema", []string{"0x1000000000"}, nil, "bit 36"},
		{"bad hex", []string{"0x12G4"}, nil, "non-hex"},
		{"no digits", []string{"0x"}, nil, "no hex digits"},
		{"nested not a record", []string{"6-0x1"}, nil, "position 6"},
		{"nested past schema", []string{"99-0x1"}, nil, "position 99"},
		{"nested bit past record", []string{"35-0x10"}, nil, "bit 4"},
		{"nested no digits", []string{"35-0x"}, nil, "no hex digits"},
		{"huge position", []string{strings.Repeat("9", 40) + "-0x1"}, nil, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ExpandBitmaps(tt.list)
			if tt.wantErr != "" {
				if cdc.ReasonOf(err) != cdc.ReasonBadBitmap || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want bad_bitmap mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBitmapTablesPerSchema checks that positions come from each schema:
// the same bitmap names different fields in a reordered schema.
func TestBitmapTablesPerSchema(t *testing.T) {
	a := mustSchema(t, oppSchema)
	b := mustSchema(t, strings.Replace(strings.Replace(oppSchema, `"name": "AccountId"`, `"name": "TMP"`, 1), `"name": "IsPrivate"`, `"name": "AccountId"`, 1))
	ga, _ := a.ExpandBitmaps([]string{"0x4"})
	gb, _ := b.ExpandBitmaps([]string{"0x4"})
	if reflect.DeepEqual(ga, gb) {
		t.Errorf("both schemas expand 0x4 to %v", ga)
	}
}

func TestParseSchemaFields(t *testing.T) {
	tests := []struct {
		schema    string
		connector bool
		entity    string
		fields    map[string]string // name → "kind sftype"
	}{
		{oppSchema, false, "Opportunity", map[string]string{
			"CloseDate": "date DateOnly", "CreatedDate": "datetime DateTime", "Amount": "number Currency",
			"IsWon": "boolean Boolean", "Seats__c": "number Integer", "Region__c": "string DynamicEnum",
			"Product_Lines__c": "string MultiEnum", "Billing_Address__c.City": "string Text", "OwnerId": "string EntityId",
		}},
		{oppConnSchema, true, "Opportunity", map[string]string{
			"CloseDate": "date date", "CreatedDate": "datetime timestamp-millis", "Amount": "number double",
			"IsWon": "boolean boolean", "Name": "string string",
		}},
		{ocrSchema, false, "OpportunityContactRole", map[string]string{"Role": "string DynamicEnum", "ContactId": "string EntityId"}},
	}
	for _, tt := range tests {
		t.Run(tt.entity, func(t *testing.T) {
			s := mustSchema(t, tt.schema)
			if s.Connector() != tt.connector || s.Entity() != tt.entity {
				t.Errorf("Connector %v Entity %s", s.Connector(), s.Entity())
			}
			got := map[string]string{}
			for _, f := range s.Fields() {
				got[f.Name] = f.Kind.String() + " " + f.SalesforceType
			}
			for name, want := range tt.fields {
				if got[name] != want {
					t.Errorf("%s = %q, want %q", name, got[name], want)
				}
			}
			for _, meta := range []string{"ChangeEventHeader", "Id", "ReplayId", "_ObjectType", "_EventType", "Billing_Address__c"} {
				if _, ok := got[meta]; ok {
					t.Errorf("%s must not be a data field", meta)
				}
			}
		})
	}
}
