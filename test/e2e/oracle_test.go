package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/synth"
)

// The generator's ground truth against the decode → pipeline → state path
// in process (no Kafka): a fast check of the trigger semantics on a large,
// varied workload, partitioned by opportunity key as Kafka would be.
//
// Events naming several opportunities are keyed by the first one, so on
// several partitions their order relative to the other opportunities' later
// changes is not kept; the state still converges (per-field versions) but an
// out-of-date change emits nothing, as CONTRACT §4 says, while the oracle
// assumes commit order. They are therefore exercised on one partition only.
func TestOracleInProcess(t *testing.T) {
	tests := []struct {
		shape      synth.Shape
		partitions int
		multi      float64
	}{
		{synth.ShapePubSub, 4, -1},
		{synth.ShapeConnector, 4, -1},
		{synth.ShapePubSub, 1, 0.05},
		{synth.ShapeConnector, 1, 0.05},
	}
	for _, tt := range tests {
		shape, partitions := tt.shape, tt.partitions
		t.Run(fmt.Sprintf("%s/%d-partitions", shape, partitions), func(t *testing.T) {
			e := &env{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "org")}
			enc, err := synth.NewEncoder(synth.EncoderConfig{Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := decode.New(decode.Config{}, decode.NewMapSource(enc.Schemas()))
			if err != nil {
				t.Fatal(err)
			}
			st, err := state.New(state.Config{Org: e.org, IgnoreFields: synth.DefaultIgnoreFields}, e.rdb)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Init(context.Background()); err != nil {
				t.Fatal(err)
			}
			p := pipeline.New(pipeline.Config{}, dec, st, prometheus.NewRegistry(), zerolog.Nop())
			genCfg := synth.GenConfig{Org: e.org, Seed: 42, Opportunities: 120, MultiRecordRate: tt.multi}
			if shape == synth.ShapeConnector {
				genCfg.OpportunitySchema = enc.Schemas()[enc.SchemaID(cdc.EntityOpportunity)]
				genCfg.ContactRoleSchema = enc.Schemas()[enc.SchemaID(cdc.EntityContactRole)]
			}
			gen := synth.NewGenerator(genCfg)
			batches := make([][]cdc.Message, partitions)
			offsets := make([]int64, partitions)
			for i := 0; i < 3000; i++ {
				m, err := enc.Encode(context.Background(), gen.Next())
				if err != nil {
					t.Fatal(err)
				}
				part := int(fnv(m.Key) % uint32(partitions))
				m.Topic, m.Partition, m.Offset = "t", part, offsets[part]
				offsets[part]++
				batches[part] = append(batches[part], m)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, b := range batches {
				for len(b) > 0 {
					n := min(len(b), 300)
					if err := p.HandleBatch(ctx, b[:n]); err != nil {
						t.Fatal(err)
					}
					b = b[n:]
				}
			}
			compare(t, e.triggers(), gen.Expected())
		})
	}
}

func fnv(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
