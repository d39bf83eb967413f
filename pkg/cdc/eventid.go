package cdc

import (
	"crypto/sha256"
	"encoding/hex"
)

// Trigger names, as written in the trigger field of stream entries.
const (
	TriggerAdded   = "added_to_opportunity"
	TriggerRemoved = "removed_from_opportunity"
	TriggerUpdated = "opportunity_updated"
)

// EventID derives the deterministic event_id of a trigger entry from the
// source change that caused it (entity, record id, version) and what the
// entry is about (trigger, person, contact role, field). The same source
// change always yields the same id, whichever instance applies it and however
// often it is redelivered; empty parts are allowed (roleID for updated
// entries, field for added/removed entries).
func EventID(org, entity, recordID string, v Version, trigger, personID, roleID, field string) string {
	h := sha256.New()
	for _, part := range []string{org, entity, recordID, v.String(), trigger, personID, roleID, field} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
