package api

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/view"
	"github.com/oppsync/oppsync/schemas"
)

// Benchmark sizes: 200,000 opportunities over 100,000 people by default;
// OPPSYNC_BENCH_OPPS sets the opportunities (the people are half as many),
// e.g. 1000000 for the large-org target (seed it into a private Redis).
var benchOpps, benchPeople = benchScale()

const benchParts = 4

func benchScale() (opps, people int) {
	opps = 200_000
	if s := os.Getenv("OPPSYNC_BENCH_OPPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 || n > 10_000_000 {
			panic(fmt.Sprintf("OPPSYNC_BENCH_OPPS=%q: want a number of opportunities from 1000 to 10000000", s))
		}
		opps = n
	}
	return opps, opps / 2
}

var benchStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// benchSeed is the seeded org shared by every sub-benchmark of one run.
type benchSeed struct {
	name  string
	store *state.Store
	view  *view.View
	srv   *Server
	stop  func()
	load  time.Duration
	apply time.Duration
	heap  uint64 // live heap the loaded view holds (after GC, before and after its load)
}

// liveHeap returns the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var (
	benchOnce sync.Once
	benchOrg  *benchSeed
	benchErr  error
)

type schemaInfo struct {
	id     string
	fields []cdc.FieldInfo
}

func parsed(entity string) (schemaInfo, error) {
	text := schemas.PubSub(entity)
	s, err := decode.ParseSchema(text)
	if err != nil {
		return schemaInfo{}, err
	}
	return schemaInfo{id: schemas.ID(text), fields: s.Fields()}, nil
}

// seedBench writes 200,000 opportunities with 1–2 contact roles each over
// 100,000 contacts, then stage updates and role deletions for activity,
// straight into state.ApplyBatch (4 partitions in parallel).
//
// With OPPSYNC_BENCH_ORG set, the org of that name is seeded once and kept
// (reused by later runs); otherwise a fresh org is seeded and deleted.
func seedBench(b *testing.B, rdb *redis.Client) (*benchSeed, error) {
	name := os.Getenv("OPPSYNC_BENCH_ORG")
	keep := name != ""
	if !keep {
		name = testenv.UniqueName(b, "bench")
	}
	marker := "oppsync:{" + name + "}:bench-seeded"
	clock := benchStart.Add(40 * 24 * time.Hour)
	store, err := state.New(state.Config{Org: name, Currency: "USD",
		IgnoreFields: synth.DefaultIgnoreFields, Now: func() time.Time { return clock }}, rdb)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := store.Init(ctx); err != nil {
		return nil, err
	}
	if keep {
		if n, err := rdb.Exists(ctx, marker).Result(); err == nil && n == 1 {
			return &benchSeed{name: name, store: store}, nil
		}
	}
	oppSchema, err := parsed(cdc.EntityOpportunity)
	if err != nil {
		return nil, err
	}
	roleSchema, err := parsed(cdc.EntityContactRole)
	if err != nil {
		return nil, err
	}
	contacts := make([]string, benchPeople)
	for i := range contacts {
		contacts[i] = synth.SalesforceID("003", uint64(i+1))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	stages := synth.Stages
	roles := []string{"Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Technical Buyer", ""}
	regions := []string{"EMEA", "NA", "APAC", "LATAM"}
	parts := make([][]state.Item, benchParts)
	var seq int64
	ev := func(entity string, ct cdc.ChangeType, id string, ts int64, sch schemaInfo, kv ...any) *cdc.Event {
		seq++
		var fields []cdc.Field
		for i := 0; i < len(kv); i += 2 {
			fields = append(fields, cdc.Field{Name: kv[i].(string), Value: kv[i+1].(cdc.Value), Changed: true})
		}
		return &cdc.Event{Entity: entity, ChangeType: ct, RecordIDs: []string{id},
			Version: cdc.Version{CommitTimestamp: ts, CommitNumber: seq, SequenceNumber: 1},
			Header:  cdc.EventHeader{TransactionKey: fmt.Sprintf("tx%d", seq), SequenceNumber: 1, CommitUser: "005B"},
			Fields:  fields, Schema: sch.fields, SchemaID: sch.id}
	}
	add := func(p int, e *cdc.Event) {
		m := &cdc.Message{Topic: "bench", Partition: p, Offset: int64(len(parts[p]))}
		parts[p] = append(parts[p], state.Item{Msg: m, Event: e})
	}
	type roleRef struct {
		id string
		p  int
	}
	var allRoles []roleRef
	oppIDs := make([]string, benchOpps)
	span := int64(30 * 24 * time.Hour / time.Millisecond)
	for i := 0; i < benchOpps; i++ {
		id := synth.SalesforceID("006", uint64(i+1))
		oppIDs[i] = id
		p := i % benchParts
		ts := benchStart.UnixMilli() + int64(i)*span/int64(benchOpps)
		st := stages[rng.IntN(len(stages))]
		primary := contacts[rng.IntN(benchPeople)]
		add(p, ev(cdc.EntityOpportunity, cdc.Create, id, ts, oppSchema,
			"Name", cdc.String(fmt.Sprintf("Account %d - Deal %d", i%5000, i)),
			"StageName", cdc.String(st.Name), "Probability", cdc.Number(st.Probability),
			"IsClosed", cdc.Bool(st.IsClosed), "IsWon", cdc.Bool(st.IsWon),
			"Amount", cdc.Number(float64(5000+500*rng.IntN(400))),
			"CloseDate", cdc.DateFromMillis(ts+int64(rng.IntN(180))*86_400_000),
			"Region__c", cdc.String(regions[rng.IntN(len(regions))]),
			"Seats__c", cdc.Number(float64(5*(1+rng.IntN(200)))),
			"ContactId", cdc.String(primary),
			"LastModifiedDate", cdc.DateTimeFromMillis(ts)))
		n := 1 + rng.IntN(2)
		for j := 0; j < n; j++ {
			rid := synth.SalesforceID("00K", uint64(i*2+j+1))
			c := primary
			if j > 0 {
				c = contacts[rng.IntN(benchPeople)]
			}
			add(p, ev(cdc.EntityContactRole, cdc.Create, rid, ts+1, roleSchema,
				"OpportunityId", cdc.String(id), "ContactId", cdc.String(c), "Role", cdc.String(roles[rng.IntN(len(roles))])))
			allRoles = append(allRoles, roleRef{rid, p})
		}
	}
	// Activity: stage changes and removed roles over the last days.
	later := benchStart.UnixMilli() + span
	for k := 0; k < benchOpps/10; k++ {
		i := rng.IntN(benchOpps)
		st := stages[rng.IntN(len(stages))]
		add(i%benchParts, ev(cdc.EntityOpportunity, cdc.Update, oppIDs[i], later+int64(k)*1000, oppSchema,
			"StageName", cdc.String(st.Name), "Probability", cdc.Number(st.Probability),
			"IsClosed", cdc.Bool(st.IsClosed), "IsWon", cdc.Bool(st.IsWon)))
	}
	for k := 0; k < len(allRoles)/30; k++ {
		r := allRoles[rng.IntN(len(allRoles))]
		add(r.p, ev(cdc.EntityContactRole, cdc.Delete, r.id, later+int64(k)*1000+500, roleSchema))
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchParts)
	for p := range parts {
		wg.Add(1)
		go func(items []state.Item) {
			defer wg.Done()
			for i := 0; i < len(items); i += 2000 {
				if _, err := store.ApplyBatch(ctx, items[i:min(i+2000, len(items))]); err != nil {
					errs <- err
					return
				}
			}
		}(parts[p])
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	if keep {
		if err := rdb.Set(ctx, marker, "1", 0).Err(); err != nil {
			return nil, err
		}
	}
	return &benchSeed{name: name, store: store, apply: time.Since(start)}, nil
}

func setupBench(b *testing.B) *benchSeed {
	benchOnce.Do(func() {
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(b), PoolSize: 32})
		seed, err := seedBench(b, rdb)
		if err != nil {
			benchErr = err
			return
		}
		clock := benchStart.Add(40 * 24 * time.Hour)
		view, err := view.New(seed.store.Replica(), view.Config{Now: func() time.Time { return clock }})
		if err != nil {
			benchErr = err
			return
		}
		before := liveHeap()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- view.Run(ctx) }()
		// If the view does not load, Eventually ends this goroutine: the
		// benchmarks that run next must then fail too, and the view stop.
		benchErr = errors.New("the view did not load")
		defer func() {
			if benchOrg == nil {
				cancel()
			}
		}()
		testenv.Eventually(b, 5*time.Minute, func() (bool, string) {
			err := view.Ready(ctx)
			return err == nil, fmt.Sprintf("view: %v", err)
		})
		benchErr = nil
		seed.load = time.Since(start)
		seed.view = view
		// Measure the steady state, not the collection of the seeding
		// garbage (liveHeap collects).
		if after := liveHeap(); after > before {
			seed.heap = after - before
		}
		seed.srv, err = New(Config{Now: func() time.Time { return clock }}, Deps{Queries: view, Gatherer: prometheus.NewRegistry()}, zerolog.Nop())
		if err != nil {
			benchErr = err
		}
		seed.stop = func() {
			cancel()
			<-done
			if os.Getenv("OPPSYNC_BENCH_ORG") == "" {
				testenv.DropOrg(rdb, seed.name)
			}
			_ = rdb.Close()
		}
		benchOrg = seed
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchOrg
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchOrg != nil && benchOrg.stop != nil {
		benchOrg.stop()
	}
	os.Exit(code)
}

// BenchmarkQuery measures POST /v1/people/query through the API handler
// against 100,000 people and 200,000 opportunities in the real Redis (see
// benchScale), per filter kind, and reports p50/p99 latency; "view"
// reports the live heap the loaded view holds per opportunity and how long
// the load took. "scan" queries match few
// people, so every page walks the whole universe (the worst case).
func BenchmarkQuery(b *testing.B) {
	seed := setupBench(b)
	b.Logf("seeded %d opportunities / %d people: apply %v, view load %v, view heap %d MB", benchOpps, benchPeople,
		seed.apply.Round(time.Millisecond), seed.load.Round(time.Millisecond), seed.heap>>20)
	b.Run("view", func(b *testing.B) {
		for range b.N {
		}
		b.ReportMetric(float64(seed.heap)/float64(benchOpps), "heap_bytes/opp")
		b.ReportMetric(float64(seed.view.ActivityBytes())/float64(benchOpps), "activity_bytes/opp")
		b.ReportMetric(seed.load.Seconds(), "load_s")
	})
	queries := []struct{ name, body string }{
		{"has_opportunity", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"IsClosed","op":"is","value":false},{"field":"Amount","op":"gte","value":100000}]}]}`},
		{"has_opportunity_scan", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"StageName","op":"is","value":"closed won"},{"field":"Role","op":"is","value":"Decision Maker"},{"field":"Amount","op":"gte","value":199000},{"field":"Region__c","op":"is","value":"emea"}]}]}`},
		{"has_opportunity_not", `{"filters":[{"filter":"has_opportunity","not":true}]}`},
		{"number_of_opportunities", `{"filters":[{"filter":"number_of_opportunities","op":"gte","value":3}]}`},
		{"number_of_opportunities_scan", `{"filters":[{"filter":"number_of_opportunities","op":"gte","value":12}]}`},
		{"total_opportunity_amount", `{"filters":[{"filter":"total_opportunity_amount","op":"between","value":[100000,300000]}]}`},
		{"total_opportunity_amount_scan", `{"filters":[{"filter":"total_opportunity_amount","op":"gt","value":1500000}]}`},
		{"total_expected_revenue", `{"filters":[{"filter":"total_expected_revenue","op":"gt","value":100000}]}`},
		{"total_expected_revenue_scan", `{"filters":[{"filter":"total_expected_revenue","op":"gt","value":1200000}]}`},
		{"match_any_limit_10000", `{"match":"any","limit":10000,"filters":[{"filter":"number_of_opportunities","op":"is","value":0},{"filter":"has_opportunity","constraints":[{"field":"Region__c","op":"is","value":"LATAM"}]}]}`},
		{"was_added_to_opportunity", `{"filters":[{"filter":"was_added_to_opportunity","within":"720h","min_times":2}]}`},
		{"was_removed_from_opportunity", `{"filters":[{"filter":"was_removed_from_opportunity","within":"720h"}]}`},
		{"opportunity_updated", `{"filters":[{"filter":"opportunity_updated","field":"StageName","within":"720h","constraints":[{"field":"new_value","op":"is","value":"Closed Won"}]}]}`},
		{"opportunity_updated_scan", `{"filters":[{"filter":"opportunity_updated","field":"StageName","within":"720h","min_times":3}]}`},
	}
	h := seed.srv.Handler()
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			var matched int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				r := do(b, h, "POST", "/v1/people/query", q.body)
				lat = append(lat, time.Since(start))
				if r.code != http.StatusOK {
					b.Fatalf("%d %s", r.code, r.body)
				}
				matched = len(r.body)
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50_ms")
			b.ReportMetric(pct(0.99), "p99_ms")
			_ = matched
		})
	}
}
