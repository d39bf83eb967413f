// Package decode turns Kafka messages carrying Salesforce change events
// into normalised cdc.Events.
//
// It owns framing detection (CONTRACT §3: a schema-id header means a raw
// Pub/Sub payload; otherwise a 0x00 first byte and at least 5 bytes means
// the Confluent wire format; anything else is unknown_framing), schema
// lookup (a directory of <schemaId>.avsc files, a Confluent-compatible
// Schema Registry, in-memory maps), schema compilation cached per schema
// id, Avro decoding, union unwrapping, bitmap field-list expansion, value
// normalisation (CONTRACT §4) and field-level-security filtering
// (access.hidden_fields).
//
// Both body shapes are read, told apart by the writer schema: Pub/Sub
// (ChangeEventHeader at field 0, every data field present, changedFields /
// nulledFields / diffFields as hex bitmaps over the writer schema's field
// positions) and the Confluent Salesforce CDC Source connector (Id,
// ReplayId, _ObjectType, _EventType, plain field names, logical date
// types).
//
// Invariants:
//   - Bitmap positions are resolved against the schema of the very message;
//     position tables are built per schema id and never shared across ids.
//   - Only changedFields / nulledFields decide what an UPDATE changed: a null
//     field that is not named is never reported, a non-null one that is not
//     named is reported with Changed=false (an enriched field).
//   - Hidden fields never leave this package: they are dropped from
//     Event.Fields and Event.Schema.
//   - A decoded event's entity is a Salesforce API name and its ids pass
//     cdc.CheckIDs (record ids, OpportunityId, ContactId): they become Redis
//     keys and metric labels downstream. Other messages fail as
//     not_a_change_event / invalid_id. A header schema id is a plain name.
//   - A top-level record, or union with one record branch (switchable
//     compound fields), is nested: "P-0x.." bitmaps name its "Parent.Child"
//     fields; the union's other branches hold the value under "Parent".
//   - Bad input yields a *cdc.Error with a stable reason, never a panic; error
//     texts name schema ids, fields and bit positions but never field values
//     (a rejected id or entity name is quoted by cdc.QuoteInput).
//   - Avro is read by a reader that checks every length and count against the
//     bytes left before allocating; goavro validates every schema.
//
// Metrics: none are registered here. Decoder.SchemasCached feeds the
// oppsync_schemas_cached gauge and the caller counts decode errors by
// cdc.ReasonOf (oppsync_decode_errors_total{reason}).
package decode
