package api

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/state"
)

// chromium returns the Chromium binary; it skips the test when none is
// installed (test/browser.sh installs it), or fails it when env CI is set.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		msg := "chromium is not installed: run test/browser.sh (Debian's chromium package) to run the browser tests"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// artifacts returns the directory screenshots go to.
func artifacts(t *testing.T) string {
	if dir := os.Getenv("OPPSYNC_TEST_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

var rowPattern = regexp.MustCompile(`(?s)<tr class="opportunity" data-opportunity-id="([^"]+)">(.*?)</tr>`)

func cell(row, class string) string {
	m := regexp.MustCompile(`<td class="` + class + `[^"]*">([^<]*)</td>`).FindStringSubmatch(row)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// TestPersonPageBrowser loads the person page in headless Chromium and
// checks the Opportunity Info tab against the truth, then takes a
// screenshot.
func TestPersonPageBrowser(t *testing.T) {
	bin := chromium(t)
	o := smallOrg(t)
	s, err := New(Config{}, Deps{Queries: o.view, Currency: "USD", Activity: storeActivity{o.store}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	_, _, person := fixedIDs(t, o.gen.Truth())
	url := srv.URL + "/people/" + person

	dom := string(runChromium(t, bin, "--dump-dom", url))
	if !strings.Contains(dom, ">Opportunity Info<") {
		t.Fatalf("no Opportunity Info tab in the rendered page:\n%s", dom)
	}
	ix := indexTruth(o.gen.Truth(), o.clock)
	tp := ix.people[person]
	want := map[string]string{}
	for _, op := range tp.opps {
		want[op.ID] = op.Fields["Name"].Str
	}
	got := map[string]string{}
	for _, m := range rowPattern.FindAllStringSubmatch(dom, -1) {
		id, row := m[1], m[2]
		got[id] = htmlUnescape(cell(row, "name"))
		op, _ := o.gen.Truth().Opportunity(id)
		if st := cell(row, "stage"); st != op.Fields["StageName"].Str {
			t.Errorf("%s: stage %q, want %q", id, st, op.Fields["StageName"].Str)
		}
		if cd := cell(row, "close-date"); cd != op.Fields["CloseDate"].Str {
			t.Errorf("%s: close date %q, want %q", id, cd, op.Fields["CloseDate"].Str)
		}
		if a := cell(row, "amount"); a != formatMoney(op.Fields["Amount"].Num)+" USD" {
			t.Errorf("%s: amount %q", id, a)
		}
		primary := false
		for _, r := range tp.roles[id] {
			primary = primary || r.Primary
		}
		if p := cell(row, "primary"); p != map[bool]string{true: "yes", false: "no"}[primary] {
			t.Errorf("%s: primary %q, want %v", id, p, primary)
		}
	}
	if len(got) != len(want) {
		t.Errorf("page lists %d opportunities, the truth %d", len(got), len(want))
	}
	for id, name := range want {
		if got[id] != name {
			t.Errorf("opportunity %s: name %q, want %q", id, got[id], name)
		}
	}
	c, a, _ := tp.totals()
	if !strings.Contains(dom, `<strong id="total-amount">`+formatMoney(a)+` USD</strong>`) ||
		!strings.Contains(dom, `<strong id="total-count">`+itoaInt(c)+`</strong>`) {
		t.Errorf("totals (%d, %v) missing from the page", c, a)
	}

	checkActivityLog(t, dom, tp.acts)

	shot := filepath.Join(artifacts(t), "person-"+person+".png")
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,900", url)
	b, err := os.ReadFile(shot)
	if err != nil || len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %d bytes, %v", shot, len(b), err)
	}
	t.Logf("screenshot: %s", shot)
}

func itoaInt(n int) string { return strconv.Itoa(n) }

// storeActivity serves the activity log from the state store, as the
// service does.
type storeActivity struct{ s *state.Store }

func (a storeActivity) PersonActivity(ctx context.Context, p string, q ActivityQuery) ([]map[string]string, string, bool, error) {
	return a.s.PersonActivity(ctx, p, state.ActivityPage{Kind: q.Type, Since: q.Since, Until: q.Until, Limit: q.Limit, Cursor: q.Cursor})
}

var activityPattern = regexp.MustCompile(`(?s)<tr class="activity" data-event-id="([^"]+)">(.*?)</tr>`)

// checkActivityLog compares the Activity Log tab of a rendered page with
// the person's expected trigger entries: the same entries (at most the
// newest 100), newest first, each with its trigger and opportunity.
func checkActivityLog(t *testing.T, dom string, acts []synth.Expected) {
	t.Helper()
	if !strings.Contains(dom, ">Activity Log<") {
		t.Fatalf("no Activity Log tab in the rendered page")
	}
	want := map[string]synth.Expected{}
	for _, e := range acts {
		want[e.EventID] = e
	}
	rows := activityPattern.FindAllStringSubmatch(dom, -1)
	if len(acts) <= pageActivity && len(rows) != len(acts) {
		t.Errorf("Activity Log lists %d entries, the truth %d", len(rows), len(acts))
	}
	if len(acts) > pageActivity && (len(rows) != pageActivity || !strings.Contains(dom, `id="activity-more"`)) {
		t.Errorf("Activity Log lists %d of %d entries without saying there are more", len(rows), len(acts))
	}
	last := ""
	for _, m := range rows {
		id, row := htmlUnescape(m[1]), m[2]
		e, ok := want[id]
		if !ok {
			t.Errorf("Activity Log lists %s, not an entry of the person", id)
			continue
		}
		at := cell(row, "occurred-at")
		if at != e.At.UTC().Format(cdc.DateTimeLayout) || cell(row, "trigger") != e.Trigger || cell(row, "opportunity") != e.OpportunityID {
			t.Errorf("%s: row %q, want %s %s %s", id, row, e.At.UTC().Format(cdc.DateTimeLayout), e.Trigger, e.OpportunityID)
		}
		if last != "" && at > last {
			t.Errorf("not newest first: %s after %s", at, last)
		}
		last = at
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

// fakeRecords serves fixed records, for tests that need no Redis.
type fakeRecords struct {
	opps []*filters.Opportunity
}

func (f fakeRecords) Opportunity(_ context.Context, id string) (*filters.Opportunity, bool, error) {
	for _, o := range f.opps {
		if o.ID == id {
			return o, true, nil
		}
	}
	return nil, false, nil
}

func (f fakeRecords) PersonOpportunities(_ context.Context, p string) ([]*filters.Opportunity, bool, error) {
	var out []*filters.Opportunity
	for _, o := range f.opps {
		if len(filters.PersonRoles(o, p)) > 0 {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, len(out) > 0, nil
}

func (fakeRecords) Catalog(context.Context) (*filters.Catalog, error) {
	return filters.NewCatalog(nil), nil
}

func (fakeRecords) Query(context.Context, *filters.Query) ([]string, string, error) {
	return nil, "", nil
}

func TestPersonPageEscapes(t *testing.T) {
	evil := `<script>alert("x")</script>`
	q := fakeRecords{opps: []*filters.Opportunity{{ID: "006X", Known: true, Fields: map[string]cdc.Value{
		"Name": cdc.String(evil), "StageName": cdc.String(`"><img src=x onerror=alert(1)>`), "Amount": cdc.Number(1234567.5),
	}, Roles: []filters.Role{{ID: "00KX", ContactID: "003000000000000XAA", Role: "<b>Boss</b>", IsPrimary: true}}}}}
	s, _ := newServer(t, q, Config{}, nil)
	r := do(t, s.Handler(), "GET", "/people/003000000000000XAA", "")
	body := string(r.body)
	if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("page = %d %s", r.code, r.hdr.Get("Content-Type"))
	}
	for _, raw := range []string{"<script>", "<img", "<b>Boss"} {
		if strings.Contains(body, raw) {
			t.Errorf("record data %q reached the page unescaped", raw)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;") || !strings.Contains(body, "1,234,567.50 USD") {
		t.Errorf("page lacks the escaped name or the formatted amount:\n%s", body)
	}
}

func TestFormatMoney(t *testing.T) {
	for in, want := range map[float64]string{0: "0.00", 5: "5.00", 1234.5: "1,234.50", 1e6: "1,000,000.00", -999.999: "-1,000.00", 123456.789: "123,456.79"} {
		if got := formatMoney(in); got != want {
			t.Errorf("formatMoney(%v) = %q, want %q", in, got, want)
		}
	}
}
