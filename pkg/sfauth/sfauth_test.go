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
		{"id without org", `{"access_token":"tok","id":"https://login.salesforce.com/services/x"}`, "", "", "does not name an org id"},
		{"org id not an id", `{"access_token":"tok","id":"https://login.salesforce.com/id/../0055g00000AbCdEAAV"}`, "", "", "does not name an org id"},
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
			if s.InstanceURL.String() != tt.instance || s.OrgID != tt.org || s.AccessToken != "tok" {
				t.Fatalf("session = %+v", s)
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
