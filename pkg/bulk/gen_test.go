package bulk

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/view"
	"github.com/oppsync/oppsync/schemas"
)

// Test data in the exact Bulk API 2.0 CSV format: header of API names,
// every value quoted, "" for an embedded quote, embedded newlines, empty
// for null, LF line endings.

func oppID(i int) string     { return fmt.Sprintf("006%015d", i) }
func contactID(i int) string { return fmt.Sprintf("003%015d", i) }
func roleID(i int) string    { return fmt.Sprintf("00K%015d", i) }

// modstamp is the SystemModstamp of generated rows.
var modstamp = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

const oppHeader = `"Id","Name","StageName","Amount","Probability","CloseDate","IsClosed","IsWon","Description","ContactId","Billing_Address__c.City","CreatedDate","LastModifiedDate","SystemModstamp"`

func quote(vals ...string) string {
	out := make([]string, len(vals))
	for i, v := range vals {
		if v == "" {
			out[i] = "" // Bulk API writes null as an empty, unquoted value
			continue
		}
		out[i] = `"` + strings.ReplaceAll(v, `"`, `""`) + `"`
	}
	return strings.Join(out, ",")
}

func oppRow(i int) string {
	ts := modstamp.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	desc := ""
	if i%3 == 0 {
		desc = fmt.Sprintf("Renewal, \"phase %d\"\nsecond line", i)
	}
	amount := fmt.Sprintf("%d.5", 1000+i)
	if i%7 == 0 {
		amount = ""
	}
	return quote(oppID(i), fmt.Sprintf("Deal %d", i), "Prospecting", amount, "10",
		"2026-03-31", "false", "false", desc, contactID(2*i), "Paris", "2026-01-01T00:00:00.000Z", ts, ts)
}

const roleHeader = `"Id","OpportunityId","ContactId","Role","IsPrimary","CreatedDate","LastModifiedDate","SystemModstamp"`

// roleRow i belongs to opportunity i/2 and contact i.
func roleRow(i int) string {
	ts := modstamp.Format("2006-01-02T15:04:05.000Z")
	role := "Decision Maker"
	if i%2 == 1 {
		role = ""
	}
	return quote(roleID(i), oppID(i/2), contactID(i), role, fmt.Sprint(i%2 == 0), ts, ts, ts)
}

// writeParts writes rows [0, n) of row into parts files under dir.
func writeParts(t testing.TB, dir, name, header string, n, parts int, row func(int) string) []string {
	t.Helper()
	var files []string
	per := (n + parts - 1) / parts
	for p := 0; p < parts; p++ {
		path := filepath.Join(dir, fmt.Sprintf("%s-%d.csv", name, p))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<16)
		fmt.Fprintln(w, header)
		for i := p * per; i < min(n, (p+1)*per); i++ {
			fmt.Fprintln(w, row(i))
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	return files
}

func typers(t testing.TB) (*Typer, *Typer) {
	t.Helper()
	var out []*Typer
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		s, err := decode.ParseSchema(schemas.PubSub(e))
		if err != nil {
			t.Fatal(err)
		}
		ty, err := NewTyper(e, s.Fields(), nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ty)
	}
	return out[0], out[1]
}

// env is one test's org on the test Redis.
type env struct {
	st  *state.Store
	org string
	rdb *redis.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "import")
	cache, _ := strconv.Atoi(os.Getenv("OPPSYNC_BENCH_CACHE")) // state cache groups (0: default)
	st := inproc.Store(t, rdb, state.Config{Org: org, CacheGroups: cache})
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	return &env{st: st, org: org, rdb: rdb}
}

// field returns the stored (encoded) value of an opportunity field, "" if
// none or null: the hash field holds "<version>|<value>".
func (e *env) field(id, name string) string {
	v, _ := e.rdb.HGet(context.Background(), "oppsync:{"+e.org+"}:opp:"+id, "f:"+name).Result()
	_, val, _ := strings.Cut(v, "|")
	return val
}

// count returns the person's number_of_opportunities, as the API's view
// computes it.
func (e *env) count(person string) float64 {
	v, err := view.New(e.st.Replica(), view.Config{})
	if err != nil {
		panic(err)
	}
	opps, _, err := v.PersonOpportunities(context.Background(), person)
	if err != nil {
		panic(err)
	}
	return float64(filters.TotalsOf(person, opps).Count)
}

func (e *env) triggers(kind string) int64 {
	n, _ := e.rdb.XLen(context.Background(), "oppsync:{"+e.org+"}:triggers:"+kind).Result()
	return n
}

func runImport(t testing.TB, st Store, cfg Config, sources ...Source) (Summary, error) {
	t.Helper()
	im, err := New(cfg, st, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return im.Run(ctx, sources...)
}
