// Package inproc assembles the decode → pipeline → state path in process,
// for tests that exercise it without Kafka.
package inproc

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/state"
)

// New returns a pipeline that decodes what enc encodes (with dcfg) and
// applies it with a Store for cfg on rdb, its script loaded.
func New(t testing.TB, rdb redis.UniversalClient, enc *synth.Encoder, dcfg decode.Config, cfg state.Config) (*pipeline.Pipeline, *state.Store) {
	t.Helper()
	dec, err := decode.New(dcfg, decode.NewMapSource(enc.Schemas()))
	if err != nil {
		t.Fatal(err)
	}
	st := Store(t, rdb, cfg)
	return pipeline.New(pipeline.Config{}, dec, st, prometheus.NewRegistry(), zerolog.Nop()), st
}

// Store returns a Store for cfg on rdb, its script loaded.
func Store(t testing.TB, rdb redis.UniversalClient, cfg state.Config) *state.Store {
	t.Helper()
	st, err := state.New(cfg, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}
