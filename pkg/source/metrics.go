package source

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag        *prometheus.GaugeVec
	commitsOK  prometheus.Counter
	commitsErr prometheus.Counter
	rebalances prometheus.Counter
	batchSize  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	commits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "oppsync",
		Name:      "kafka_commits_total",
		Help:      "Offset commits to the consumer group, by result (ok, error).",
	}, []string{"result"})
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "oppsync",
			Name:      "kafka_consumer_lag",
			Help:      "Messages behind the high watermark, per assigned partition, as of the last batch.",
		}, []string{"topic", "partition"}),
		commitsOK:  commits.WithLabelValues("ok"),
		commitsErr: commits.WithLabelValues("error"),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "oppsync",
			Name:      "kafka_rebalances_total",
			Help:      "Consumer group generations (partition assignments) received.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "oppsync",
			Name:      "kafka_batch_size",
			Help:      "Messages per HandleBatch call.",
			Buckets:   []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lag, commits, m.rebalances, m.batchSize} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering source metrics: %w", err)
		}
	}
	return m, nil
}
