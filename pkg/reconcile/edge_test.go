package reconcile

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// evilServer is another host that must never see the token nor the
// client secret; it records what it received.
type evilServer struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	auth     []string // Authorization headers received
	bodies   []string
}

func newEvil(t *testing.T) *evilServer {
	e := &evilServer{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.requests++
		if a := r.Header.Get("Authorization"); a != "" {
			e.auth = append(e.auth, a)
		}
		e.bodies = append(e.bodies, string(body))
		e.mu.Unlock()
		writeJSON(w, 200, map[string]any{"totalSize": 0, "done": true, "records": []any{}})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *evilServer) host() string { return strings.TrimPrefix(e.srv.URL, "http://") }

// leaked fails the test if the evil server received a token or a secret.
func (e *evilServer) leaked(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.auth) > 0 {
		t.Errorf("another host received the token: %q", e.auth)
	}
	for _, b := range e.bodies {
		if strings.Contains(b, "secret") {
			t.Errorf("another host received the client secret: %q", b)
		}
	}
}

// A nextRecordsUrl is followed only when it is a path on the instance: the
// token never goes to a host the answer names.
func TestNextRecordsURLStaysOnTheInstance(t *testing.T) {
	evil := newEvil(t)
	tests := []struct {
		name, next string
	}{
		{"user info names another host", "@" + evil.host() + "/services/data/v61.0/query/01gD0000002HU6KIAW-1"},
		{"absolute URL to another host", "http://" + evil.host() + "/services/data/v61.0/query/01gD0000002HU6KIAW-1"},
		{"scheme-relative URL", "//" + evil.host() + "/services/data/v61.0/query/01gD0000002HU6KIAW-1"},
		{"dot segments", "/services/data/v61.0/../../" + evil.host() + "/x"},
		{"encoded dot segments", "/services/data/v61.0/%2e%2e/%2e%2e/x"},
		{"CRLF", "/services/data/v61.0/query/01gD0000002HU6KIAW-1\r\nHost: " + evil.host()},
		{"backslash", "/services/data/v61.0/query\\..\\x"},
		{"not under /services/data/", "/services/apexrest/x"},
		{"relative", "query/01gD0000002HU6KIAW-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, func(c *Config) { c.MaxRetries = 1 })
			w.sf.pageSize = 1
			w.seed()
			w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
			w.sf.put(cdc.EntityOpportunity, oppB, sfOpp("Deal 1", "Closed Won"))
			w.sf.hook(func(f *fakeSF) { f.next = func(string) string { return tt.next } })

			_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA, oppB})
			evil.leaked(t)
			var ae *AnswerError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), "nextRecordsUrl") {
				t.Fatalf("err = %v, want a refused nextRecordsUrl", err)
			}
			if want := quote(tt.next); !strings.Contains(err.Error(), want[:min(len(want), 40)]) {
				t.Errorf("error %q does not name the value %s", err, want)
			}
			// Nothing was applied: the records stay stale.
			if n, _ := w.rdb.SCard(context.Background(), "oppsync:{"+w.org+"}:stale:Opportunity").Result(); n != 3 {
				t.Errorf("%d stale opportunities, want 3", n)
			}
			if got := metricValue(t, w.reg, "oppsync_reconcile_errors_total", "reason", reasonInvalidAnswer); got < 1 {
				t.Errorf("oppsync_reconcile_errors_total{reason=invalid_answer} = %v", got)
			}
		})
	}
	evil.mu.Lock()
	defer evil.mu.Unlock()
	if evil.requests != 0 {
		t.Errorf("the other host received %d requests", evil.requests)
	}
}

func TestInstancePath(t *testing.T) {
	tests := []struct {
		ref, path, query string
		ok               bool
	}{
		{"/services/data/v61.0/query/01gD0000002HU6KIAW-2000", "/services/data/v61.0/query/01gD0000002HU6KIAW-2000", "", true},
		{"/services/data/v61.0/queryAll?q=SELECT+Id%2C+Name+FROM+Opportunity", "/services/data/v61.0/queryAll", "q=SELECT+Id%2C+Name+FROM+Opportunity", true},
		{".evil.example/services/data/v61.0/x", "", "", false}, // https://acme.my.salesforce.com.evil.example
		{":8443/services/data/v61.0/x", "", "", false},
		{"/services/data/v61.0/x?q=a#frag", "", "", false},
		{"/services/data/v61.0/x?q=a@b", "", "", false},
		{"/services/data/v61.0/x\x00", "", "", false},
		{"/services/data//evil.example/x", "", "", false},
		{"/services/data/" + strings.Repeat("a", maxRefLen), "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(quote(tt.ref), func(t *testing.T) {
			path, query, err := instancePath(tt.ref)
			if (err == nil) != tt.ok || path != tt.path || query != tt.query {
				t.Fatalf("instancePath = %q %q %v, want %q %q ok=%v", path, query, err, tt.path, tt.query, tt.ok)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Errorf("error not truncated: %d bytes", len(err.Error()))
			}
		})
	}
}

// A redirect never carries the token (nor the client secret) to another
// host, not even to another port of the same host, which Go's default
// redirect policy allows.
func TestRedirectNeverCarriesTheToken(t *testing.T) {
	tests := []struct {
		name string
		path string // the request redirected
	}{
		{"sobject GET", "/services/data/v61.0/sobjects/Opportunity/" + oppA},
		{"token POST (307 re-sends the body)", "/services/oauth2/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evil := newEvil(t)
			w := newWorld(t, func(c *Config) { c.MaxRetries = 1 })
			w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
			w.sf.hook(func(f *fakeSF) {
				f.redirect = func(p string) string {
					if p == tt.path {
						return evil.srv.URL + p
					}
					return ""
				}
			})
			_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
			evil.leaked(t)
			if err == nil || !strings.Contains(err.Error(), "refusing a redirect") {
				t.Fatalf("err = %v, want a refused redirect", err)
			}
			if got := metricValue(t, w.reg, "oppsync_salesforce_api_requests_total", "code_class", "error"); got < 1 {
				t.Errorf("refused redirects not counted as errors: %v", got)
			}
		})
	}
}

// The token answer is checked before it is used.
func TestTokenAnswerIsValidated(t *testing.T) {
	tests := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"no token", func(a map[string]any) { delete(a, "access_token") }, "no access_token"},
		{"header injection", func(a map[string]any) { a["access_token"] = "tok1\r\nX-Evil: 1" }, "not visible ASCII"},
		{"huge token", func(a map[string]any) { a["access_token"] = strings.Repeat("t", maxTokenLen+1) }, "bytes long"},
		{"token type", func(a map[string]any) { a["token_type"] = "MAC" }, `token_type is "MAC"`},
		{"instance with user info", func(a map[string]any) { a["instance_url"] = "http://u:pw-secret@127.0.0.1:1" }, `"http://***@127.0.0.1:1" must be a scheme and host only`},
		{"instance with a path", func(a map[string]any) { a["instance_url"] = "http://127.0.0.1:1/services" }, "scheme and host only"},
		{"instance not http", func(a map[string]any) { a["instance_url"] = "file:///etc/passwd" }, "not an http(s) URL"},
		{"oversized answer", func(a map[string]any) { a["padding"] = strings.Repeat("x", maxTokenAnswer) }, "longer than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
			w.sf.hook(func(f *fakeSF) { f.token = tt.change })
			_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
			var ae *AnswerError
			if !errors.As(err, &ae) || ae.Kind != kindToken || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a token answer error with %q", err, tt.want)
			}
			if n := len(w.sf.requestLog()); n != 0 {
				t.Errorf("%d data requests sent with a refused token answer", n)
			}
		})
	}
	t.Run("https is not downgraded", func(t *testing.T) {
		if _, err := instanceURL("http://acme.my.salesforce.com", "https"); err == nil {
			t.Fatal("an http instance_url accepted for an https instance")
		}
	})
}

// Record ids in answers are checked before they name a key.
func TestAnswerRecordIDsAreValidated(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
		id   string // the Id the answer gives oppA
		want string
	}{
		{"query: key injection", []string{oppA, oppB}, oppB + ":roles", "is not a Salesforce id"},
		{"query: path", []string{oppA, oppB}, "../../x", "is not a Salesforce id"},
		{"sobject: another record", []string{oppA}, oppB, "is not the requested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.seed()
			w.sf.put(cdc.EntityOpportunity, oppA, sfOpp("Deal 0", "Closed Won"))
			w.sf.put(cdc.EntityOpportunity, oppB, sfOpp("Deal 1", "Closed Won"))
			w.sf.records[oppA]["Id"] = tt.id
			_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, tt.ids)
			var ae *AnswerError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if n, _ := w.rdb.SCard(context.Background(), "oppsync:{"+w.org+"}:stale:Opportunity").Result(); n != 3 {
				t.Errorf("%d stale opportunities, want 3 (nothing applied)", n)
			}
			if ok, _ := w.rdb.Exists(context.Background(), "oppsync:{"+w.org+"}:opp:"+oppB+":roles:f").Result(); ok != 0 {
				t.Error("a key was written from the bad id")
			}
		})
	}
}

// An answer longer than the bound is refused with the endpoint named.
func TestAnswerSizeIsBounded(t *testing.T) {
	old := maxDataAnswer
	maxDataAnswer = 2048
	t.Cleanup(func() { maxDataAnswer = old })
	w := newWorld(t, nil)
	rec := sfOpp("Deal 0", "Closed Won")
	rec["Name"] = strings.Repeat("n", 4096)
	w.sf.put(cdc.EntityOpportunity, oppA, rec)
	_, err := w.rc.IDs(context.Background(), cdc.EntityOpportunity, []string{oppA})
	var ae *AnswerError
	if !errors.As(err, &ae) || ae.Kind != kindSObject || !strings.Contains(err.Error(), "longer than 2048 bytes") {
		t.Fatalf("err = %v", err)
	}
}
