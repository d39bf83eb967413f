package replica

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// Opportunity hash fields: "_..." metadata and "f:<Field>" holding the
// version that last wrote the field and its value (EncodeField); a null
// value keeps its version, so an older change cannot bring it back.
const (
	HKnown   = "_known"
	HDeleted = "_deleted"
	HStale   = "_stale"
	HVersion = "_ver"
	HLife    = "_life"
)

var kindCodes = map[cdc.Kind]byte{
	cdc.KindString: 's', cdc.KindNumber: 'n', cdc.KindBool: 'b',
	cdc.KindDate: 'd', cdc.KindDateTime: 't',
}

var codeKinds = map[byte]cdc.Kind{
	's': cdc.KindString, 'n': cdc.KindNumber, 'b': cdc.KindBool,
	'd': cdc.KindDate, 't': cdc.KindDateTime,
}

// EncodeValue stores a value as its kind code followed by its JSON text, so
// that dates survive the round trip.
func EncodeValue(v cdc.Value) string {
	return string(kindCodes[v.Kind]) + v.JSON()
}

// EncodeField stores a field's version and value as "<version>|<value>",
// the value empty for null.
func EncodeField(v cdc.Version, val cdc.Value) string {
	if val.IsNull() {
		return v.String() + "|"
	}
	return v.String() + "|" + EncodeValue(val)
}

// DecodeField reverses EncodeField.
func DecodeField(s string) (cdc.Version, cdc.Value, error) {
	ver, val, ok := strings.Cut(s, "|")
	if !ok {
		return cdc.Version{}, cdc.Null, fmt.Errorf("stored field %q has no version", s)
	}
	v, err := cdc.ParseVersion(ver)
	if err != nil {
		return cdc.Version{}, cdc.Null, err
	}
	if val == "" {
		return v, cdc.Null, nil
	}
	value, err := DecodeValue(val)
	return v, value, err
}

func DecodeValue(s string) (cdc.Value, error) {
	if len(s) < 2 {
		return cdc.Null, fmt.Errorf("stored value %q is too short", s)
	}
	kind, ok := codeKinds[s[0]]
	if !ok {
		return cdc.Null, fmt.Errorf("stored value has unknown kind %q", s[0])
	}
	return cdc.ParseJSON(s[1:], kind)
}

func Flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// DecodeOpp fills o from the fields of an opportunity hash. It skips the
// hash fields it cannot read (corrupt data) and returns their names.
func DecodeOpp(o *triggers.Opportunity, h map[string]string) (bad []string) {
	for k, v := range h {
		var err error
		switch {
		case strings.HasPrefix(k, "f:"):
			var ver cdc.Version
			var val cdc.Value
			if ver, val, err = DecodeField(v); err == nil {
				o.FieldVersions[k[2:]] = ver
				if !val.IsNull() {
					o.Fields[k[2:]] = val
				}
			}
		case k == HKnown:
			o.Known = v == "1"
		case k == HDeleted:
			o.Deleted = v == "1"
		case k == HStale:
			o.Stale = v == "1"
		case k == HVersion:
			o.Version, err = cdc.ParseVersion(v)
		case k == HLife:
			o.Life, err = cdc.ParseVersion(v)
		}
		if err != nil {
			bad = append(bad, k)
		}
	}
	return bad
}

// storedRole is the JSON form of a contact role in the roles hash.
type storedRole struct {
	Opp       string        `json:"o"`
	Contact   string        `json:"c,omitempty"`
	Role      string        `json:"r,omitempty"`
	IsPrimary *bool         `json:"p,omitempty"`
	Deleted   bool          `json:"d,omitempty"`
	Stale     bool          `json:"s,omitempty"`
	Version   string        `json:"v"`
	Pending   bool          `json:"pe,omitempty"`
	Deadline  int64         `json:"dl,omitempty"`
	Source    *storedSource `json:"src,omitempty"`
}

type storedSource struct {
	Entity         string `json:"e"`
	RecordID       string `json:"r"`
	Version        string `json:"v"`
	Reason         string `json:"why"`
	TransactionKey string `json:"tk,omitempty"`
	SequenceNumber int64  `json:"sn,omitempty"`
	CommitUser     string `json:"cu,omitempty"`
	ChangeOrigin   string `json:"co,omitempty"`
}

func EncodeRole(r *triggers.Role) string {
	s := storedRole{
		Opp: r.OpportunityID, Contact: r.ContactID, Role: r.Role, IsPrimary: r.IsPrimary,
		Deleted: r.Deleted, Stale: r.Stale, Version: r.Version.String(),
		Pending: r.Pending, Deadline: r.Deadline,
	}
	if src := r.PendingSource; src != nil {
		s.Source = &storedSource{
			Entity: src.Entity, RecordID: src.RecordID, Version: src.Version.String(), Reason: src.Reason,
			TransactionKey: src.Header.TransactionKey, SequenceNumber: src.Header.SequenceNumber,
			CommitUser: src.Header.CommitUser, ChangeOrigin: src.Header.ChangeOrigin,
		}
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func DecodeRole(id, text string) (*triggers.Role, error) {
	s, ok := decodePlainRole(text)
	if !ok {
		s = storedRole{}
		if err := json.Unmarshal([]byte(text), &s); err != nil {
			return nil, fmt.Errorf("contact role %s: %w", id, err)
		}
	}
	ver, err := cdc.ParseVersion(s.Version)
	if err != nil {
		return nil, fmt.Errorf("contact role %s: %w", id, err)
	}
	r := &triggers.Role{
		ID: id, OpportunityID: s.Opp, ContactID: s.Contact, Role: s.Role, IsPrimary: s.IsPrimary,
		Deleted: s.Deleted, Stale: s.Stale, Version: ver, Pending: s.Pending, Deadline: s.Deadline,
	}
	if src := s.Source; src != nil {
		sv, err := cdc.ParseVersion(src.Version)
		if err != nil {
			return nil, fmt.Errorf("contact role %s source: %w", id, err)
		}
		r.PendingSource = &triggers.Source{
			Entity: src.Entity, RecordID: src.RecordID, Version: sv, Reason: src.Reason,
			Header: cdc.EventHeader{TransactionKey: src.TransactionKey, SequenceNumber: src.SequenceNumber,
				CommitUser: src.CommitUser, ChangeOrigin: src.ChangeOrigin},
		}
	}
	return r, nil
}
