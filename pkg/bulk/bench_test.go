package bulk

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
)

// BenchmarkImport imports generated Bulk API exports of N opportunities
// and 2N contact roles (N from OPPSYNC_BENCH_OPPS, default 20,000) into a
// fresh org per iteration and reports rows/s:
//
//	OPPSYNC_BENCH_OPPS=100000 go test ./pkg/bulk -run XXX -bench Import -benchtime 1x
func BenchmarkImport(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("OPPSYNC_BENCH_OPPS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	opps := writeParts(b, dir, "opp", oppHeader, n, 2, oppRow)
	roles := writeParts(b, dir, "ocr", roleHeader, 2*n, 4, roleRow)
	ot, rt := typers(b)
	var elapsed time.Duration
	var rows int64
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b)
		var ms runtime.MemStats
		b.StartTimer()
		start := time.Now()
		sum, err := runImport(b, e.st, Config{}, Source{ot, opps}, Source{rt, roles})
		elapsed += time.Since(start)
		if err != nil || sum.Applied != int64(3*n) {
			b.Fatalf("import: %v %+v", err, sum.Stats)
		}
		rows += sum.Rows
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heapMB")
		b.StopTimer()
		testenv.DropOrg(e.rdb, e.org)
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}
