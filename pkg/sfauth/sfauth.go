// Package sfauth is the one place that reads a Salesforce OAuth 2.0 token
// answer (client credentials flow): it builds the token request, bounds and
// checks the answer (a short visible-ASCII access token of type Bearer, an
// instance URL that is an origin and keeps the configured scheme, the org id
// from the identity URL), and classifies error answers. pkg/reconcile (REST)
// and pkg/bridge (Pub/Sub API) both authenticate through it.
//
// Error texts never contain the client secret or the access token. The
// package does no I/O besides the one HTTP request of Fetch, and emits no
// metrics (callers count their requests).
package sfauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Bounds of a token answer.
const (
	// MaxTokenLen bounds an access token: it goes into a header.
	MaxTokenLen = 4096
	// MaxAnswer bounds the body of a token answer.
	MaxAnswer = 64 << 10
)

// Session is what a token answer grants.
type Session struct {
	AccessToken string
	// InstanceURL is the org's instance (scheme and host only): the token
	// answer's instance_url, else the configured one.
	InstanceURL *url.URL
	// Identity is the answer's id field, the identity URL
	// (https://login.salesforce.com/id/<orgId>/<userId>); OrgID reads it.
	Identity string
}

// NewRequest returns the client credentials token request for tokenURL.
func NewRequest(ctx context.Context, tokenURL, clientID, clientSecret string) (*http.Request, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// ParseAnswer reads a successful token answer. configured is the configured
// instance URL: the session's instance when the answer names none, and its
// scheme may not be downgraded by the answer.
func ParseAnswer(body []byte, configured *url.URL) (Session, error) {
	var out struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
		TokenType   string `json:"token_type"`
		ID          string `json:"id"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return Session{}, fmt.Errorf("decoding: %w", err)
	}
	if err := ValidToken(out.AccessToken, out.TokenType); err != nil {
		return Session{}, err
	}
	s := Session{AccessToken: out.AccessToken, InstanceURL: configured}
	if out.InstanceURL != "" {
		scheme := ""
		if configured != nil {
			scheme = configured.Scheme
		}
		u, err := InstanceURL(out.InstanceURL, scheme)
		if err != nil {
			return Session{}, fmt.Errorf("instance_url: %w", err)
		}
		s.InstanceURL = u
	}
	if s.InstanceURL == nil {
		return Session{}, errors.New("the token answer has no instance_url")
	}
	s.Identity = out.ID
	return s, nil
}

// ValidToken checks the token answer's fields: the token goes into a header
// (or gRPC metadata), so it must be a short run of visible ASCII.
func ValidToken(tok, typ string) error {
	if tok == "" {
		return errors.New("the token answer has no access_token")
	}
	if len(tok) > MaxTokenLen {
		return fmt.Errorf("access_token is %d bytes long (at most %d)", len(tok), MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return errors.New("access_token holds a character that is not visible ASCII")
		}
	}
	if typ != "" && !strings.EqualFold(typ, "Bearer") {
		return fmt.Errorf("token_type is %s, want Bearer", Quote(typ))
	}
	return nil
}

// InstanceURL parses an instance URL (configured, or from the token
// answer): an origin only, http(s) with a host, no user info, path, query or
// fragment. scheme, when set, is the configured one: an answer may not
// downgrade https to http.
func InstanceURL(raw, scheme string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || !utf8.ValidString(raw) {
		return nil, errors.New("not a URL")
	}
	// The value may carry credentials: errors show it with them masked.
	shown := *u
	shown.User = nil
	str := shown.String()
	if u.User != nil {
		str = strings.Replace(str, "://", "://***@", 1)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "", u.Hostname() == "":
		return nil, fmt.Errorf("%s is not an http(s) URL with a host", Quote(str))
	case scheme == "https" && u.Scheme != "https":
		return nil, fmt.Errorf("%s is not https like the configured instance URL", Quote(str))
	case u.User != nil, u.Path != "", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return nil, fmt.Errorf("%s must be a scheme and host only (no user, path or query)", Quote(str))
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// OrgID returns the org id of an identity URL (Session.Identity): the path
// segment after "/id/", a 15- or 18-character Salesforce id.
func OrgID(identity string) (string, error) {
	u, err := url.Parse(identity)
	if identity == "" {
		return "", errors.New("the token answer has no id (identity URL)")
	}
	if err != nil {
		return "", fmt.Errorf("id %s is not a URL", Quote(identity))
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "id" {
			if org := parts[i+1]; cdc.ValidID(org) {
				return org, nil
			}
			break
		}
	}
	return "", fmt.Errorf("id %s does not name an org id (.../id/<orgId>/<userId>)", Quote(identity))
}

// Error is an error answer of the token endpoint.
type Error struct {
	Status int
	// Code and Description are the OAuth error and error_description,
	// bounded and with control characters replaced.
	Code, Description string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("salesforce token endpoint: HTTP %d", e.Status)
	}
	return fmt.Sprintf("salesforce token endpoint: HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

// Retryable reports whether the answer may succeed later: server errors and
// throttling. Every 4xx other than 429 (invalid_client, invalid_grant, ...)
// needs an operator.
func (e *Error) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// Doer sends HTTP requests (*http.Client); it must honour the request's
// context and be safe for concurrent use.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Fetch requests a session with the client credentials flow. An error
// answer is an *Error; a malformed successful answer is an *AnswerError;
// anything else is a transport error (retryable).
func Fetch(ctx context.Context, hc Doer, tokenURL, clientID, clientSecret string, configured *url.URL) (Session, error) {
	req, err := NewRequest(ctx, tokenURL, clientID, clientSecret)
	if err != nil {
		return Session{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Session{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return Session{}, err
	}
	if len(body) > MaxAnswer {
		return Session{}, &AnswerError{fmt.Errorf("the token answer is longer than %d bytes", MaxAnswer)}
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode}
		var oauth struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oauth) == nil {
			e.Code, e.Description = Printable(oauth.Error, 64), Printable(oauth.Description, 512)
		}
		return Session{}, e
	}
	s, err := ParseAnswer(body, configured)
	if err != nil {
		return Session{}, &AnswerError{err}
	}
	return s, nil
}

// AnswerError is a successful token answer refused at the edge.
type AnswerError struct{ Err error }

func (e *AnswerError) Error() string { return "salesforce token answer: " + e.Err.Error() }
func (e *AnswerError) Unwrap() error { return e.Err }

// Quote renders an outside value for an error: quoted, at most 80 bytes.
func Quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// Printable bounds an error text from an answer for logs: at most max
// bytes, control characters replaced.
func Printable(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}
