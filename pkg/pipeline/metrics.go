package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oppsync/oppsync/pkg/cdc"
)

type metrics struct {
	consumed     *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	decodeErrors *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	triggers     *prometheus.CounterVec
	duplicates   prometheus.Counter
	resync       *prometheus.CounterVec
	applyTime    prometheus.Histogram
	lag          prometheus.Histogram
	retries      prometheus.Counter
	conflicts    prometheus.Counter
	panics       *prometheus.CounterVec
}

// entityLabel is the entity label of a metric: entity names come from
// Kafka, and every distinct label value would be a series of its own.
func entityLabel(entity string) string {
	switch entity {
	case cdc.EntityOpportunity, cdc.EntityContactRole:
		return entity
	}
	return "other"
}

// changeTypeLabel is the change_type label of a metric: one of the
// documented change types, or "other".
func changeTypeLabel(ct cdc.ChangeType) string {
	if c, err := cdc.ParseChangeType(string(ct)); err == nil {
		return string(c)
	}
	return "other"
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_events_consumed_total", Help: "Change events decoded, by entity (Opportunity, OpportunityContactRole or other) and change type.",
		}, []string{"entity", "change_type"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_events_skipped_total", Help: "Messages consumed but not applied, by reason.",
		}, []string{"reason"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_decode_errors_total", Help: "Messages that failed to decode, by reason (retried ones included).",
		}, []string{"reason"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_dead_letters_total", Help: "Messages written to the dead-letter stream, by stage.",
		}, []string{"stage"}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_triggers_emitted_total", Help: "Trigger entries appended, by trigger.",
		}, []string{"trigger"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oppsync_duplicates_total", Help: "Record changes already reflected in the state (redelivered or out of date).",
		}),
		resync: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_resync_notices_total", Help: "Resync notices written for gap events, by entity.",
		}, []string{"entity"}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oppsync_apply_duration_seconds", Help: "Time to apply one batch to Redis (all attempts).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oppsync_end_to_end_lag_seconds", Help: "Now minus the change's commit timestamp, when its effects became durable.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 20),
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oppsync_apply_retries_total", Help: "Transient failures retried (Redis or Schema Registry unavailable).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oppsync_apply_conflicts_total", Help: "Scripts recomputed because another writer changed the same opportunity first.",
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_panics_total", Help: "Panics contained while handling messages, by stage (decode, apply); each dead-letters its message (internal_error).",
		}, []string{"stage"}),
	}
	// Series that exist from the start, so dashboards and alerts see zeros
	// rather than nothing.
	for _, stage := range []string{stageDecode, stageApply} {
		m.deadLetters.WithLabelValues(stage)
		m.panics.WithLabelValues(stage)
	}
	for _, r := range []string{cdc.ReasonUnknownFraming, cdc.ReasonSchemaNotFound, cdc.ReasonMalformedAvro,
		cdc.ReasonNotAChangeEvent, cdc.ReasonBadBitmap, cdc.ReasonTooLarge, cdc.ReasonRegistry, cdc.ReasonInvalidID} {
		m.decodeErrors.WithLabelValues(r)
	}
	for _, r := range []string{"other_entity", "snapshot", "already_applied", "unknown_contact_role"} {
		m.skipped.WithLabelValues(r)
	}
	for _, tr := range []string{cdc.TriggerAdded, cdc.TriggerRemoved, cdc.TriggerUpdated} {
		m.triggers.WithLabelValues(tr)
	}
	reg.MustRegister(m.consumed, m.skipped, m.decodeErrors, m.deadLetters, m.triggers, m.duplicates,
		m.resync, m.applyTime, m.lag, m.retries, m.conflicts, m.panics)
	return m
}
