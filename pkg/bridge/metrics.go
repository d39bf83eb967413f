package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	events     *prometheus.CounterVec // {channel}
	inFlight   *prometheus.GaugeVec   // {channel}
	resets     *prometheus.CounterVec // {channel}
	reconnects prometheus.Counter
	schemas    prometheus.Counter
	ack        prometheus.Histogram
}

// newMetrics registers the bridge's metrics on reg; lag reports the
// current lag in seconds.
func newMetrics(reg prometheus.Registerer, channels []string, lag func() float64) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "oppsync_bridge_events_total",
			Help: "Events written to Kafka (acknowledged by all in-sync replicas), by Pub/Sub channel."}, []string{"channel"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "oppsync_bridge_in_flight",
			Help: "Events requested from Salesforce and not yet acknowledged by Kafka, by channel (at most bridge.max_in_flight)."}, []string{"channel"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "oppsync_bridge_replay_resets_total",
			Help: "Subscriptions restarted at the earliest or latest event because Salesforce no longer had the stored replay id (bridge.on_expired_replay)."}, []string{"channel"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "oppsync_bridge_reconnects_total",
			Help: "Subscriptions started again after a dropped, idle or failed stream."}),
		schemas: prometheus.NewCounter(prometheus.CounterOpts{Name: "oppsync_bridge_schemas_published_total",
			Help: "Schemas fetched with GetSchema and published to bridge.schemas_topic."}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "oppsync_bridge_ack_seconds",
			Help:    "Time from the receipt of an event to its acknowledgement by Kafka.",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
	lagGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "oppsync_bridge_lag_seconds",
		Help: "Now minus the commit time of the newest event written, the highest over channels; 0 for a channel a keepalive showed caught up."}, lag)
	for _, c := range []prometheus.Collector{m.events, m.inFlight, m.resets, m.reconnects, m.schemas, m.ack, lagGauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, ch := range channels {
		m.events.WithLabelValues(ch)
		m.inFlight.WithLabelValues(ch)
		m.resets.WithLabelValues(ch)
	}
	return m, nil
}
