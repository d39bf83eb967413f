package reconcile

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeSF speaks the Salesforce REST shapes reconciliation uses: the OAuth
// token endpoint (client credentials), sobject GET, query / queryAll with
// nextRecordsUrl paging, and the error bodies
// [{"errorCode":"...","message":"..."}].
type fakeSF struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	records  map[string]map[string]any // id → REST record (with "attributes")
	tokens   int                       // tokens issued
	valid    map[string]bool
	failures []fault // injected answers for the next data requests, in order
	pageSize int
	pages    map[string][]map[string]any // nextRecordsUrl → rest of the result
	requests []string                    // data request paths

	// Hooks, each optional. before runs before a data request is answered
	// (with f.mu held: it must not call f's methods); next rewrites the
	// nextRecordsUrl sent; redirect, when it returns a URL, answers a data
	// request (or, for the token endpoint, with 307) by redirecting there;
	// token rewrites the token answer.
	before   func(path string)
	next     func(string) string
	redirect func(path string) string
	token    func(map[string]any)
}

type fault struct {
	status int
	body   string
}

var (
	limitExceeded  = fault{403, `[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]`}
	serverError    = fault{503, `[{"errorCode":"SERVER_UNAVAILABLE","message":"try later"}]`}
	invalidSession = fault{401, `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`}
	malformedQuery = fault{400, `[{"errorCode":"MALFORMED_QUERY","message":"unexpected token"}]`}
)

func newFakeSF(t *testing.T) *fakeSF {
	f := &fakeSF{t: t, records: map[string]map[string]any{}, valid: map[string]bool{}, pageSize: 2000, pages: map[string][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSF) put(entity, id string, fields map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := map[string]any{"attributes": map[string]any{"type": entity, "url": "/services/data/v61.0/sobjects/" + entity + "/" + id}, "Id": id, "IsDeleted": false}
	for k, v := range fields {
		rec[k] = v
	}
	f.records[id] = rec
}

func (f *fakeSF) fail(faults ...fault) {
	f.mu.Lock()
	f.failures = append(f.failures, faults...)
	f.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var (
	inList   = regexp.MustCompile(`WHERE Id IN \(([^)]*)\)`)
	fromName = regexp.MustCompile(`FROM (\w+)`)
)

func (f *fakeSF) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.redirect != nil {
		if to := f.redirect(r.URL.Path); to != "" {
			code := http.StatusFound
			if r.Method == http.MethodPost {
				code = http.StatusTemporaryRedirect
			}
			http.Redirect(w, r, to, code)
			return
		}
	}
	if r.URL.Path == "/services/oauth2/token" {
		if r.Method != http.MethodPost || r.FormValue("grant_type") != "client_credentials" ||
			r.FormValue("client_id") != "cid" || r.FormValue("client_secret") != "secret" {
			writeJSON(w, 400, map[string]string{"error": "invalid_client", "error_description": "invalid client credentials"})
			return
		}
		f.tokens++
		tok := "tok" + strconv.Itoa(f.tokens)
		f.valid[tok] = true
		answer := map[string]any{"access_token": tok, "instance_url": f.srv.URL, "token_type": "Bearer", "id": "x"}
		if f.token != nil {
			f.token(answer)
		}
		writeJSON(w, 200, answer)
		return
	}
	f.requests = append(f.requests, r.URL.RequestURI())
	if f.before != nil {
		f.before(r.URL.Path)
	}
	if !f.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(invalidSession.body))
		return
	}
	if len(f.failures) > 0 {
		ft := f.failures[0]
		f.failures = f.failures[1:]
		if ft.status == 401 {
			f.valid = map[string]bool{}
		}
		w.WriteHeader(ft.status)
		_, _ = w.Write([]byte(ft.body))
		return
	}
	const base = "/services/data/v61.0/"
	rest, ok := strings.CutPrefix(r.URL.Path, base)
	if !ok {
		writeJSON(w, 404, []map[string]string{{"errorCode": "NOT_FOUND", "message": "no such version"}})
		return
	}
	switch {
	case strings.HasPrefix(rest, "sobjects/"):
		parts := strings.Split(rest, "/")
		rec, ok := f.records[parts[len(parts)-1]]
		if !ok || rec["IsDeleted"] == true {
			writeJSON(w, 404, []map[string]string{{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}})
			return
		}
		out := map[string]any{}
		for _, name := range strings.Split(r.URL.Query().Get("fields"), ",") {
			name = strings.TrimSpace(name)
			if v, ok := rec[name]; ok {
				out[name] = v
			}
		}
		out["attributes"] = rec["attributes"]
		writeJSON(w, 200, out)
	case rest == "query" || rest == "queryAll":
		q := r.URL.Query().Get("q")
		entity := fromName.FindStringSubmatch(q)[1]
		var ids map[string]bool
		if m := inList.FindStringSubmatch(q); m != nil {
			ids = map[string]bool{}
			for _, id := range strings.Split(m[1], ",") {
				ids[strings.Trim(id, "' ")] = true
			}
		}
		var recs []map[string]any
		for id, rec := range f.records {
			at := rec["attributes"].(map[string]any)
			if at["type"] != entity || (ids != nil && !ids[id]) || (rest == "query" && rec["IsDeleted"] == true) {
				continue
			}
			recs = append(recs, rec)
		}
		f.page(w, recs)
	case strings.HasPrefix(rest, "query/"):
		recs, ok := f.pages[r.URL.Path]
		if !ok {
			writeJSON(w, 400, []map[string]string{{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}})
			return
		}
		delete(f.pages, r.URL.Path)
		f.page(w, recs)
	default:
		writeJSON(w, 404, []map[string]string{{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}})
	}
}

func (f *fakeSF) page(w http.ResponseWriter, recs []map[string]any) {
	n := min(len(recs), f.pageSize)
	out := map[string]any{"totalSize": len(recs), "done": n == len(recs), "records": recs[:n]}
	if n < len(recs) {
		next := fmt.Sprintf("/services/data/v61.0/query/01gD0000002HU6KIAW-%d", len(f.pages)+len(f.requests))
		f.pages[next] = recs[n:]
		if f.next != nil {
			next = f.next(next)
		}
		out["nextRecordsUrl"] = next
	}
	writeJSON(w, 200, out)
}

// hook sets hooks under the lock.
func (f *fakeSF) hook(set func(f *fakeSF)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	set(f)
}

func (f *fakeSF) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeSF) tokenCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens
}
