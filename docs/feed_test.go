package docs_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/state"
)

// docsCampaign is the campaign realStreams defines before its traffic:
// every trigger entry qualifies, so its stream holds campaign entries of
// all three kinds.
const docsCampaign = "docs-all"

// standardCatalog serves the catalog of standard fields (the campaign's
// triggers name no field).
type standardCatalog struct{}

func (standardCatalog) Catalog(context.Context) (*filters.Catalog, error) {
	return filters.NewCatalog(nil), nil
}

// realStreams pushes generated Salesforce traffic, with gap events and
// messages that must be dead-lettered, through the real decode → pipeline
// → state path (with campaign docsCampaign defined) into the test Redis,
// and returns every entry of the output streams by stream name
// ("added_to_opportunity", ..., "dlq", "resync", "campaign").
func realStreams(t *testing.T) (org string, entries map[string][]redis.XMessage) {
	t.Helper()
	rdb := testenv.NewRedis(t)
	org = testenv.UniqueName(t, "docs")
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	gen := synth.NewGenerator(synth.GenConfig{Org: org, Seed: 13, Opportunities: 40, Contacts: 100, GapRate: 0.05, DeleteRate: 0.05, UndeleteRate: 0.03})
	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var clock time.Time
	pipe, store := inproc.New(t, rdb, enc, decode.Config{}, state.Config{
		Org: org, Currency: "USD", IgnoreFields: synth.DefaultIgnoreFields, Now: func() time.Time { return clock },
	})
	ctx := context.Background()
	defs, err := campaigns.New(campaigns.Config{Org: org, Ignored: synth.DefaultIgnoreFields}, rdb, standardCatalog{})
	if err != nil {
		t.Fatal(err)
	}
	store.SetCampaigns(defs, state.CampaignOptions{})
	if _, _, err := defs.Put(ctx, docsCampaign, []byte(`{"name": "every trigger entry", "triggers": [
		{"trigger": "added_to_opportunity"}, {"trigger": "removed_from_opportunity"}, {"trigger": "opportunity_updated"}]}`)); err != nil {
		t.Fatal(err)
	}
	var batch []cdc.Message
	var off int64
	add := func(m cdc.Message) {
		m.Partition, m.Offset = 0, off
		off++
		batch = append(batch, m)
	}
	for i := 0; i < 600; i++ {
		ch := gen.Next()
		m, err := enc.Encode(ctx, ch)
		if err != nil {
			t.Fatal(err)
		}
		clock = time.UnixMilli(ch.Version.CommitTimestamp)
		add(m)
		switch i {
		case 100: // neither framing
			add(cdc.Message{Topic: m.Topic, Key: m.Key, Value: []byte("not avro")})
		case 200: // a schema id nobody knows
			add(cdc.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: []cdc.Header{{Key: "sf-schema-id", Value: []byte("0Xx000000000000")}}})
		}
	}
	if err := pipe.HandleBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	entries = map[string][]redis.XMessage{}
	for name, key := range replica.OutputStreams(org) {
		msgs, err := rdb.XRange(ctx, key, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		entries[name] = msgs
	}
	msgs, err := rdb.XRange(ctx, campaigns.NewKeys(org).Stream(docsCampaign), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	entries["campaign"] = msgs
	return org, entries
}
