package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// The OpenAPI document is checked three ways:
//   - it is a valid OpenAPI 3.1 document (kin-openapi validates 3.1 with a
//     JSON Schema 2020-12 validator);
//   - its operations are exactly the routes the server registers
//     (TestOpenAPICoversEveryRoute): a route added to routes() fails the
//     test until it is documented;
//   - every request and response of this package's tests goes through
//     checkExchange (called by do): the response must match the document
//     (status documented, headers, body schema), and a request the
//     document rejects must not be answered 2xx.

// contract is the loaded document and its router, shared by all tests.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	err    error
}

var (
	contractOnce sync.Once
	theContract  contract
)

func loadContract() (*contract, error) {
	contractOnce.Do(func() {
		// The person page is HTML: its body is validated as a string.
		openapi3filter.RegisterBodyDecoder("text/html", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		})
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openAPI)
		if err != nil {
			theContract.err = err
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			theContract.err = err
			return
		}
		// Validate against the paths only: the servers entry names an
		// example host.
		doc.Servers = nil
		theContract.doc = doc
		theContract.router, theContract.err = legacy.NewRouter(doc)
	})
	return &theContract, theContract.err
}

// checkExchange validates one request (with its body) and the recorded
// response against the document.
func checkExchange(t testing.TB, req *http.Request, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	c, err := loadContract()
	if err != nil {
		t.Fatalf("loading pkg/api/openapi.json: %v", err)
	}
	ctx := context.Background()
	req = req.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.RequestURI = ""
	if rec.Code >= 300 && rec.Code < 400 && rec.Header().Get("Location") != "" {
		return // the mux's redirect of an unclean path ("//", ".."), described in info
	}
	// Route on the escaped path, as ServeMux does: "0%2F" is one segment.
	req.URL.Path, req.URL.RawPath = req.URL.EscapedPath(), ""
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// Not a documented route: the answer must be the mux's own 404 or
		// 405 (as JSON), not one of a handler, which would be a route the
		// document lacks.
		var v any
		if jerr := json.Unmarshal(rec.Body.Bytes(), &v); jerr != nil {
			t.Fatalf("%s %.80s is not in the OpenAPI document (%v) but was answered %d %.200s", req.Method, req.URL.Path, err, rec.Code, rec.Body)
		}
		if verr := c.doc.ValidateSchemaJSON(c.doc.Components.Schemas["Error"].Value, v); verr != nil {
			t.Fatalf("%s %.80s: %d body does not match Error: %v", req.Method, req.URL.Path, rec.Code, verr)
		}
		want := map[int]string{http.StatusNotFound: "no such route", http.StatusMethodNotAllowed: "method not allowed"}[rec.Code]
		if got, _ := v.(map[string]any)["error"].(string); want == "" || got != want {
			t.Fatalf("%s %.80s is not in the OpenAPI document (%v) but was answered %d %.200s", req.Method, req.URL.Path, err, rec.Code, rec.Body)
		}
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if reqErr := openapi3filter.ValidateRequest(ctx, in); reqErr != nil && rec.Code < 400 {
		t.Fatalf("%s %.80s: the OpenAPI document rejects the request (%.300v) but the server answered %d", req.Method, req.URL.Path, reqErr, rec.Code)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(), Options: opts}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Fatalf("%s %.80s: the %d response does not match the OpenAPI document: %.600v\nbody: %.300s", req.Method, req.URL.Path, rec.Code, err, rec.Body)
	}
}

// documented returns the document's operations as mux patterns
// ("GET /v1/opportunities/{id}").
func documented(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatalf("pkg/api/openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !c.doc.IsOpenAPI31OrLater() || c.doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", c.doc.OpenAPI)
	}
	// The examples in the document must match their schemas too.
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Errorf("an example does not match its schema: %v", err)
	}
}

// Every route registered on the mux is documented, and every documented
// operation is served: a new route fails here until openapi.json has it.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	c, err := loadContract()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newServer(t, fakeRecords{}, Config{}, nil)
	served := append([]string(nil), s.patterns...)
	sort.Strings(served)
	docd := documented(c.doc)
	inDoc := map[string]bool{}
	for _, p := range docd {
		inDoc[p] = true
	}
	isServed := map[string]bool{}
	for _, p := range served {
		isServed[p] = true
		if !inDoc[p] {
			t.Errorf("route %q is served but not in pkg/api/openapi.json", p)
		}
	}
	for _, p := range docd {
		if !isServed[p] {
			t.Errorf("pkg/api/openapi.json documents %q, which the server does not serve", p)
		}
	}
	if len(served) < 9 {
		t.Errorf("only %d routes registered: %v", len(served), served)
	}
}

// The document is served at GET /v1/openapi.json, behind the token like
// the rest of /v1.
func TestOpenAPIServed(t *testing.T) {
	s, _ := newServer(t, fakeRecords{}, Config{AuthToken: "tok"}, nil)
	r := do(t, s.Handler(), "GET", "/v1/openapi.json", "", "Authorization", "Bearer tok")
	if r.code != http.StatusOK || !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/openapi.json = %d %s", r.code, r.hdr.Get("Content-Type"))
	}
	if !bytes.Equal(r.body, openAPI) {
		t.Error("the served document differs from pkg/api/openapi.json")
	}
	if r := do(t, s.Handler(), "GET", "/v1/openapi.json", ""); r.code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", r.code)
	}
}

// checkExchange itself must be able to fail: a response the document does
// not allow is reported.
func TestCheckExchangeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		respBody                 string
	}{
		{"undocumented status", "GET", "/v1/constraints", "", http.StatusTeapot, `{"error":"x"}`},
		{"missing required field", "GET", "/v1/opportunities/0068c000000iyJbAAI", "", 200, `{"opportunity_id":"0068c000000iyJbAAI","deleted":false,"stale":false,"fields":{}}`},
		{"undocumented field", "GET", "/healthz", "", 200, `{"status":"ok","uptime":3}`},
		{"wrong type", "POST", "/v1/people/query", `{}`, 200, `{"person_ids":[1],"next_cursor":""}`},
		{"bad request answered 200", "POST", "/v1/people/query", `{"limit":0}`, 200, `{"person_ids":[],"next_cursor":""}`},
		{"undocumented route", "GET", "/v1/secret", "", 200, `{}`},
		{"undocumented route's own 404", "GET", "/v1/secrets/x", "", 404, `{"error":"secret not found"}`},
		{"campaign without version", "GET", "/v1/campaigns/x", "", 200, `{"campaign_id":"x","name":"x","active":true,"triggers":[{"trigger":"added_to_opportunity"}],"filters":[],"match":"all","qualification":"once","updated_at":"2026-12-01T10:00:00.000Z","qualified_total":0}`},
		{"campaign without qualified_total", "GET", "/v1/campaigns/x", "", 200, `{"campaign_id":"x","name":"x","active":true,"triggers":[{"trigger":"added_to_opportunity"}],"filters":[],"match":"all","qualification":"once","version":1,"updated_at":"2026-12-01T10:00:00.000Z"}`},
		{"campaign with match and logic", "GET", "/v1/campaigns", "", 200, `{"campaigns":[{"campaign_id":"x","name":"x","active":true,"triggers":[{"trigger":"added_to_opportunity"}],"filters":[],"match":"all","logic":"1","qualification":"once","version":1,"updated_at":"2026-12-01T10:00:00.000Z"}]}`},
		{"bad qualification", "PUT", "/v1/campaigns/x", `{"name":"x","triggers":[{"trigger":"added_to_opportunity"}],"qualification":"twice"}`, 200, `{}`},
		{"match and logic answered 200", "POST", "/v1/people/query", `{"filters":[{"filter":"has_opportunity"}],"match":"all","logic":"1"}`, 200, `{"person_ids":[],"next_cursor":""}`},
		{"activity entry without occurred_at", "GET", "/v1/people/003000000000001AAA/activity", "", 200, `{"person_id":"003000000000001AAA","activity":[{"trigger":"added_to_opportunity","event_id":"e","person_id":"003000000000001AAA","opportunity_id":"0068c000000iyJbAAI"}],"next_cursor":""}`},
		{"activity limit too big answered 200", "GET", "/v1/people/003000000000001AAA/activity?limit=1001", "", 200, `{"person_id":"003000000000001AAA","activity":[],"next_cursor":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(tc.code)
			rec.WriteString(tc.respBody)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			ft := &fakeTB{TB: t}
			func() {
				defer func() { _ = recover() }()
				checkExchange(ft, req, []byte(tc.body), rec)
			}()
			if ft.msg == "" {
				t.Error("checkExchange accepted it")
			}
			t.Log(ft.msg)
		})
	}
}

// fakeTB records a Fatalf instead of failing the test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}
