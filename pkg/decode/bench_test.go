package decode

import (
	"context"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

// typicalUpdate is a stage change: the documented bitmap plus an enriched
// AccountId, as Salesforce sends for most Opportunity updates.
func typicalUpdate() map[string]any {
	return map[string]any{"StageName": "Closed Won", "Probability": 100.0, "IsClosed": true, "IsWon": true,
		"ForecastCategory": "Closed", "ForecastCategoryName": "Closed", "LastModifiedDate": commitTS,
		"LastStageChangeDate": commitTS, "AccountId": "001000000000001AAA"}
}

func BenchmarkDecodePubSubUpdate(b *testing.B) {
	id := schemas.ID(oppSchema)
	d := newDecoder(b, Config{}, map[string]string{id: oppSchema})
	msg := pubsubMsg(id, pubsubPayload(b, oppSchema, hdr{entity: "Opportunity", ct: "UPDATE",
		ids: []string{"006000000000001AAA"}, changed: []string{"0x0503C0A0"}}, typicalUpdate()))
	benchDecode(b, d, msg)
}

func BenchmarkDecodeConfluentUpdate(b *testing.B) {
	d := newDecoder(b, Config{}, map[string]string{"registry:1": oppSchema})
	msg := wireMsg(1, pubsubPayload(b, oppSchema, hdr{entity: "Opportunity", ct: "UPDATE",
		ids: []string{"006000000000001AAA"}, changed: []string{"0x0503C0A0"}}, typicalUpdate()))
	benchDecode(b, d, msg)
}

func BenchmarkDecodeConnectorUpdate(b *testing.B) {
	d := newDecoder(b, Config{}, map[string]string{"registry:2": oppConnSchema})
	msg := wireMsg(2, connectorPayload(b, oppConnSchema, hdr{entity: "Opportunity", ct: "UPDATE",
		ids: []string{"006000000000001AAA"}, changed: []string{"StageName", "Probability", "LastModifiedDate"}},
		map[string]any{"StageName": "Closed Won", "Probability": 100.0}))
	benchDecode(b, d, msg)
}

// benchDecode measures decoding msg with d, after a first decode that
// caches its schema.
func benchDecode(b *testing.B, d *Decoder, msg *cdc.Message) {
	ctx := context.Background()
	if _, err := d.Decode(ctx, msg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg.Value)))
	for b.Loop() {
		if _, err := d.Decode(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
}
