package sfauth

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestParseAnswer(t *testing.T) {
	configured := &url.URL{Scheme: "https", Host: "acme.my.salesforce.com"}
	tests := []struct {
		name, body   string
		instance     string
		org, wantErr string
	}{
		{"full", `{"access_token":"tok","token_type":"Bearer","instance_url":"https://acme2.my.salesforce.com","id":"https://login.salesforce.com/id/00D5g000004LZbCEAW/0055g00000AbCdEAAV"}`,
			"https://acme2.my.salesforce.com", "00D5g000004LZbCEAW", ""},
		{"no instance, no id", `{"access_token":"tok"}`, "https://acme.my.salesforce.com", "", ""},
		{"downgrade", `{"access_token":"tok","instance_url":"http://acme.my.salesforce.com"}`, "", "", "not https"},
		{"no token", `{"instance_url":"https://acme.my.salesforce.com"}`, "", "", "no access_token"},
		{"token with a space", `{"access_token":"a b"}`, "", "", "not visible ASCII"},
		{"not json", `<html>`, "", "", "decoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseAnswer([]byte(tt.body), configured)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			org, err := OrgID(s.Identity)
			if tt.org == "" {
				org, err = "", nil
			}
			if err != nil || s.InstanceURL.String() != tt.instance || org != tt.org || s.AccessToken != "tok" {
				t.Fatalf("session = %+v, org id %q, %v", s, org, err)
			}
		})
	}
}

type doer func(*http.Request) (*http.Response, error)

func (d doer) Do(r *http.Request) (*http.Response, error) { return d(r) }

func answer(status int, body string) doer {
	return func(r *http.Request) (*http.Response, error) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			return nil, errors.New("bad request")
		}
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}, nil
	}
}

func TestFetchErrors(t *testing.T) {
	base := &url.URL{Scheme: "https", Host: "acme.my.salesforce.com"}
	tests := []struct {
		name      string
		d         doer
		retryable bool
		want      string
	}{
		{"invalid client", answer(400, `{"error":"invalid_client","error_description":"invalid client credentials"}`), false, "HTTP 400 invalid_client: invalid client credentials"},
		{"unavailable", answer(503, ``), true, "HTTP 503"},
		{"throttled", answer(429, ``), true, "HTTP 429"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Fetch(context.Background(), tt.d, "https://login.salesforce.com/services/oauth2/token", "id", "secret-value", base)
			var e *Error
			if !errors.As(err, &e) || e.Retryable() != tt.retryable || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (retryable %v), want %q retryable %v", err, e != nil && e.Retryable(), tt.want, tt.retryable)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Fatal("error shows the secret")
			}
		})
	}
	if _, err := Fetch(context.Background(), answer(200, strings.Repeat("x", MaxAnswer+1)), "https://t", "id", "s", base); err == nil {
		t.Fatal("oversized answer accepted")
	}
}

func TestOrgID(t *testing.T) {
	tests := []struct{ id, org, wantErr string }{
		{"https://login.salesforce.com/id/00D5g000004LZbCEAW/0055g00000AbCdEAAV", "00D5g000004LZbCEAW", ""},
		{"https://login.salesforce.com/services/x", "", "does not name an org id"},
		{"https://login.salesforce.com/id/../0055g00000AbCdEAAV", "", "does not name an org id"},
		{"", "", "no id"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			org, err := OrgID(tt.id)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OrgID = %q, %v; want %q", org, err, tt.wantErr)
				}
				return
			}
			if err != nil || org != tt.org {
				t.Fatalf("OrgID = %q, %v", org, err)
			}
		})
	}
}
