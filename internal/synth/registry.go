package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry is an in-memory fake of a Confluent Schema Registry for tests and
// the demo. It serves GET /schemas/ids/{id} and POST
// /subjects/{subject}/versions, registers in-process through Register and ID,
// and injects faults into HTTP requests (FailNext, SetDelay). Ids start at 1
// and are per schema text, whatever the subject. It is safe for concurrent use.
type Registry struct {
	mu         sync.Mutex
	byID       map[int]string
	byText     map[string]int
	subjects   map[string]map[int]bool
	failNext   int
	failStatus int
	delay      time.Duration
	// delayChanged is closed (and replaced) when the delay changes, to
	// release requests waiting out the old delay.
	delayChanged chan struct{}

	requests atomic.Int64
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{byID: map[int]string{}, byText: map[string]int{}, subjects: map[string]map[int]bool{}, delayChanged: make(chan struct{})}
}

// Register stores a schema (idempotently per schema text) and returns its id.
func (r *Registry) Register(schemaJSON string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registerLocked("", schemaJSON)
}

func (r *Registry) registerLocked(subject, schemaJSON string) int {
	if r.byID == nil { // the zero Registry is usable too
		r.byID, r.byText, r.subjects = map[int]string{}, map[string]int{}, map[string]map[int]bool{}
	}
	id, ok := r.byText[schemaJSON]
	if !ok {
		id = len(r.byID) + 1
		r.byID[id] = schemaJSON
		r.byText[schemaJSON] = id
	}
	if subject != "" {
		if r.subjects[subject] == nil {
			r.subjects[subject] = map[int]bool{}
		}
		r.subjects[subject][id] = true
	}
	return id
}

// ID implements SchemaIDs in process, without faults or delay.
func (r *Registry) ID(ctx context.Context, subject, schemaJSON string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registerLocked(subject, schemaJSON), nil
}

// Schema returns the schema stored under id.
func (r *Registry) Schema(id int) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.byID[id]
	return s, ok
}

// FailNext makes the next n HTTP requests fail with the given status code
// (and a Confluent-style error body).
func (r *Registry) FailNext(n int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext, r.failStatus = n, status
}

// SetDelay delays every HTTP request by d (0 disables), returning early when
// the request's context ends. Requests already waiting are released.
func (r *Registry) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
	if r.delayChanged != nil {
		close(r.delayChanged)
	}
	r.delayChanged = make(chan struct{})
}

// Requests returns how many HTTP requests the registry has received.
func (r *Registry) Requests() int { return int(r.requests.Load()) }

const registryContentType = "application/vnd.schemaregistry.v1+json"

type registryError struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", registryContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	// Read the body first: only then does net/http notice a client that
	// hangs up, and cancel the request context.
	raw, readErr := io.ReadAll(io.LimitReader(req.Body, 8<<20))
	r.mu.Lock()
	delay, released := r.delay, r.delayChanged
	fail := 0
	if r.failNext > 0 {
		r.failNext--
		fail = r.failStatus
	}
	r.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-released:
			t.Stop()
		case <-req.Context().Done():
			t.Stop()
			return
		}
	}
	if fail != 0 {
		writeJSON(w, fail, registryError{ErrorCode: fail * 100, Message: "injected failure"})
		return
	}

	path := strings.Trim(req.URL.EscapedPath(), "/")
	parts := strings.Split(path, "/")
	switch {
	case len(parts) == 3 && parts[0] == "schemas" && parts[1] == "ids" && req.Method == http.MethodGet:
		id, err := strconv.Atoi(parts[2])
		s, ok := r.Schema(id)
		if err != nil || !ok {
			writeJSON(w, http.StatusNotFound, registryError{ErrorCode: 40403, Message: "Schema not found"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"schema": s})
	case len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions" && req.Method == http.MethodPost:
		subject, err := url.PathUnescape(parts[1])
		if err != nil || subject == "" {
			writeJSON(w, http.StatusNotFound, registryError{ErrorCode: 40401, Message: "Subject not found"})
			return
		}
		var body struct {
			Schema     string `json:"schema"`
			SchemaType string `json:"schemaType"`
		}
		if err := json.Unmarshal(raw, &body); readErr != nil || err != nil || body.Schema == "" {
			writeJSON(w, http.StatusUnprocessableEntity, registryError{ErrorCode: 42201, Message: "Invalid schema"})
			return
		}
		if body.SchemaType != "" && body.SchemaType != "AVRO" {
			writeJSON(w, http.StatusUnprocessableEntity, registryError{ErrorCode: 42201, Message: "Invalid schema type"})
			return
		}
		if !json.Valid([]byte(body.Schema)) {
			writeJSON(w, http.StatusUnprocessableEntity, registryError{ErrorCode: 42201, Message: "Invalid schema"})
			return
		}
		r.mu.Lock()
		id := r.registerLocked(subject, body.Schema)
		r.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"id": id})
	default:
		writeJSON(w, http.StatusNotFound, registryError{ErrorCode: 404, Message: "HTTP 404 Not Found"})
	}
}

// RegistryClient registers schemas with a real Confluent-compatible Schema
// Registry (POST /subjects/{subject}/versions). It implements SchemaIDs,
// caches ids per (subject, schema), and is safe for concurrent use.
type RegistryClient struct {
	URL      string
	Username string // basic auth when non-empty
	Password string
	// HTTP is the client to use [http.DefaultClient].
	HTTP *http.Client

	mu    sync.Mutex
	cache map[[2]string]int
}

// ID registers schemaJSON under subject and returns its id. It blocks on the
// network and honours ctx.
func (c *RegistryClient) ID(ctx context.Context, subject, schemaJSON string) (int, error) {
	key := [2]string{subject, schemaJSON}
	c.mu.Lock()
	id, ok := c.cache[key]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	body, err := json.Marshal(map[string]string{"schema": schemaJSON})
	if err != nil {
		return 0, fmt.Errorf("encoding registration: %w", err)
	}
	u := strings.TrimRight(c.URL, "/") + "/subjects/" + url.PathEscape(subject) + "/versions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("registering schema for %s: %w", subject, err)
	}
	req.Header.Set("Content-Type", registryContentType)
	req.Header.Set("Accept", registryContentType)
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("registering schema for %s: %w", subject, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("reading registry response for %s: %w", subject, err)
	}
	if resp.StatusCode != http.StatusOK {
		var re registryError
		_ = json.Unmarshal(raw, &re)
		return 0, fmt.Errorf("registering schema for %s: registry status %d (error_code %d): %s", subject, resp.StatusCode, re.ErrorCode, re.Message)
	}
	var out struct {
		ID *int `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ID == nil {
		return 0, fmt.Errorf("registering schema for %s: unexpected registry response %q", subject, truncate(raw, 200))
	}
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[[2]string]int{}
	}
	c.cache[key] = *out.ID
	c.mu.Unlock()
	return *out.ID, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
