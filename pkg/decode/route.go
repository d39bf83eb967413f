package decode

import (
	"strings"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// EventName returns the change event name of the schema: its record name
// without namespace ("OpportunityChangeEvent"). oppsync bridge names its
// Kafka topics after it.
func (s *Schema) EventName() string {
	return s.root.name[strings.LastIndexByte(s.root.name, '.')+1:]
}

// EventHeader is what HeaderOf reads of a change event.
type EventHeader struct {
	Entity    string
	RecordIDs []string
	// CommitTimestamp is the commit time, Unix milliseconds.
	CommitTimestamp int64
}

// HeaderOf reads the ChangeEventHeader of a Pub/Sub-shaped payload written
// with s, without decoding the data fields (they follow the header).
// Errors are *cdc.Error (not_a_change_event, malformed_avro).
func (s *Schema) HeaderOf(payload []byte) (h EventHeader, err error) {
	defer func() {
		// A last line of defence, as in Decode: hostile bytes never panic.
		if p := recover(); p != nil {
			h, err = EventHeader{}, cdc.Permanent(cdc.ReasonMalformedAvro, "reading ChangeEventHeader: panic: %v", p)
		}
	}()
	if s.headerPos < 0 || s.connector {
		return EventHeader{}, cdc.Permanent(cdc.ReasonNotAChangeEvent, "schema %s has no Pub/Sub ChangeEventHeader", s.root.name)
	}
	r := &reader{buf: payload}
	for pos := 0; pos < s.headerPos; pos++ {
		if err := r.skip(s.top[pos].typ); err != nil {
			return EventHeader{}, cdc.Permanent(cdc.ReasonMalformedAvro, "skipping %s: %w", s.top[pos].name, err)
		}
	}
	var hd header
	if err := readHeader(r, s, s.top[s.headerPos].typ, &hd); err != nil {
		return EventHeader{}, cdc.Permanent(cdc.ReasonMalformedAvro, "reading ChangeEventHeader: %w", err)
	}
	if len(hd.recordIDs) == 0 {
		return EventHeader{}, cdc.Permanent(cdc.ReasonNotAChangeEvent, "ChangeEventHeader has no recordIds")
	}
	if !cdc.ValidEntityName(hd.entity) {
		return EventHeader{}, cdc.Permanent(cdc.ReasonNotAChangeEvent, "entityName %s is not a Salesforce API name", cdc.QuoteInput(hd.entity))
	}
	return EventHeader{Entity: hd.entity, RecordIDs: hd.recordIDs, CommitTimestamp: hd.commitTS}, nil
}
