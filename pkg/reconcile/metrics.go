package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// metrics of reconciliation; every label has a closed set of values.
type metrics struct {
	// requests counts every HTTP request sent to Salesforce (retries
	// included) by endpoint kind and status class.
	requests *prometheus.CounterVec
	// callsUsed / callsLeft are the REST data calls counted against
	// salesforce.max_api_calls_per_day today (UTC), org-wide.
	callsUsed, callsLeft prometheus.Gauge
	records              *prometheus.CounterVec // entity, result
	errors               *prometheus.CounterVec // reason
	entityPending        *prometheus.GaugeVec   // entity
}

// Error reasons of oppsync_reconcile_errors_total.
const (
	reasonSalesforce    = "salesforce"     // an error answer or transport failure, retries spent
	reasonInvalidAnswer = "invalid_answer" // an answer refused at the edge (AnswerError)
	reasonBudget        = "budget"         // salesforce.max_api_calls_per_day spent
	reasonState         = "state"          // Redis
)

var (
	entities  = []string{cdc.EntityOpportunity, cdc.EntityContactRole}
	kinds     = []string{kindToken, kindSObject, kindQuery}
	classes   = []string{"2xx", "3xx", "4xx", "5xx", "error"}
	reasons   = []string{reasonSalesforce, reasonInvalidAnswer, reasonBudget, reasonState}
	recResult = []string{"read", "deleted"}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_salesforce_api_requests_total",
			Help: "HTTP requests sent to the Salesforce REST API by this instance (retries included), by endpoint kind and status class.",
		}, []string{"kind", "code_class"}),
		callsUsed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oppsync_salesforce_api_calls_used_today",
			Help: "REST data calls (sobject and query) counted against salesforce.max_api_calls_per_day since 00:00 UTC, all instances of the org.",
		}),
		callsLeft: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oppsync_salesforce_api_calls_remaining_today",
			Help: "REST data calls left today under salesforce.max_api_calls_per_day; -1 when unlimited.",
		}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_reconcile_records_total",
			Help: "Records re-read from Salesforce and applied, by entity and result (read, deleted).",
		}, []string{"entity", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_reconcile_errors_total",
			Help: "Reconciliation steps that failed, by reason (salesforce, invalid_answer, budget, state).",
		}, []string{"reason"}),
		entityPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oppsync_reconcile_entity_resync_pending",
			Help: "1 while a GAP_OVERFLOW whole-entity re-read waits (salesforce.overflow_resync off, or the daily API budget spent).",
		}, []string{"entity"}),
	}
	for _, k := range kinds {
		for _, c := range classes {
			m.requests.WithLabelValues(k, c)
		}
	}
	for _, e := range entities {
		for _, r := range recResult {
			m.records.WithLabelValues(e, r)
		}
		m.entityPending.WithLabelValues(e)
	}
	for _, r := range reasons {
		m.errors.WithLabelValues(r)
	}
	m.callsLeft.Set(-1)
	if reg != nil {
		reg.MustRegister(m.requests, m.callsUsed, m.callsLeft, m.records, m.errors, m.entityPending)
	}
	return m
}
