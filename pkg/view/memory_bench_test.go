package view

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
)

// BenchmarkQueryInMemory evaluates a has_opportunity scan (matching almost
// nobody) over a view built in memory, without Redis or HTTP: 200,000
// opportunities with 1–2 roles over 100,000 people, as BenchmarkQuery in
// pkg/api seeds them.
func BenchmarkQueryInMemory(b *testing.B) {
	const nOpps, nPeople = 200_000, 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	v := &View{cfg: Config{}, opps: map[string]*filters.Opportunity{}, persons: map[string]*personEntry{}}
	v.cfg = v.cfg.WithDefaults()
	v.cfg.Now = func() time.Time { return time.UnixMilli(1_800_000_000_000) }
	stages := []string{"Prospecting", "Qualification", "Needs Analysis", "Proposal", "Negotiation", "Closed Won", "Closed Lost"}
	roles := []string{"Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Technical Buyer", ""}
	regions := []string{"EMEA", "NA", "APAC", "LATAM"}
	for i := range nOpps {
		o := &filters.Opportunity{ID: fmt.Sprintf("006%015d", i), Known: true, Fields: map[string]cdc.Value{
			"Name":      cdc.String(fmt.Sprintf("Account %d - Deal %d", i%5000, i)),
			"StageName": cdc.String(stages[rng.IntN(len(stages))]), "Amount": cdc.Number(float64(5000 + 500*rng.IntN(400))),
			"Region__c": cdc.String(regions[rng.IntN(len(regions))]), "IsClosed": cdc.Bool(false),
		}}
		for j := range 1 + rng.IntN(2) {
			o.Roles = append(o.Roles, filters.Role{ContactID: fmt.Sprintf("003%015d", rng.IntN(nPeople)), Role: roles[(i+j)%len(roles)]})
		}
		o.Compact()
		v.opps[o.ID] = o
		for _, p := range o.AppendContacts(nil) {
			e := v.entry(p)
			e.opps = append(e.opps, o)
			e.last = 1_800_000_000_000
		}
	}
	q, err := filters.Parse([]byte(`{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":"closed won"},{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":199000},{"field":"Region__c","op":"is","value":"emea"}]}]}`),
		filters.NewCatalog([]filters.Field{
			{Entity: "Opportunity", Name: "StageName", Kind: cdc.KindString}, {Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber},
			{Entity: "Opportunity", Name: "Region__c", Kind: cdc.KindString},
		}), v.cfg.Now())
	if err != nil {
		b.Fatal(err)
	}
	v.loaded.Store(true)
	v.universe()
	b.ResetTimer()
	for range b.N {
		if _, _, err := v.Query(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}
