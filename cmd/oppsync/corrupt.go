package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
)

// corruptReporter counts and logs (at warn, without the stored value) the
// stored records the state store skipped because they do not parse.
func corruptReporter(reg prometheus.Registerer, log zerolog.Logger) func(replica.Corrupt) {
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oppsync_corrupt_records_total",
		Help: "Stored records skipped on read because they do not parse, by kind (opportunity_field, contact_role, revision, key).",
	}, []string{"kind"})
	for _, k := range []string{replica.CorruptField, replica.CorruptRole, replica.CorruptRevision, replica.CorruptKey} {
		counter.WithLabelValues(k)
	}
	reg.MustRegister(counter)
	log = log.With().Str("component", "state").Logger()
	return func(c replica.Corrupt) {
		counter.WithLabelValues(c.Kind).Inc()
		e := log.Warn().Str("kind", c.Kind)
		if cdc.ValidID(c.OpportunityID) {
			e = e.Str("opportunity_id", c.OpportunityID)
		} else {
			e = e.Int("invalid_opportunity_id_length", len(c.OpportunityID))
		}
		if printable(c.Name) {
			e = e.Str("name", c.Name)
		}
		e.Msg("skipping a stored record that does not parse; repair or delete it")
	}
}

// printable reports a short name of printable ASCII, safe to log as is.
func printable(s string) bool {
	if len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
