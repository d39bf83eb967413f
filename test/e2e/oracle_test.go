package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/state"
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
//
// With ahead, batches are begun before the previous one is durable, as the
// service's source does (pipeline.BeginBatch); otherwise one at a time.
func TestOracleInProcess(t *testing.T) {
	tests := []struct {
		shape      synth.Shape
		partitions int
		multi      float64
		ahead      bool
	}{
		{synth.ShapePubSub, 4, -1, false},
		{synth.ShapeConnector, 4, -1, false},
		{synth.ShapePubSub, 1, 0.05, false},
		{synth.ShapeConnector, 1, 0.05, false},
		{synth.ShapePubSub, 4, -1, true},
		{synth.ShapePubSub, 1, 0.05, true},
	}
	for _, tt := range tests {
		shape, partitions := tt.shape, tt.partitions
		t.Run(fmt.Sprintf("%s/%d-partitions/ahead=%v", shape, partitions, tt.ahead), func(t *testing.T) {
			e := &env{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "org")}
			enc, err := synth.NewEncoder(synth.EncoderConfig{Shape: shape})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := inproc.New(t, e.rdb, enc, decode.Config{}, state.Config{Org: e.org, IgnoreFields: synth.DefaultIgnoreFields})
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
				feed(t, ctx, p, b, tt.ahead)
			}
			compare(t, e.triggers(), gen.Expected())
		})
	}
}

// feed hands msgs (one partition) to p in batches of 300: one at a time, or
// each begun before the previous one is durable, as the service's source
// does.
func feed(t *testing.T, ctx context.Context, p *pipeline.Pipeline, msgs []cdc.Message, ahead bool) {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var inflight *pipeline.Pending
	for len(msgs) > 0 {
		batch := msgs[:min(len(msgs), 300)]
		msgs = msgs[len(batch):]
		if !ahead {
			must(p.HandleBatch(ctx, batch))
			continue
		}
		pd := p.BeginBatch(ctx, batch)
		if inflight != nil {
			must(inflight.Wait())
		}
		inflight = pd
		if pd.Sync() {
			must(pd.Wait())
			inflight = nil
		}
	}
	if inflight != nil {
		must(inflight.Wait())
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
