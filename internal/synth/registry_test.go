package synth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRegistryEndpoints(t *testing.T) {
	reg := NewRegistry()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	schemaA := `{"type":"record","name":"A","fields":[]}`
	schemaB := `{"type":"record","name":"B","fields":[]}`
	body := func(s string) string { b, _ := json.Marshal(map[string]string{"schema": s}); return string(b) }

	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantBody                 string
	}{
		{"register A", "POST", "/subjects/salesforce.OpportunityChangeEvent-value/versions", body(schemaA), 200, `{"id":1}`},
		{"register A again is idempotent", "POST", "/subjects/other-value/versions", body(schemaA), 200, `{"id":1}`},
		{"register B", "POST", "/subjects/x-value/versions", body(schemaB), 200, `{"id":2}`},
		{"fetch A", "GET", "/schemas/ids/1", "", 200, body(schemaA)},
		{"unknown id", "GET", "/schemas/ids/99", "", 404, `{"error_code":40403,"message":"Schema not found"}`},
		{"non-numeric id", "GET", "/schemas/ids/abc", "", 404, `{"error_code":40403,"message":"Schema not found"}`},
		{"invalid schema", "POST", "/subjects/x-value/versions", `{"schema":"{nope"}`, 422, `{"error_code":42201,"message":"Invalid schema"}`},
		{"unknown route", "GET", "/config", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, got)
			}
			if tt.wantBody != "" && strings.TrimSpace(string(got)) != tt.wantBody {
				t.Errorf("body %s, want %s", got, tt.wantBody)
			}
		})
	}
	if got := reg.Requests(); got != len(tests) {
		t.Errorf("Requests() = %d, want %d", got, len(tests))
	}
	if id := reg.Register(schemaB); id != 2 {
		t.Errorf("Register(B) = %d, want the HTTP-registered id 2", id)
	}
}

func TestRegistryFaults(t *testing.T) {
	reg := NewRegistry()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	client := &RegistryClient{URL: srv.URL}
	ctx := context.Background()
	schema := `{"type":"record","name":"A","fields":[]}`

	reg.FailNext(2, http.StatusServiceUnavailable)
	for i := 0; i < 2; i++ {
		if _, err := client.ID(ctx, "s", schema); err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("attempt %d: err = %v, want an injected 503", i, err)
		}
	}
	id, err := client.ID(ctx, "s", schema)
	if err != nil || id != 1 {
		t.Fatalf("after the faults: id %d, err %v", id, err)
	}
	if got := reg.Requests(); got != 3 {
		t.Errorf("Requests() = %d, want 3", got)
	}
	if _, err := client.ID(ctx, "s", schema); err != nil || reg.Requests() != 3 {
		t.Errorf("cached id: err %v, requests %d, want no new request", err, reg.Requests())
	}

	reg.SetDelay(time.Hour)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := client.ID(short, "s2", schema); err == nil {
		t.Error("a delayed registry past the deadline: want an error")
	}
	reg.SetDelay(0)
	if id, err := client.ID(ctx, "s2", schema); err != nil || id != 1 {
		t.Errorf("after removing the delay: id %d, err %v", id, err)
	}
}

func TestRegistryClientAuth(t *testing.T) {
	reg := NewRegistry()
	var user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := &RegistryClient{URL: srv.URL + "/", Username: "u", Password: "p"}
	if _, err := c.ID(context.Background(), "a/b", `{"type":"string"}`); err != nil {
		t.Fatal(err)
	}
	if user != "u" || pass != "p" {
		t.Errorf("basic auth %q/%q, want u/p", user, pass)
	}
}
