package retention

import (
	"regexp"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Group label bounds: group names are chosen by whoever runs XGROUP CREATE.
const (
	maxGroupLabels = 16
	otherGroup     = "other"
)

var groupLabel = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)

type metrics struct {
	length  *prometheus.GaugeVec
	lag     *prometheus.GaugeVec
	maxlen  *prometheus.GaugeVec
	trimmed *prometheus.CounterVec

	mu     sync.Mutex
	groups map[string]map[string]bool // stream → group labels set by the last pass
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		length: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oppsync_stream_length", Help: "Entries in an output stream after the last retention pass.",
		}, []string{"stream"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oppsync_stream_group_lag",
			Help: "Entries a consumer group of an output stream has not acknowledged (pending + not yet delivered).",
		}, []string{"stream", "group"}),
		maxlen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "oppsync_stream_maxlen", Help: "streams.maxlen: the length an output stream is trimmed to once its groups have acknowledged the rest.",
		}, []string{"stream"}),
		trimmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oppsync_stream_trimmed_total", Help: "Entries removed from an output stream by this instance's retention passes.",
		}, []string{"stream"}),
		groups: map[string]map[string]bool{},
	}
	for _, c := range []prometheus.Collector{m.length, m.lag, m.maxlen, m.trimmed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe sets a stream's gauges from a pass and deletes the series of
// groups that are gone.
func (m *metrics) observe(st Stream) {
	m.length.WithLabelValues(st.Name).Set(float64(st.Length))
	m.trimmed.WithLabelValues(st.Name).Add(float64(st.Removed))
	lags := groupLags(st.Groups)
	m.mu.Lock()
	defer m.mu.Unlock()
	for g := range m.groups[st.Name] {
		if _, ok := lags[g]; !ok {
			m.lag.DeleteLabelValues(st.Name, g)
		}
	}
	seen := make(map[string]bool, len(lags))
	for g, v := range lags {
		m.lag.WithLabelValues(st.Name, g).Set(float64(v))
		seen[g] = true
	}
	m.groups[st.Name] = seen
}

// groupLags maps groups to label values: the first maxGroupLabels valid
// names (sorted) are their own label; the others, and names that are not
// valid labels, add up under "other".
func groupLags(groups []Group) map[string]int64 {
	sorted := append([]Group(nil), groups...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := map[string]int64{}
	own := 0
	for _, g := range sorted {
		if own < maxGroupLabels && g.Name != otherGroup && groupLabel.MatchString(g.Name) {
			out[g.Name] = g.Lag()
			own++
			continue
		}
		out[otherGroup] += g.Lag()
	}
	return out
}
