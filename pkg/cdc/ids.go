package cdc

import (
	"fmt"
	"strconv"
)

// ValidID reports whether s has the shape of a Salesforce record id: 15 or
// 18 ASCII letters and digits.
func ValidID(s string) bool {
	if len(s) != 15 && len(s) != 18 {
		return false
	}
	return alnum(s)
}

// WildcardID reports whether s is the wildcard some change events carry
// in recordIds instead of record ids (after a field-type conversion, for
// example): a three-character key prefix followed by "*", such as "006*".
// Nothing longer is accepted: every Salesforce key prefix has three
// characters. (The GAP_OVERFLOW id, OverflowRecordID, is a ValidID.)
func WildcardID(s string) bool {
	return len(s) == 4 && s[3] == '*' && alnum(s[:3])
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// MaxEntityNameLen bounds an entity name: Salesforce object names have at
// most 40 characters, plus a 15-character namespace prefix and suffixes
// such as "__c".
const MaxEntityNameLen = 80

// ValidEntityName reports whether s is a Salesforce API name: an ASCII
// letter, then ASCII letters, digits and underscores, at most
// MaxEntityNameLen bytes.
func ValidEntityName(s string) bool {
	if s == "" || len(s) > MaxEntityNameLen {
		return false
	}
	if c := s[0]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_') {
			return false
		}
	}
	return true
}

// idFields are the fields whose values become part of Redis keys or script
// arguments, by entity: the opportunity a contact role belongs to and the
// person (Contact) it links.
var idFields = map[string][]string{
	EntityOpportunity: {"ContactId"},
	EntityContactRole: {"OpportunityId", "ContactId"},
}

// CheckIDs returns an invalid_id *Error naming the first id of ev that
// must not reach a key: a record id that is neither a ValidID nor a
// WildcardID, or a non-null OpportunityId / ContactId (of the entities
// that have them) that is not a ValidID. The error quotes the id
// shortened and escaped (QuoteInput).
func CheckIDs(ev *Event) error {
	return checkIDs(ev, ValidID, "a Salesforce record id")
}

// KeySafeID reports whether s can be part of a Redis key and a script
// argument as it is: 1 to 18 ASCII letters and digits, so never a key
// separator (':', '|'), a hash tag ('{', '}'), a pattern ('*'), a line
// break or a path.
func KeySafeID(s string) bool {
	return s != "" && len(s) <= 18 && alnum(s)
}

// CheckKeySafeIDs is CheckIDs with KeySafeID for ValidID: the guard of
// code that builds keys, for events that did not all pass CheckIDs
// (tests, tools) but must still stay inside their own keys.
func CheckKeySafeIDs(ev *Event) error {
	return checkIDs(ev, KeySafeID, "an id that can be part of a key")
}

func checkIDs(ev *Event, valid func(string) bool, what string) error {
	for i, id := range ev.RecordIDs {
		if !valid(id) && !WildcardID(id) {
			return Permanent(ReasonInvalidID, "recordIds[%d] %s is not %s", i, QuoteInput(id), what)
		}
	}
	for _, name := range idFields[ev.Entity] {
		f, ok := ev.Field(name)
		if !ok || f.Value.IsNull() {
			continue
		}
		if f.Value.Kind != KindString || !valid(f.Value.Str) {
			return Permanent(ReasonInvalidID, "field %s %s is not %s", name, QuoteInput(f.Value.Str), what)
		}
	}
	return nil
}

// maxQuoted is how many bytes of an input QuoteInput shows.
const maxQuoted = 40

// QuoteInput renders a value from outside for an error message or a log
// line: Go-quoted with every non-ASCII or control byte escaped, at most
// maxQuoted bytes of it, followed by its length when it is longer.
func QuoteInput(s string) string {
	if len(s) <= maxQuoted {
		return strconv.QuoteToASCII(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.QuoteToASCII(s[:maxQuoted]), len(s))
}
