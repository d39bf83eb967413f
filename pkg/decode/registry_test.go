package decode

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// fakeRegistry serves schema id 1 = oppSchema, 3 = a PROTOBUF schema; the
// status function may override the answer per request number.
type fakeRegistry struct {
	requests atomic.Int64
	status   func(n int64) int
	delay    time.Duration
	gate     chan struct{} // when set, requests wait for it
	user     string
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	if f.user != "" {
		if u, _, ok := r.BasicAuth(); !ok || u != f.user {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	if f.status != nil {
		if s := f.status(n); s != 0 {
			w.WriteHeader(s)
			_, _ = w.Write([]byte(`{"error_code":50001,"message":"boom"}`))
			return
		}
	}
	switch r.URL.Path {
	case "/schemas/ids/1":
		_ = json.NewEncoder(w).Encode(map[string]any{"schema": oppSchema})
	case "/schemas/ids/2":
		_ = json.NewEncoder(w).Encode(map[string]any{"schema": oppSchema, "schemaType": "AVRO", "references": []any{}})
	case "/schemas/ids/3":
		_ = json.NewEncoder(w).Encode(map[string]any{"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"})
	case "/schemas/ids/4":
		// Some registries answer 200-less 40403 bodies on a 404.
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error_code":40403,"message":"Schema 4 not found"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error_code":40403,"message":"Schema not found"}`))
	}
}

func TestRegistry(t *testing.T) {
	tests := []struct {
		name      string
		fake      *fakeRegistry
		user      string
		timeout   time.Duration
		id        string
		reason    string // "" = success
		retryable bool
		requests  int64
	}{
		{"found", &fakeRegistry{}, "", 0, "registry:1", "", false, 1},
		{"found with schemaType AVRO", &fakeRegistry{}, "", 0, "registry:2", "", false, 1},
		{"not avro", &fakeRegistry{}, "", 0, "registry:3", cdc.ReasonSchemaInvalid, false, 1},
		{"40403", &fakeRegistry{}, "", 0, "registry:4", cdc.ReasonSchemaNotFound, false, 1},
		{"404", &fakeRegistry{}, "", 0, "registry:77", cdc.ReasonSchemaNotFound, false, 1},
		{"500", &fakeRegistry{status: func(int64) int { return 500 }}, "", 0, "registry:1", cdc.ReasonRegistry, true, 1},
		{"503", &fakeRegistry{status: func(int64) int { return 503 }}, "", 0, "registry:1", cdc.ReasonRegistry, true, 1},
		{"429", &fakeRegistry{status: func(int64) int { return 429 }}, "", 0, "registry:1", cdc.ReasonRegistry, true, 1},
		{"400 is permanent", &fakeRegistry{status: func(int64) int { return 400 }}, "", 0, "registry:1", cdc.ReasonRegistry, false, 1},
		{"timeout", &fakeRegistry{delay: 2 * time.Second}, "", 50 * time.Millisecond, "registry:1", cdc.ReasonRegistry, true, 1},
		{"basic auth ok", &fakeRegistry{user: "sr-user"}, "sr-user", 0, "registry:1", "", false, 1},
		{"basic auth missing", &fakeRegistry{user: "sr-user"}, "", 0, "registry:1", cdc.ReasonRegistry, true, 1},
		{"not a registry id", &fakeRegistry{}, "", 0, "AbCd", cdc.ReasonSchemaNotFound, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.fake)
			defer srv.Close()
			r := NewRegistry(srv.URL, tt.user, "pw", tt.timeout)
			s, err := r.Schema(context.Background(), tt.id)
			if tt.reason == "" {
				if err != nil || s != oppSchema {
					t.Fatalf("Schema = %.20q, %v", s, err)
				}
			} else if cdc.ReasonOf(err) != tt.reason || cdc.IsRetryable(err) != tt.retryable {
				t.Fatalf("err = %v (retryable %v), want %s retryable %v", err, cdc.IsRetryable(err), tt.reason, tt.retryable)
			}
			if got := tt.fake.requests.Load(); got != tt.requests {
				t.Errorf("requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

func TestRegistryCachesAndRetries(t *testing.T) {
	fake := &fakeRegistry{status: func(n int64) int {
		if n == 1 {
			return 500
		}
		return 0
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	d, err := New(Config{RegistryURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	msg := wireMsg(1, pubsubPayload(t, oppSchema, hdr{entity: "Opportunity", ct: "DELETE", ids: []string{"006000000000001AAA"}}, nil))
	if _, err := d.Decode(context.Background(), msg); !cdc.IsRetryable(err) || cdc.ReasonOf(err) != cdc.ReasonRegistry {
		t.Fatalf("first decode: %v, want retryable %s", err, cdc.ReasonRegistry)
	}
	for i := 0; i < 5; i++ {
		ev, err := d.Decode(context.Background(), msg)
		if err != nil {
			t.Fatalf("retry %d: %v", i, err)
		}
		if ev.SchemaID != "registry:1" {
			t.Errorf("SchemaID = %q", ev.SchemaID)
		}
	}
	if got := fake.requests.Load(); got != 2 {
		t.Errorf("registry requests = %d, want 2 (one failure, then cached)", got)
	}
}

func TestRegistryConcurrentMissesFetchOnce(t *testing.T) {
	fake := &fakeRegistry{gate: make(chan struct{})}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	d, err := New(Config{RegistryURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	msg := wireMsg(1, pubsubPayload(t, oppSchema, hdr{entity: "Opportunity", ct: "DELETE", ids: []string{"006000000000001AAA"}}, nil))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Decode(context.Background(), msg)
			errs <- err
		}()
	}
	// Wait until the one request is in flight, then release it.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return fake.requests.Load() > 0, "no registry request seen"
	})
	close(fake.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := fake.requests.Load(); got != 1 {
		t.Errorf("registry requests = %d, want 1", got)
	}
	if d.SchemasCached() != 1 {
		t.Errorf("SchemasCached = %d, want 1", d.SchemasCached())
	}
}

func TestRegistryConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := NewRegistry(url, "", "", time.Second)
	_, err := r.Schema(context.Background(), "registry:1")
	if !cdc.IsRetryable(err) || cdc.ReasonOf(err) != cdc.ReasonRegistry {
		t.Errorf("err = %v, want retryable %s", err, cdc.ReasonRegistry)
	}
}
