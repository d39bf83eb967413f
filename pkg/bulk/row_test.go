package bulk

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

func TestRowTypes(t *testing.T) {
	opp, role := typers(t)
	h, bad, err := opp.Bind(strings.Split("\ufeffId,Amount,CloseDate,IsClosed,LastModifiedDate,Billing_Address__c.City,Description,SystemModstamp", ","))
	if err != nil {
		t.Fatalf("Bind: %v at %d", err, bad)
	}
	ev, _, err := opp.Row(h, []string{"006000000000000001", "12.5", "2026-03-31", "true",
		"2026-01-31T12:00:00.000Z", "Paris", "a,\"b\"\nc", "2026-01-31T12:00:00.123Z"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]cdc.Value{
		"Amount":                  cdc.Number(12.5),
		"CloseDate":               {Kind: cdc.KindDate, Str: "2026-03-31"},
		"IsClosed":                cdc.Bool(true),
		"LastModifiedDate":        {Kind: cdc.KindDateTime, Str: "2026-01-31T12:00:00.000Z"},
		"Billing_Address__c.City": cdc.String("Paris"),
		"Description":             cdc.String("a,\"b\"\nc"),
	}
	if len(ev.Fields) != len(want) {
		t.Fatalf("fields %+v", ev.Fields)
	}
	for _, f := range ev.Fields {
		if !f.Changed || f.Value != want[f.Name] {
			t.Errorf("%s = %+v, want %+v", f.Name, f.Value, want[f.Name])
		}
	}
	// SystemModstamp is preferred to LastModifiedDate for the version.
	if ev.Version != (cdc.Version{CommitTimestamp: 1769860800123}) || ev.ChangeType != cdc.Create || ev.RecordIDs[0] != "006000000000000001" {
		t.Errorf("event %+v", ev)
	}

	rh, _, err := role.Bind([]string{"Id", "OpportunityId", "ContactId", "Role", "IsPrimary", "LastModifiedDate"})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err = role.Row(rh, []string{"00K000000000000001", "006000000000000001", "003000000000000001", "", "true", "2026-01-31T12:00:00.000Z"})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := ev.Field("IsPrimary"); !ok || f.Value != cdc.Bool(true) || !ev.HasSchemaField("IsPrimary") {
		t.Errorf("IsPrimary not carried: %+v", ev)
	}
	if f, ok := ev.Field("Role"); !ok || !f.Value.IsNull() {
		t.Errorf("empty Role should be null: %+v", f)
	}
}

func TestRowErrors(t *testing.T) {
	opp, role := typers(t)
	tests := []struct {
		name    string
		typer   *Typer
		header  string
		row     []string
		wantCol int // -1: error in Bind at column
		want    error
		text    string
	}{
		{"unknown column", opp, "Id,Nmae,SystemModstamp", nil, 1, ErrUnknownColumn, `"Nmae"`},
		{"no id", opp, "Name,SystemModstamp", nil, 0, nil, "no Id column"},
		{"no version", opp, "Id,Name", nil, 0, nil, "neither a SystemModstamp"},
		{"duplicate", opp, "Id,Name,Name,SystemModstamp", nil, 2, nil, "appears twice"},
		{"role without opportunity", role, "Id,ContactId,SystemModstamp", nil, 0, nil, "no OpportunityId"},
		{"number", opp, "Id,Amount,SystemModstamp", []string{"006000000000000001", "12,5", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not a number"},
		{"nan", opp, "Id,Amount,SystemModstamp", []string{"006000000000000001", "NaN", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not a number"},
		{"bool", opp, "Id,IsWon,SystemModstamp", []string{"006000000000000001", "yes", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not true or false"},
		{"date", opp, "Id,CloseDate,SystemModstamp", []string{"006000000000000001", "31/03/2026", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not a date"},
		{"datetime", opp, "Id,SystemModstamp", []string{"006000000000000001", "2026-01-31 12:00"}, 1, ErrBadValue, "not a datetime"},
		{"no version value", opp, "Id,SystemModstamp", []string{"006000000000000001", ""}, 1, ErrMissing, ""},
		{"bad id", opp, "Id,SystemModstamp", []string{"006-1", "2026-01-31T12:00:00.000Z"}, 0, ErrBadValue, "not a Salesforce id"},
		{"bad opportunity id", role, "Id,OpportunityId,SystemModstamp", []string{"00K000000000000001", "x", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, ""},
		{"bad contact id", opp, "Id,ContactId,SystemModstamp", []string{"006000000000000001", "003000000000000001:roles", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not a Salesforce id"},
		{"bad role contact id", role, "Id,OpportunityId,ContactId,SystemModstamp", []string{"00K000000000000001", "006000000000000001", "{003}", "2026-01-31T12:00:00.000Z"}, 2, ErrBadValue, "not a Salesforce id"},
		{"bad reference", opp, "Id,AccountId,SystemModstamp", []string{"006000000000000001", "001/../x", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not a Salesforce id"},
		{"integer with a fraction", opp, "Id,Seats__c,SystemModstamp", []string{"006000000000000001", "2.5", "2026-01-31T12:00:00.000Z"}, 1, ErrBadValue, "not a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, col, err := tt.typer.Bind(strings.Split(tt.header, ","))
			if tt.row == nil {
				if err == nil || col != tt.wantCol || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("Bind = %v at %d, want %v (%q) at %d", err, col, tt.want, tt.text, tt.wantCol)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ev, col, err := tt.typer.Row(h, tt.row)
			if ev != nil || err == nil || col != tt.wantCol || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("Row = %v, %v at %d; want %v (%q) at %d", ev, err, col, tt.want, tt.text, tt.wantCol)
			}
		})
	}
}

func TestRowSkipsDeleted(t *testing.T) {
	opp, _ := typers(t)
	h, _, err := opp.Bind([]string{"Id", "IsDeleted", "SystemModstamp"})
	if err != nil {
		t.Fatal(err)
	}
	ev, col, err := opp.Row(h, []string{"006000000000000001", "true", "2026-01-31T12:00:00.000Z"})
	if ev != nil || err != nil || col != -1 {
		t.Fatalf("deleted row = %v %v %d", ev, err, col)
	}
}

// FuzzRow feeds arbitrary CSV text through the import's reader and the
// typer: no panic, an accepted row has typed values of the schema's kinds
// and valid ids.
func FuzzRow(f *testing.F) {
	f.Add(oppHeader + "\n" + oppRow(3) + "\n" + oppRow(7) + "\n")
	f.Add("Id,Amount,SystemModstamp\n006000000000000001,1e308,2026-01-31T12:00:00.000Z\n")
	f.Add("Id,CloseDate,IsWon,SystemModstamp\n\"006000000000000001\",\"2026-02-30\",TRUE,2026-01-31T12:00:00.000+0000\n")
	f.Add("Id,Name,SystemModstamp\n\"006000000000000001\",\"a\"\"b\nc\",2026-01-31T12:00:00.000Z\n")
	opp, _ := typers(f)
	f.Fuzz(func(t *testing.T, text string) {
		r := newCSVReader(strings.NewReader(text), 64, 256)
		header, err := r.Read()
		if err != nil {
			return
		}
		h, _, err := opp.Bind(append([]string(nil), header...))
		if err != nil {
			return
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				return
			}
			if errors.Is(err, ErrTooLong) {
				return
			}
			if err != nil || len(rec) != len(header) {
				continue
			}
			ev, col, err := opp.Row(h, rec)
			if err != nil {
				if col >= len(rec) {
					t.Fatalf("error column %d beyond %d fields", col, len(rec))
				}
				continue
			}
			if ev == nil {
				continue
			}
			if !cdc.ValidID(ev.RecordIDs[0]) {
				t.Fatalf("record id %q accepted", ev.RecordIDs[0])
			}
			for _, fl := range ev.Fields {
				info := opp.fields[fl.Name]
				if info.SalesforceType == "EntityId" && !fl.Value.IsNull() && !cdc.ValidID(fl.Value.Str) {
					t.Fatalf("%s = %q accepted", fl.Name, fl.Value.Str)
				}
				if !fl.Value.IsNull() && fl.Value.Kind != info.Kind {
					t.Fatalf("%s typed %v, schema says %v", fl.Name, fl.Value.Kind, info.Kind)
				}
			}
		}
	})
}

// Empty references are null, whole numbers are integers.
func TestRowAcceptsEmptyReferencesAndWholeNumbers(t *testing.T) {
	opp, _ := typers(t)
	h, _, err := opp.Bind([]string{"Id", "AccountId", "ContactId", "Seats__c", "SystemModstamp"})
	if err != nil {
		t.Fatal(err)
	}
	ev, _, err := opp.Row(h, []string{"006000000000000001", "", "003000000000000001", "12", "2026-01-31T12:00:00.000Z"})
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := ev.Field("Seats__c"); f.Value != cdc.Number(12) {
		t.Errorf("Seats__c = %+v", f.Value)
	}
	if f, _ := ev.Field("AccountId"); !f.Value.IsNull() {
		t.Errorf("AccountId = %+v", f.Value)
	}
}
