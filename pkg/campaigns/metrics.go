package campaigns

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the campaign metrics of CONTRACT §8. The campaign label of
// oppsync_campaign_entries_total takes only the ids of the active
// campaigns of the last set loaded: a campaign that leaves the set loses
// its series, so there are at most campaigns.max of them.
type Metrics struct {
	entries     *prometheus.CounterVec
	evaluations prometheus.Counter
	lag         prometheus.Histogram
	active      prometheus.Gauge

	mu     sync.Mutex
	labels map[string]bool
}

// NewMetrics registers the campaign metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_campaign_entries_total", Help: "Campaign entries written, by campaign id (active campaigns only).",
		}, []string{"campaign"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oppsync_campaign_evaluations_total", Help: "(Campaign, trigger entry) pairs evaluated in applied script calls.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "oppsync_campaign_lag_seconds", Help: "Campaign entry written minus the trigger's occurred_at.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "oppsync_campaigns_active", Help: "Active campaigns the apply path evaluates.",
		}),
		labels: map[string]bool{},
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.entries, m.evaluations, m.lag, m.active} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Loaded records the active set: the gauge, and the label values allowed
// (series of campaigns no longer active are deleted). Safe for concurrent
// use.
func (m *Metrics) Loaded(set *Set) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := map[string]bool{}
	for _, c := range set.Campaigns {
		now[c.ID] = true
		if !m.labels[c.ID] {
			m.entries.WithLabelValues(c.ID) // pre-created at 0
		}
	}
	for id := range m.labels {
		if !now[id] {
			m.entries.DeleteLabelValues(id)
		}
	}
	m.labels = now
	m.active.Set(float64(len(set.Campaigns)))
}

// Written records what one applied call wrote. Entries of a campaign not in
// the last set loaded (it was deleted meanwhile) are not labelled.
func (m *Metrics) Written(entries map[string]int, evaluations int, lags []time.Duration) {
	m.evaluations.Add(float64(evaluations))
	for _, l := range lags {
		m.lag.Observe(l.Seconds())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, n := range entries {
		if m.labels[id] {
			m.entries.WithLabelValues(id).Add(float64(n))
		}
	}
}
