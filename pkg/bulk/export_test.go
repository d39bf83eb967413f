package bulk

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWriteExport writes a generated Bulk API export of about
// OPPSYNC_EXPORT_MB megabytes into OPPSYNC_EXPORT_DIR, to measure the import
// command on big files (it is skipped without OPPSYNC_EXPORT_DIR):
//
//	OPPSYNC_EXPORT_DIR=$(mktemp -d) OPPSYNC_EXPORT_MB=1024 go test ./pkg/bulk -run TestWriteExport -count=1 -v
//
// writes opp.csv (N opportunities, 40 % of the bytes) and ocr.csv (2N
// contact roles). With OPPSYNC_EXPORT_MALFORMED=1 it writes only opp.csv,
// whose line 2 opens a quote that nothing closes: the rest of the file is
// written without quotes, so a CSV reader without bounds reads it all as
// one field.
func TestWriteExport(t *testing.T) {
	dir := os.Getenv("OPPSYNC_EXPORT_DIR")
	if dir == "" {
		t.Skip("OPPSYNC_EXPORT_DIR not set")
	}
	mb, err := strconv.Atoi(os.Getenv("OPPSYNC_EXPORT_MB"))
	if err != nil || mb <= 0 {
		t.Fatalf("OPPSYNC_EXPORT_MB: want a positive number of megabytes, got %q", os.Getenv("OPPSYNC_EXPORT_MB"))
	}
	size := int64(mb) << 20
	malformed := os.Getenv("OPPSYNC_EXPORT_MALFORMED") == "1"
	write := func(name, header string, row func(int) string, until func(n int, written int64) bool) int {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		written, _ := fmt.Fprintln(w, header)
		n := 0
		for ; !until(n, int64(written)); n++ {
			k, _ := fmt.Fprintln(w, row(n))
			written += k
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d rows, %d bytes", filepath.Join(dir, name), n, written)
		return n
	}
	if malformed {
		row := func(i int) string {
			r := strings.ReplaceAll(oppRow(i), `"`, "")
			if i == 0 {
				r = `"` + r // line 2: a quote that is never closed
			}
			return r
		}
		write("opp.csv", oppHeader, row, func(_ int, w int64) bool { return w >= size })
		return
	}
	opps := write("opp.csv", oppHeader, oppRow, func(_ int, w int64) bool { return w >= size*4/10 })
	write("ocr.csv", roleHeader, roleRow, func(n int, _ int64) bool { return n >= 2*opps })
}
