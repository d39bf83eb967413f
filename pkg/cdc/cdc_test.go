package cdc

import (
	"testing"
)

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		a, b Version
		want int
	}{
		{Version{1, 1, 1}, Version{1, 1, 1}, 0},
		{Version{2, 0, 0}, Version{1, 9, 9}, 1},
		{Version{1, 2, 0}, Version{1, 1, 9}, 1},
		{Version{1, 1, 1}, Version{1, 1, 2}, -1},
		{Version{}, Version{0, 0, 1}, -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestVersionRoundTrip(t *testing.T) {
	v := Version{1764347041123, 12345678901, 3}
	got, err := ParseVersion(v.String())
	if err != nil || got != v {
		t.Fatalf("ParseVersion(%q) = %v, %v", v.String(), got, err)
	}
	if _, err := ParseVersion("x.y"); err == nil {
		t.Fatal("ParseVersion accepted garbage")
	}
}

func TestValueJSON(t *testing.T) {
	tests := []struct {
		v    Value
		want string
	}{
		{Null, "null"},
		{Number(5000), "5000"},
		{Number(12.5), "12.5"},
		{Bool(true), "true"},
		{String(`a"b`), `"a\"b"`},
		{DateFromMillis(1764288000000), `"2025-11-28"`},
		{DateFromDays(20420), `"2025-11-28"`},
		{DateTimeFromMillis(1764347041123), `"2025-11-28T16:24:01.123Z"`},
	}
	for _, tt := range tests {
		if got := tt.v.JSON(); got != tt.want {
			t.Errorf("%+v.JSON() = %s, want %s", tt.v, got, tt.want)
		}
		back, err := ParseJSON(tt.v.JSON(), tt.v.Kind)
		if err != nil || !back.Equal(tt.v) {
			t.Errorf("ParseJSON(%s) = %+v, %v; want %+v", tt.v.JSON(), back, err, tt.v)
		}
	}
}

func TestEventIDDeterministic(t *testing.T) {
	v := Version{1, 2, 3}
	a := EventID("org", EntityOpportunity, "006A", v, TriggerUpdated, "003A", "", "StageName")
	b := EventID("org", EntityOpportunity, "006A", v, TriggerUpdated, "003A", "", "StageName")
	c := EventID("org", EntityOpportunity, "006A", v, TriggerUpdated, "003A", "", "Amount")
	if a != b || a == c || len(a) != 32 {
		t.Fatalf("EventID not deterministic or not distinct: %s %s %s", a, b, c)
	}
}

func TestChangeType(t *testing.T) {
	for _, s := range []string{"CREATE", "gap_update", "GAP_OVERFLOW", "SNAPSHOT"} {
		if _, err := ParseChangeType(s); err != nil {
			t.Errorf("ParseChangeType(%q): %v", s, err)
		}
	}
	if _, err := ParseChangeType("MERGE"); err == nil {
		t.Error("ParseChangeType accepted MERGE")
	}
	if !GapOverflow.IsGap() || Update.IsGap() {
		t.Error("IsGap wrong")
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"0068c000000iyJbAAI": true, "0068c000000iyJb": true, "0068c000000iyJ": false,
		"0068c000000iyJb-AI": false, "": false, "0068c000000iyJbAAIX": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

// ParseJSON's fast path answers exactly what encoding/json does.
func TestParseJSONPlainMatchesJSON(t *testing.T) {
	for _, text := range []string{
		"true", "false", "0", "-0", "12", "-12.5", "1e3", "1E+3", "2.5e-3", "123456789012345678901234567890",
		"1e999", "01", "1.", ".5", "-", "+1", "1e", "0x10", "Inf", "NaN", "1_000", " 1", "1 ",
		`""`, `"Closed Won"`, `"2026-12-15"`, `"a\"b"`, `"tab\there"`, "\"caf\u00e9\"", "\"bad \xff\"", `"unterminated`, `"`,
		"tru", "nul", "[1]", `{"a":1}`,
	} {
		for _, kind := range []Kind{KindString, KindDate, KindNumber} {
			want, wantErr := parseWithJSON(text, kind)
			got, gotErr := ParseJSON(text, kind)
			if got != want || (gotErr == nil) != (wantErr == nil) {
				t.Errorf("ParseJSON(%q, %v) = %+v, %v; encoding/json: %+v, %v", text, kind, got, gotErr, want, wantErr)
			}
		}
	}
}
