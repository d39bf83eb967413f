package state

import (
	"context"
	"fmt"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// ApplyOptions tune ApplyEvents.
type ApplyOptions struct {
	// Quiet applies the changes without trigger entries or activity: an
	// import of existing records is history, not news.
	Quiet bool
	// StaleMarks is set by re-reads (pkg/reconcile): per entity, record id →
	// the stale marker (StaleMarks) read before the records were fetched,
	// "" when the record was not stale. A re-read of a record whose marker
	// has changed since (a newer gap came while it was fetched) applies its
	// data but leaves the record stale.
	StaleMarks map[string]map[string]string
}

// ApplyEvents applies change events that did not come from Kafka (imports,
// resyncs): the same version-checked scripts as ApplyBatch, without a
// partition position. SNAPSHOT events are applied as full records whose
// differences from the state produce triggers (unless Quiet). It may run
// while the service consumes: the revision check orders concurrent writers
// and the versions keep newer CDC values. Events of one record are applied
// in the order given.
func (s *Store) ApplyEvents(ctx context.Context, evs []*cdc.Event, opts ApplyOptions) (BatchResult, error) {
	var total BatchResult
	items := make([]Item, len(evs))
	for i, ev := range evs {
		items[i] = Item{Event: ev}
	}
	for attempt := 0; len(items) > 0; attempt++ {
		if attempt == maxAttempts {
			return total, fmt.Errorf("gave up after %d conflicting attempts", maxAttempts)
		}
		p, err := s.plan(ctx, items, opts)
		if err != nil {
			return total, err
		}
		txs := s.build(p, "", "", items)
		total.Duplicates += p.duplicates
		total.Unresolved += p.unresolved
		if len(txs) == 0 {
			return total, nil
		}
		var failed []*tx
		for i, c := range s.send(ctx, txs) {
			ok, err := applied(c)
			if err != nil {
				s.cache.clear()
				return total, fmt.Errorf("applying %d events: %w", len(items), err)
			}
			if ok {
				total.add(txs[i].counts)
				continue
			}
			failed = append(failed, txs[i])
		}
		// Groups whose calls all applied are current; the others are
		// reloaded and their events retried (their records' duplicates are
		// recognised by version).
		s.keepGroups(p, failed)
		if len(failed) == 0 {
			return total, nil
		}
		retryGroups := map[string]bool{}
		for _, t := range failed {
			for _, g := range t.groups {
				retryGroups[g] = true
			}
		}
		total.Conflicts++
		var retry []Item
		for _, it := range items {
			if it.Event == nil { // dead-lettered
				continue
			}
			for _, id := range it.Event.RecordIDs {
				if opp, ok := p.recordOpp(it.Event, id); ok && retryGroups[opp] {
					retry = append(retry, it)
					break
				}
			}
		}
		items = retry
	}
	return total, nil
}
