package inproc_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/state"
)

// fuzzDB is the Redis logical database FuzzMessage writes to, and no other
// test: every key in it must carry the prefix of a FuzzMessage org.
const fuzzDB = 13

// fuzzOrgPrefix starts the org of every FuzzMessage process (the fuzzer
// runs several).
const fuzzOrgPrefix = "fuzzmsg-"

// FuzzMessage sends whole Kafka messages (value, key, headers) through
// decode, the pipeline and a real Redis. For every input: nothing panics
// (a panic the pipeline contained counts too), no key outside the org's
// prefix is touched nor any record id that is not a Salesforce id used in a
// key (or as an opportunity group), the message is applied or dead-lettered within a
// deadline (its partition's stored position moves past it), and a valid
// Opportunity CREATE after it is still applied.
func FuzzMessage(f *testing.F) {
	ctx := context.Background()
	// Generous timeouts: the test Redis is shared, and a slow answer is
	// not a finding.
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(f), DB: fuzzDB,
		DialTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	f.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		f.Fatalf("pinging test redis: %v", err)
	}
	org := testenv.UniqueName(f, strings.TrimSuffix(fuzzOrgPrefix, "-"))
	f.Cleanup(func() { testenv.DropOrg(rdb, org) })
	keys := &keyCheck{prefix: "oppsync:{" + org + "}:"}
	rdb.AddHook(keys)

	// Seeds: the message shapes oppsync reads, and the inputs that broke it.
	script := synth.NewScript(time.Time{})
	reg := synth.NewRegistry()
	encoders := map[string]*synth.Encoder{}
	for name, cfg := range map[string]synth.EncoderConfig{
		"pubsub":    {},
		"confluent": {Framing: synth.FramingConfluent, Registry: reg},
		"connector": {Framing: synth.FramingConfluent, Shape: synth.ShapeConnector, Registry: reg},
	} {
		enc, err := synth.NewEncoder(cfg)
		if err != nil {
			f.Fatal(err)
		}
		encoders[name] = enc
	}
	const existing = "0068c000000iyJbAAI"
	encodeFor := func(tb testing.TB, enc string, ch synth.Change) cdc.Message {
		m, err := encoders[enc].Encode(ctx, ch)
		if err != nil {
			tb.Fatal(err)
		}
		return m
	}
	encode := func(enc string, ch synth.Change) cdc.Message { return encodeFor(f, enc, ch) }
	add := func(m cdc.Message) {
		schemaID, extraKey, extraVal := "", "", []byte(nil)
		for _, h := range m.Headers {
			if h.Key == synth.DefaultSchemaHeader {
				schemaID = string(h.Value)
			} else {
				extraKey, extraVal = h.Key, h.Value
			}
		}
		f.Add(m.Value, m.Key, schemaID, extraKey, extraVal)
	}
	name := synth.F("Name", cdc.String("Acme"))
	add(encode("pubsub", script.OpportunityCreated(existing, name, synth.F("Amount", cdc.Number(5000)))))
	add(encode("pubsub", script.ContactRoleAdded("00K8c000000iyJbAAI", existing, "0038c000000FmhnAAC", "Buyer")))
	add(encode("confluent", script.OpportunityUpdated(existing, synth.F("Amount", cdc.Number(7000)))))
	add(encode("connector", script.OpportunityUpdated(existing, synth.F("StageName", cdc.String("Closed Won")))))
	for _, id := range []string{
		existing + ":roles", "006{other}00000AAA", "006}00000000000AAA", "006*", "0068c000000iyJbAAI\r\nX", "../../etc/passwd",
		strings.Repeat("0", 100_000), "006\xff\xfe",
	} {
		add(encode("pubsub", script.OpportunityCreated(id, name)))
		add(encode("pubsub", script.ContactRoleAdded("00K8c000000iyJcAAI", id, id, "")))
		add(encode("pubsub", script.ContactRoleAdded(id, existing, "0038c000000FmhnAAC", "")))
	}
	// entityName that is not valid UTF-8 (same length, so the Avro still
	// parses).
	m := encode("pubsub", script.OpportunityCreated(existing, name))
	m.Value = bytes.Replace(m.Value, []byte(cdc.EntityOpportunity), []byte("Opportunit\xff"), 1)
	add(m)
	m = encode("pubsub", script.OpportunityCreated(existing, name))
	m.Headers = []cdc.Header{{Key: synth.DefaultSchemaHeader, Value: []byte("../../etc/passwd")}}
	add(m)
	f.Add([]byte{0, 0, 0, 0, 1}, []byte(nil), "", "", []byte(nil))

	// The decoder knows every schema the encoders wrote: Pub/Sub ones by
	// their schema id, registry ones by their registry id.
	schemas := map[string]string{}
	for _, enc := range encoders {
		for id, text := range enc.Schemas() {
			schemas[id] = text
		}
	}
	for id := 1; ; id++ {
		text, ok := reg.Schema(id)
		if !ok {
			break
		}
		schemas["registry:"+strconv.Itoa(id)] = text
	}
	dec, err := decode.New(decode.Config{HiddenFields: []string{"Opportunity.Description"}}, decode.NewMapSource(schemas))
	if err != nil {
		f.Fatal(err)
	}
	st := inproc.Store(f, rdb, state.Config{Org: org})
	metrics := prometheus.NewRegistry()
	pipe := pipeline.New(pipeline.Config{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, dec, st, metrics, zerolog.Nop())

	const topic = "salesforce.fuzz"
	var (
		offset int64
		scan   uint64 // a sweep of the whole database, one step per input
		run    = rand.Uint32() & 0xffffff
		n      int
	)
	f.Fuzz(func(t *testing.T, value, key []byte, schemaID, extraKey string, extraVal []byte) {
		n++
		at := offset
		offset += 2
		msg := cdc.Message{Topic: topic, Offset: at, Key: key, Value: value, Time: time.UnixMilli(1_767_000_000_000)}
		if schemaID != "" {
			msg.Headers = append(msg.Headers, cdc.Header{Key: synth.DefaultSchemaHeader, Value: []byte(schemaID)})
		}
		if extraKey != "" {
			msg.Headers = append(msg.Headers, cdc.Header{Key: extraKey, Value: extraVal})
		}
		handle := func(what string, m cdc.Message) {
			t.Helper()
			before := panics(t, metrics)
			hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := pipe.HandleBatch(hctx, []cdc.Message{m}); err != nil {
				t.Fatalf("%s at offset %d: neither applied nor dead-lettered: %v", what, m.Offset, err)
			}
			pos := rdb.HGet(ctx, "oppsync:{"+org+"}:positions", topic+"/0").Val()
			if pos != strconv.FormatInt(m.Offset+1, 10) {
				t.Fatalf("%s at offset %d: stored position %q", what, m.Offset, pos)
			}
			if bad := keys.take(); bad != "" {
				t.Fatalf("%s at offset %d: used a key %.160q", what, m.Offset, bad)
			}
			if panics(t, metrics) > before {
				last := rdb.XRevRangeN(ctx, "oppsync:{"+org+"}:dlq", "+", "-", 1).Val()
				t.Fatalf("%s at offset %d: handling it panicked (contained and dead-lettered: %v)", what, m.Offset, last)
			}
		}
		handle("the input", msg)

		// A valid CREATE of a new opportunity is applied after it.
		id := fmt.Sprintf("006%06X%06dAAA", run, n%1_000_000)
		next := encodeFor(t, "pubsub", script.OpportunityCreated(id, name))
		next.Topic, next.Offset = topic, at+1
		handle("the valid message after it", next)
		if known := rdb.HGet(ctx, "oppsync:{"+org+"}:opp:"+id, "_known").Val(); known != "1" {
			t.Fatalf("the valid message after it was not applied: opportunity %s _known=%q", id, known)
		}

		// Every 16 inputs, one step of a sweep over the whole database: no
		// key of any other prefix appeared.
		if n%16 != 0 {
			return
		}
		var found []string
		found, scan = rdb.Scan(ctx, scan, "*", 1000).Val()
		for _, k := range found {
			if !strings.HasPrefix(k, "oppsync:{"+fuzzOrgPrefix) {
				t.Fatalf("key %.120q in the fuzz database is outside every fuzz org", k)
			}
		}
	})
}

// panics sums oppsync_panics_total.
func panics(t *testing.T, reg *prometheus.Registry) float64 {
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, fam := range fams {
		if fam.GetName() == "oppsync_panics_total" {
			for _, m := range fam.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// keyCheck is a go-redis hook that remembers the first key a command names
// outside prefix (the first argument of a keyed command, every key of a
// script call: the apply script writes only the keys it is given), or with
// a record id that is not a Salesforce id (opp:, person:, activity: keys,
// and the opportunity groups an apply script call guards, whose ids are
// hash fields and set members).
type keyCheck struct {
	prefix string
	mu     sync.Mutex
	bad    string
}

func (k *keyCheck) DialHook(next redis.DialHook) redis.DialHook { return next }

func (k *keyCheck) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		k.check(cmd)
		return next(ctx, cmd)
	}
}

func (k *keyCheck) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			k.check(c)
		}
		return next(ctx, cmds)
	}
}

// unkeyed are the commands FuzzMessage's clients send that name no key.
var unkeyed = map[string]bool{"ping": true, "hello": true, "client": true, "select": true, "script": true, "scan": true}

func (k *keyCheck) check(cmd redis.Cmder) {
	args := cmd.Args()
	name := strings.ToLower(cmd.Name())
	var named []any
	var groups []any
	switch {
	case unkeyed[name] || len(args) < 2:
	case name == "evalsha" || name == "eval":
		n, _ := strconv.Atoi(fmt.Sprint(args[2]))
		named = args[3:min(3+n, len(args))]
		// ARGV[4] is the number of guarded groups, their ids follow
		// (state's applyScript).
		if argv := args[min(3+n, len(args)):]; len(argv) > 3 {
			g, _ := strconv.Atoi(fmt.Sprint(argv[3]))
			groups = argv[4:min(4+g, len(argv))]
		}
	default:
		named = args[1:2]
	}
	for _, a := range named {
		s := fmt.Sprint(a)
		rest, ok := strings.CutPrefix(s, k.prefix)
		if !ok {
			k.report("outside the org: " + name + " " + s)
			continue
		}
		if ns, id, ok := strings.Cut(rest, ":"); ok && (ns == "opp" || ns == "person" || ns == "activity") {
			if ns == "opp" {
				id = strings.TrimSuffix(id, ":roles")
			}
			if !cdc.ValidID(id) {
				k.report("with an invalid id: " + name + " " + s)
			}
		}
	}
	for _, g := range groups {
		if id := fmt.Sprint(g); !cdc.ValidID(id) {
			k.report("guarding a group with an invalid id: " + id)
		}
	}
}

func (k *keyCheck) report(what string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.bad == "" {
		k.bad = what
	}
}

// take returns and forgets the first bad key seen.
func (k *keyCheck) take() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	bad := k.bad
	k.bad = ""
	return bad
}
