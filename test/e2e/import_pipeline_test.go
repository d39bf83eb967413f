package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/inproc"
	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/state"
)

// Bulk API 2.0 exports as Salesforce writes them: quoted values, "" for a
// quote, embedded newlines, empty for null, several part files.
const (
	importOppHeader  = `"Id","Name","StageName","Amount","CloseDate","IsClosed","Description","ContactId","CreatedDate","SystemModstamp"`
	importRoleHeader = `"Id","OpportunityId","ContactId","Role","IsPrimary","SystemModstamp"`
	importModstamp   = "2026-01-31T12:00:00.000Z"
)

func importOppID(i int) string  { return fmt.Sprintf("006IMP%012d", i) }
func importPerson(i int) string { return fmt.Sprintf("003IMP%012d", i) }

// writeExports writes n opportunities in two parts and two contact roles
// per opportunity (people 2i and 2i+1, the first primary) in two parts.
func writeExports(t *testing.T, dir string, n int) (opps, roles []string) {
	t.Helper()
	for part := 0; part < 2; part++ {
		var ob, rb bytes.Buffer
		ob.WriteString(importOppHeader + "\n")
		rb.WriteString(importRoleHeader + "\n")
		for i := part; i < n; i += 2 {
			amount := fmt.Sprintf(`"%d"`, 1000*(i+1))
			if i == 1 {
				amount = "" // null
			}
			fmt.Fprintf(&ob, `"%s","Deal %d","Prospecting",%s,"2026-03-31","false","Line one, ""quoted""
line two","%s","2026-01-01T00:00:00.000Z","%s"`+"\n", importOppID(i), i, amount, importPerson(2*i), importModstamp)
			for j := 0; j < 2; j++ {
				fmt.Fprintf(&rb, `"00KIMP%012d","%s","%s","%s","%t","%s"`+"\n", 2*i+j, importOppID(i), importPerson(2*i+j),
					[]string{"Decision Maker", ""}[j], j == 0, importModstamp)
			}
		}
		op := filepath.Join(dir, fmt.Sprintf("opportunities-%d.csv", part))
		rp := filepath.Join(dir, fmt.Sprintf("contact-roles-%d.csv", part))
		if err := os.WriteFile(op, ob.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rp, rb.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		opps, roles = append(opps, op), append(roles, rp)
	}
	return opps, roles
}

// runCommand runs the oppsync binary with the org's Redis settings.
func runCommand(t *testing.T, org string, extraEnv []string, args ...string) (int, string, string) {
	t.Helper()
	redisAddr := testenv.RedisAddr(t) // skips without Redis, before building the binary
	cmd := exec.Command(oppsyncBinary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"OPPSYNC_ORG_ID=" + org, "OPPSYNC_REDIS_ADDRS=" + redisAddr, "OPPSYNC_LOG_LEVEL=warn"}, extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestImportThenPipeline imports exports with the binary, then feeds CDC
// events through decode → pipeline in process: the imported contact roles'
// people get opportunity_updated entries.
func TestImportThenPipeline(t *testing.T) {
	e := &env{t: t, rdb: testenv.NewRedis(t), org: testenv.UniqueName(t, "org")}
	opps, roles := writeExports(t, t.TempDir(), 20)
	code, _, stderr := runCommand(t, e.org, nil, "import", "--opportunities", strings.Join(opps, ","),
		"--contact-roles", strings.Join(roles, ","), "--batch", "7")
	if code != 0 || !strings.Contains(stderr, "60 applied") {
		t.Fatalf("import exited %d:\n%s", code, stderr)
	}
	if n := len(e.triggers()); n != 0 {
		t.Fatalf("a quiet import wrote %d trigger entries", n)
	}

	enc, err := synth.NewEncoder(synth.EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, _ := inproc.New(t, e.rdb, enc, decode.Config{}, state.Config{Org: e.org, IgnoreFields: synth.DefaultIgnoreFields})
	script := synth.NewScript(time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC))
	changes := []synth.Change{
		script.OpportunityUpdated(importOppID(3), cdc.Field{Name: "StageName", Value: cdc.String("Closed Won"), Changed: true}),
		script.ContactRoleRemoved("00KIMP000000000000"), // opportunity 0, person 0
	}
	msgs := e.encode(enc, changes...)
	for i := range msgs {
		msgs[i].Topic, msgs[i].Partition, msgs[i].Offset = "t", 0, int64(i)
	}
	if err := p.HandleBatch(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	got := e.triggers()
	var lines []string
	for _, g := range got {
		line := g["trigger"] + " " + g["person_id"] + " " + g["opportunity_id"]
		if g["trigger"] == cdc.TriggerUpdated {
			line += fmt.Sprintf(" %s %s->%s %s", g["field"], g["old_value"], g["new_value"], g["roles"])
		} else {
			line += " " + g["reason"] + " primary=" + g["is_primary"]
		}
		lines = append(lines, line)
	}
	want := []string{
		"removed_from_opportunity " + importPerson(0) + " " + importOppID(0) + " contact_role_deleted primary=true",
		"opportunity_updated " + importPerson(6) + " " + importOppID(3) + ` StageName "Prospecting"->"Closed Won" [{"contact_role_id":"00KIMP000000000006","role":"Decision Maker","is_primary":true}]`,
		"opportunity_updated " + importPerson(7) + " " + importOppID(3) + ` StageName "Prospecting"->"Closed Won" [{"contact_role_id":"00KIMP000000000007","role":"","is_primary":false}]`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("entries:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// The snapshot in the entry holds the imported fields.
	var snap map[string]any
	for _, g := range got {
		if g["trigger"] == cdc.TriggerUpdated {
			if err := json.Unmarshal([]byte(g["opportunity"]), &snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	if snap["Name"] != "Deal 3" || snap["Amount"] != 4000.0 || snap["Description"] != "Line one, \"quoted\"\nline two" || snap["CloseDate"] != "2026-03-31" {
		t.Errorf("snapshot %v", snap)
	}
}

func TestImportCommandErrors(t *testing.T) {
	org := testenv.UniqueName(t, "org")
	dir := t.TempDir()
	opps, _ := writeExports(t, dir, 4)
	bad := filepath.Join(dir, "bad-roles.csv")
	if err := os.WriteFile(bad, []byte(importRoleHeader+"\n"+
		`"00KIMP000000000001","006IMP000000000099","003IMP000000000001","","true","2026-01-31T12:00:00.000Z"`+"\n"+
		`"00KIMP000000000002","006IMP000000000001","003IMP000000000001","","maybe","2026-01-31T12:00:00.000Z"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no files", []string{"import"}, 2, []string{"give --opportunities"}},
		{"bad flag", []string{"import", "--opportunities", opps[0], "--batch", "x"}, 2, []string{"--batch"}},
		{"rejected rows", []string{"import", "--opportunities", strings.Join(opps, ","), "--contact-roles", bad, "--max-errors", "1"}, 1,
			[]string{"bad-roles.csv:2:22: column OpportunityId: unknown opportunity 006IMP000000000099", "bad-roles.csv:3:67: column IsPrimary: wrong type: \"maybe\" is not true or false", "too many rejected rows"}},
		{"opportunities only", []string{"import", "--opportunities", strings.Join(opps, ",")}, 0, []string{"4 rows", "4 already current"}},
		{"resume a finished import", []string{"import", "--opportunities", strings.Join(opps, ","), "--resume"}, 0, []string{"import: 0 rows"}},
		{"resume other files", []string{"import", "--opportunities", opps[0], "--resume"}, 1, []string{"--resume: the saved progress is for other files"}},
		{"field over the bound", []string{"import", "--opportunities", opps[0], "--max-field-bytes", "20"}, 1,
			[]string{"opportunities-0.csv:2:", "field too long (over 20 bytes, --max-field-bytes; is its quote ever closed?)"}},
		{"bad bound", []string{"import", "--opportunities", opps[0], "--max-field-bytes", "0"}, 2, []string{"--max-field-bytes"}},
		{"record bound under the field bound", []string{"import", "--opportunities", opps[0], "--max-field-bytes", "100", "--max-record-bytes", "50"}, 2,
			[]string{"max record bytes must be between"}},
		{"bad metrics address", []string{"import", "--opportunities", opps[0], "--metrics-addr", "nohost:port"}, 2, []string{"--metrics-addr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCommand(t, org, nil, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestImportWhileServiceConsumes imports while `oppsync run` consumes CDC
// events from Kafka; an update of an imported opportunity then emits
// opportunity_updated for the imported people.
func TestImportWhileServiceConsumes(t *testing.T) {
	e := newEnv(t, 1)
	svc := e.start()
	defer svc.stop(30 * time.Second)
	opps, roles := writeExports(t, t.TempDir(), 50)
	code, _, stderr := runCommand(t, e.org, nil, "import", "--opportunities", strings.Join(opps, ","),
		"--contact-roles", strings.Join(roles, ","))
	if code != 0 {
		t.Fatalf("import exited %d:\n%s", code, stderr)
	}
	enc := e.encoder()
	script := synth.NewScript(time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC))
	w := e.writer()
	defer w.Close()
	e.publish(w, e.encode(enc, script.OpportunityUpdated(importOppID(10), cdc.Field{Name: "Amount", Value: cdc.Number(5), Changed: true}))...)
	got := e.waitTriggers(2, 60*time.Second)
	people := map[string]bool{}
	for _, g := range got {
		if g["trigger"] != cdc.TriggerUpdated || g["field"] != "Amount" || g["old_value"] != "11000" || g["new_value"] != "5" {
			t.Errorf("unexpected entry %v", g)
		}
		people[g["person_id"]] = true
	}
	if !people[importPerson(20)] || !people[importPerson(21)] {
		t.Errorf("people %v", people)
	}
}
