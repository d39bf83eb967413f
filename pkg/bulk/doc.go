// Package bulk seeds the state from Salesforce Bulk API 2.0 query results:
// CSV files with a header row of API names, one or several part files per
// entity (Opportunity, OpportunityContactRole).
//
// Each row becomes a CREATE change event typed by the writer schema the
// service knows (decode.ParseSchema → FieldInfo kinds; compound fields as
// "Parent.Child" columns; Id, SystemModstamp and IsDeleted are metadata
// columns; contact roles may carry IsPrimary). The event's version is the
// row's SystemModstamp (else LastModifiedDate) in milliseconds with commit
// number 0 and sequence number 0, so a CDC event of the same millisecond,
// which has a commit number, wins over the import. Rows are applied through
// state.Store.ApplyEvents, so an import may run while the service consumes:
// versions decide, an older row never overwrites newer CDC values.
//
// Invariants:
//   - A row is validated completely (CSV shape, columns, types, and for a
//     contact role that its OpportunityId is known to the state) before it
//     joins a batch: a rejected row writes nothing.
//   - Opportunities are imported before contact roles.
//   - Rows of one opportunity go through the same worker (partitioned by
//     Id / OpportunityId), in file order.
//   - Memory is bounded by Workers × BatchSize rows in flight, not by file
//     size: files are streamed, and a field or record over
//     Config.MaxFieldBytes / MaxRecordBytes stops the import where it starts
//     (csvReader reads at most its 64 KiB buffer past the bound; an
//     unbalanced quote shows this way, not at the end of the file).
//   - Every cell is checked where it enters: ids (Id, OpportunityId and
//     every reference column) with cdc.ValidID, values against the schema's
//     kind (Integer fields whole numbers).
//   - The progress hash "oppsync:{org}:import" records, per entity, the
//     file and the byte offset and line after the last row whose batch (and
//     every batch before it) was applied; --resume continues there.
//     Re-applying rows is harmless anyway (version check).
//
// Metrics (on the Registerer given to New): oppsync_import_rows_total
// {entity,outcome} (outcome applied, duplicate, skipped, rejected) and
// oppsync_import_bytes_total{entity}. Importer.Stats serves the same live
// counters to the command's progress line.
package bulk
