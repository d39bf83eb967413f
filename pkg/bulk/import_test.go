package bulk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

func TestImportSeveralParts(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	opps := writeParts(t, dir, "opp", oppHeader, 300, 3, oppRow)
	roles := writeParts(t, dir, "ocr", roleHeader, 600, 2, roleRow)
	ot, rt := typers(t)
	for _, emit := range []bool{false, true} {
		t.Run(fmt.Sprintf("emit=%v", emit), func(t *testing.T) {
			e := e
			if emit {
				e = newEnv(t)
			}
			sum, err := runImport(t, e.st, Config{BatchSize: 50, Workers: 3, CheckpointRows: 70, EmitTriggers: emit},
				Source{ot, opps}, Source{rt, roles})
			if err != nil {
				t.Fatalf("import: %v (%+v)", err, sum.Errors)
			}
			if sum.Rows != 900 || sum.Applied != 900 || sum.Rejected != 0 || sum.BytesRead != sum.BytesTotal {
				t.Fatalf("summary %+v", sum.Stats)
			}
			if got := e.field(oppID(3), "Description"); got != `s"Renewal, \"phase 3\"\nsecond line"` {
				t.Errorf("Description = %s", got)
			}
			if got := e.field(oppID(7), "Amount"); got != "" {
				t.Errorf("empty Amount stored as %q", got)
			}
			if got := e.field(oppID(8), "Amount"); !strings.HasSuffix(got, "1008.5") {
				t.Errorf("Amount = %q", got)
			}
			if got := e.field(oppID(1), "Billing_Address__c.City"); !strings.Contains(got, "Paris") {
				t.Errorf("nested field = %q", got)
			}
			if c := e.count(contactID(599)); c != 1 {
				t.Errorf("person count = %v", c)
			}
			want := int64(0)
			if emit {
				want = 600
			}
			if n := e.triggers(cdc.TriggerAdded); n != want {
				t.Errorf("%d added entries, want %d", n, want)
			}
			// Importing again writes nothing new (versions).
			sum, err = runImport(t, e.st, Config{}, Source{ot, opps}, Source{rt, roles})
			if err != nil || sum.Applied != 0 || sum.Duplicates != 900 {
				t.Fatalf("re-import: %+v %v", sum.Stats, err)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportBadInput(t *testing.T) {
	ot, rt := typers(t)
	good := oppRow(1)
	tests := []struct {
		name      string
		opps      string
		roles     string
		maxErrors int
		maxField  int
		want      []string // error texts, in order ("FILE" is the file name)
		applied   int64
		stopped   bool
	}{
		{"malformed row", oppHeader + "\n" + good + "\n" + `"006000000000000002","a"b"` + "\n", "", 0, 0,
			[]string{`opp.csv:3:24: extraneous or missing " in quoted-field`}, -1, true},
		{"field over the bound", oppHeader + "\n" + good + "\n" + `"006000000000000002","` + strings.Repeat("x", 65) + "\n", "", 5, 64,
			[]string{`opp.csv:3:22: field too long (over 64 bytes, --max-field-bytes)`}, -1, true},
		{"10 MB cell (default bound)", oppHeader + "\n" + strings.Replace(good, `"Deal 1"`, `"`+strings.Repeat("x", 10<<20)+`"`, 1) + "\n", "", 5, 0,
			[]string{`opp.csv:2:22: field too long (over 1048576 bytes, --max-field-bytes)`}, -1, true},
		{"unbalanced quote on line 2", oppHeader + "\n" + `"` + strings.ReplaceAll(good, `"`, "") + "\n" + strings.Repeat(strings.ReplaceAll(good, `"`, "")+"\n", 100), "", 5, 1024,
			[]string{`opp.csv:2:1: field too long (over 1024 bytes, --max-field-bytes; is its quote ever closed?)`}, -1, true},
		{"unclosed quote", oppHeader + "\n" + good + "\n" + `"006000000000000002","a` + "\n", "", 0, 0,
			[]string{`opp.csv:3:22: extraneous or missing " in quoted-field: the quoted field that starts here is never closed`}, -1, true},
		{"bad contact id", oppHeader + "\n" + strings.Replace(oppRow(2), contactID(4), contactID(4)+":roles", 1) + "\n" + good + "\n", "", 1, 0,
			[]string{`opp.csv:2:89: column ContactId: wrong type: "003000000000000004:roles" is not a Salesforce id`}, 1, false},
		{"field count", oppHeader + "\n" + `"006000000000000002","x"` + "\n" + good + "\n", "", 1, 0,
			[]string{"opp.csv:2:1: wrong number of fields"}, 1, false},
		{"unknown column", "Id,Nmae,SystemModstamp\n", "", 0, 0,
			[]string{`opp.csv:1:4: unknown column (not in the schema): "Nmae"`}, 0, true},
		{"wrong type", oppHeader + "\n" + strings.Replace(oppRow(2), `"1002.5"`, `"12abc"`, 1) + "\n" + good + "\n", "", 1, 0,
			[]string{`opp.csv:2:45: column Amount: wrong type: "12abc" is not a number`}, 1, false},
		{"unknown reference", oppHeader + "\n" + good + "\n",
			roleHeader + "\n" + roleRow(2) + "\n" + strings.Replace(roleRow(3), oppID(1), oppID(99), 1) + "\n", 5, 0,
			[]string{"ocr.csv:3:22: column OpportunityId: unknown opportunity 006000000000000099: neither imported nor in the state"}, 2, false},
		{"max errors exceeded", oppHeader + "\n" + "x\n" + "y\n" + good + "\n", "", 1, 0,
			[]string{"opp.csv:2:1: wrong number of fields", "opp.csv:3:1: wrong number of fields"}, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			dir := t.TempDir()
			sources := []Source{{ot, []string{writeFile(t, dir, "opp.csv", tt.opps)}}}
			if tt.roles != "" {
				sources = append(sources, Source{rt, []string{writeFile(t, dir, "ocr.csv", tt.roles)}})
			}
			sum, err := runImport(t, e.st, Config{MaxErrors: tt.maxErrors, MaxFieldBytes: tt.maxField}, sources...)
			if (err != nil) != tt.stopped {
				t.Fatalf("err = %v, want stopped=%v", err, tt.stopped)
			}
			var got []string
			for _, re := range sum.Errors {
				got = append(got, strings.TrimPrefix(re.Error(), dir+string(filepath.Separator)))
			}
			if len(got) == 0 && err != nil {
				var re *RowError
				if errors.As(err, &re) {
					got = append(got, strings.TrimPrefix(re.Error(), dir+string(filepath.Separator)))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("errors:\n%s\nwant:\n%s\n(err %v)", strings.Join(got, "\n"), strings.Join(tt.want, "\n"), err)
			}
			if tt.applied >= 0 && sum.Applied != tt.applied {
				t.Errorf("applied %d, want %d", sum.Applied, tt.applied)
			}
			// A rejected row writes nothing.
			for _, id := range []string{oppID(2), oppID(99)} {
				if n, _ := e.rdb.Exists(context.Background(), "oppsync:{"+e.org+"}:opp:"+id).Result(); n != 0 {
					t.Errorf("rejected opportunity %s was written", id)
				}
			}
			if tt.roles != "" {
				if n, _ := e.rdb.HExists(context.Background(), "oppsync:{"+e.org+"}:roleopp", roleID(3)).Result(); n {
					t.Errorf("rejected role was written")
				}
			}
		})
	}
}

func TestImportResume(t *testing.T) {
	e := newEnv(t)
	ot, _ := typers(t)
	dir := t.TempDir()
	files := writeParts(t, dir, "opp", oppHeader, 400, 2, oppRow)
	// Spoil a row near the end of the second part, keeping its length.
	b, _ := os.ReadFile(files[1])
	spoiled := strings.Replace(string(b), `"1390.5"`, `"1390x5"`, 1)
	if err := os.WriteFile(files[1], []byte(spoiled), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{BatchSize: 20, Workers: 2, CheckpointRows: 50}
	sum, err := runImport(t, e.st, cfg, Source{ot, files})
	if !errors.Is(err, ErrTooManyErrors) || !strings.Contains(err.Error(), "opp-1.csv:") {
		t.Fatalf("first run: %v", err)
	}
	prog, _ := e.st.Progress(context.Background(), ProgressName)
	if prog["Opportunity.file"] != "1" || prog["Opportunity.done"] != "" {
		t.Fatalf("progress after the stop: %v (%+v)", prog, sum.Stats)
	}
	// Fix the row and resume: only the rest of the second part is read.
	if err := os.WriteFile(files[1], b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Resume = true
	sum, err = runImport(t, e.st, cfg, Source{ot, files})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows == 0 || sum.Rows >= 200 || sum.BytesRead != sum.BytesTotal {
		t.Fatalf("resume read %d rows (%+v)", sum.Rows, sum.Stats)
	}
	for _, i := range []int{0, 199, 390, 399} {
		if e.field(oppID(i), "Name") == "" {
			t.Errorf("opportunity %d missing after resume", i)
		}
	}
	// A stop right after a file's last checkpoint resumes at its end.
	st0, _ := os.Stat(files[0])
	if err := e.st.SaveProgress(context.Background(), ProgressName, map[string]string{"files": prog["files"],
		"Opportunity.file": "0", "Opportunity.offset": fmt.Sprint(st0.Size()), "Opportunity.line": "400"}, true); err != nil {
		t.Fatal(err)
	}
	sum, err = runImport(t, e.st, cfg, Source{ot, files})
	if err != nil || sum.Rows != 200 || sum.BytesRead != sum.BytesTotal {
		t.Fatalf("resume at the end of a part: %+v %v", sum.Stats, err)
	}
	// Resuming with other files is refused.
	if _, err := runImport(t, e.st, cfg, Source{ot, files[:1]}); err == nil {
		t.Fatal("resume with other files accepted")
	}
}

// An import racing newer CDC changes of the same records: the newer values win.
func TestImportConcurrentWithCDC(t *testing.T) {
	e := newEnv(t)
	ot, _ := typers(t)
	const n = 2000
	files := writeParts(t, t.TempDir(), "opp", oppHeader, n, 2, oppRow)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(1)
	var cdcErr error
	go func() {
		defer wg.Done()
		for i := 0; i < n; i += 100 {
			var evs []*cdc.Event
			for j := i; j < i+100; j++ {
				// Newer than the CSV row (SystemModstamp + j ms), in the same
				// millisecond too: a commit number wins over the import's 0.
				ts := modstamp.UnixMilli() + int64(j)
				if j%2 == 0 {
					ts += 5000
				}
				evs = append(evs, &cdc.Event{Entity: cdc.EntityOpportunity, ChangeType: cdc.Update, RecordIDs: []string{oppID(j)},
					Version: cdc.Version{CommitTimestamp: ts, CommitNumber: 42, SequenceNumber: 1},
					Fields:  []cdc.Field{{Name: "StageName", Value: cdc.String("Closed Won"), Changed: true}}})
			}
			if _, err := e.st.ApplyEvents(ctx, evs, state.ApplyOptions{}); err != nil {
				cdcErr = err
				return
			}
		}
	}()
	sum, err := runImport(t, e.st, Config{BatchSize: 100}, Source{ot, files})
	wg.Wait()
	if err != nil || cdcErr != nil {
		t.Fatalf("import %v, cdc %v", err, cdcErr)
	}
	for i := 0; i < n; i++ {
		if got := e.field(oppID(i), "StageName"); got != `s"Closed Won"` {
			t.Fatalf("opportunity %d StageName = %s after import (%+v)", i, got, sum.Stats)
		}
		if e.field(oppID(i), "Name") == "" {
			t.Fatalf("opportunity %d lost its imported Name", i)
		}
	}
}

func TestImportMetrics(t *testing.T) {
	e := newEnv(t)
	ot, rt := typers(t)
	dir := t.TempDir()
	deleted := strings.Replace(oppHeader, `"SystemModstamp"`, `"SystemModstamp","IsDeleted"`, 1) + "\n" +
		oppRow(1) + `,"false"` + "\n" + oppRow(2) + `,"true"` + "\n" + strings.Replace(oppRow(3), `"10"`, `"ten"`, 1) + `,"false"` + "\n"
	opps := writeFile(t, dir, "opp.csv", deleted)
	roles := writeFile(t, dir, "ocr.csv", roleHeader+"\n"+roleRow(2)+"\n"+roleRow(4)+"\n")
	reg := prometheus.NewRegistry()
	im, err := New(Config{MaxErrors: 5}, e.st, reg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := im.Run(context.Background(), Source{ot, []string{opps}}, Source{rt, []string{roles}}); err != nil {
		t.Fatal(err)
	}
	// Again: every row is a duplicate now.
	if _, err := im.Run(context.Background(), Source{ot, []string{opps}}); err != nil {
		t.Fatal(err)
	}
	size := func(f string) float64 {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		return float64(st.Size())
	}
	tests := []struct {
		name   string
		metric prometheus.Collector
		want   float64
	}{
		{"opportunities applied", im.m.rows(cdc.EntityOpportunity, outcomeApplied), 1},
		{"opportunities duplicate", im.m.rows(cdc.EntityOpportunity, outcomeDuplicate), 1},
		{"opportunities skipped", im.m.rows(cdc.EntityOpportunity, outcomeSkipped), 2},
		{"opportunities rejected", im.m.rows(cdc.EntityOpportunity, outcomeRejected), 2},
		{"roles applied", im.m.rows(cdc.EntityContactRole, outcomeApplied), 1},
		{"roles rejected (unknown opportunity)", im.m.rows(cdc.EntityContactRole, outcomeRejected), 1},
		{"opportunity bytes (read twice)", im.m.bytes(cdc.EntityOpportunity), 2 * size(opps)},
		{"contact role bytes", im.m.bytes(cdc.EntityContactRole), size(roles)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testutil.ToFloat64(tt.metric); got != tt.want {
				t.Fatalf("%v, want %v", got, tt.want)
			}
		})
	}
	if n, err := testutil.GatherAndCount(reg, "oppsync_import_rows_total", "oppsync_import_bytes_total"); err != nil || n != 10 {
		t.Fatalf("%d series (%v), want 8 rows and 2 bytes series", n, err)
	}
}
