package bulk

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Outcomes of a row (the outcome label of oppsync_import_rows_total).
const (
	outcomeApplied   = "applied"   // a record change written
	outcomeDuplicate = "duplicate" // the state already held it, or newer
	outcomeSkipped   = "skipped"   // a deleted row (IsDeleted=true)
	outcomeRejected  = "rejected"  // malformed, wrong type, unknown reference, too long
)

type metrics struct {
	rowsVec  *prometheus.CounterVec
	bytesVec *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rowsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oppsync",
			Name:      "import_rows_total",
			Help:      "Bulk import rows by entity and outcome (applied, duplicate, skipped, rejected).",
		}, []string{"entity", "outcome"}),
		bytesVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "oppsync",
			Name:      "import_bytes_total",
			Help:      "Bytes of Bulk API CSV files read by the import, by entity.",
		}, []string{"entity"}),
	}
	// Every series exists from the start (entity and outcome are closed sets).
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		m.bytesVec.WithLabelValues(e)
		for _, o := range []string{outcomeApplied, outcomeDuplicate, outcomeSkipped, outcomeRejected} {
			m.rowsVec.WithLabelValues(e, o)
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rowsVec, m.bytesVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering import metrics: %w", err)
		}
	}
	return m, nil
}

// rows is the row counter of entity (a Typer's entity: one of two) and
// outcome (one of the constants above).
func (m *metrics) rows(entity, outcome string) prometheus.Counter {
	return m.rowsVec.WithLabelValues(entity, outcome)
}

func (m *metrics) bytes(entity string) prometheus.Counter {
	return m.bytesVec.WithLabelValues(entity)
}
