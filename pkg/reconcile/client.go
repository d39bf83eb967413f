package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Doer sends HTTP requests (*http.Client). It must honour the request's
// context and be safe for concurrent use.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// APIError is an error answer of the Salesforce REST API:
// [{"errorCode":"...","message":"..."}].
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("salesforce: HTTP %d", e.Status)
	}
	return fmt.Sprintf("salesforce: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// retryable is the one place that decides which answers are retried:
// server errors, throttling and REQUEST_LIMIT_EXCEEDED (sent with 403).
func retryable(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return true // transport errors
	}
	return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Code == "REQUEST_LIMIT_EXCEEDED"
}

// client is a Salesforce REST client: OAuth 2.0 client credentials, a token
// bucket, retries with capped backoff and one re-authentication on 401.
type client struct {
	cfg  Config
	http Doer
	lim  *bucket

	mu       sync.Mutex
	token    string
	instance string // from the token answer, else cfg.InstanceURL
}

func (c *client) authenticate(ctx context.Context) (string, string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.cfg.ClientID}, "client_secret": {c.cfg.ClientSecret}}
	var out struct {
		AccessToken string `json:"access_token"`
		InstanceURL string `json:"instance_url"`
	}
	err := c.retry(ctx, func() error {
		if err := c.lim.wait(ctx); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		body, err := c.send(req)
		if err != nil {
			return err
		}
		return json.Unmarshal(body, &out)
	})
	if err != nil {
		return "", "", fmt.Errorf("authenticating: %w", err)
	}
	if out.AccessToken == "" {
		return "", "", errors.New("authenticating: the token answer has no access_token")
	}
	inst := strings.TrimRight(out.InstanceURL, "/")
	if inst == "" {
		inst = c.cfg.InstanceURL
	}
	c.mu.Lock()
	c.token, c.instance = out.AccessToken, inst
	c.mu.Unlock()
	return out.AccessToken, inst, nil
}

func (c *client) session(ctx context.Context) (string, string, error) {
	c.mu.Lock()
	tok, inst := c.token, c.instance
	c.mu.Unlock()
	if tok != "" {
		return tok, inst, nil
	}
	return c.authenticate(ctx)
}

// get fetches path (starting with /services/) and decodes the JSON answer.
func (c *client) get(ctx context.Context, path string, out any) error {
	reauthed := false
	return c.retry(ctx, func() error {
		tok, inst, err := c.session(ctx)
		if err != nil {
			return err
		}
		if err := c.lim.wait(ctx); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, inst+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		body, err := c.send(req)
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && !reauthed {
			// An expired session: authenticate again, once per request.
			reauthed = true
			if _, _, err := c.authenticate(ctx); err != nil {
				return permanent{err}
			}
			return errRetryNow
		}
		if err != nil {
			return err
		}
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber() // numbers stay exact until typed by the schema
		if err := d.Decode(out); err != nil {
			return permanent{fmt.Errorf("decoding %s answer: %w", req.URL.Path, err)}
		}
		return nil
	})
}

// send does one request and turns error answers into *APIError.
func (c *client) send(req *http.Request) ([]byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	ae := &APIError{Status: resp.StatusCode}
	var list []struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	switch {
	case json.Unmarshal(body, &list) == nil && len(list) > 0:
		ae.Code, ae.Message = list[0].ErrorCode, list[0].Message
	case json.Unmarshal(body, &oauth) == nil && oauth.Error != "":
		ae.Code, ae.Message = oauth.Error, oauth.Description
	}
	return nil, ae
}

// permanent marks an error retry must not retry.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

var errRetryNow = errors.New("retry now")

// retry runs op until it succeeds, fails permanently, MaxRetries retries
// are spent, or ctx ends; backoff doubles from MinBackoff up to MaxBackoff.
func (c *client) retry(ctx context.Context, op func() error) error {
	backoff := c.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if errors.Is(err, errRetryNow) {
			continue
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) || attempt >= c.cfg.MaxRetries {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// bucket is a token bucket: rate tokens per second, at most burst saved.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

// wait blocks until a token is available or ctx ends.
func (b *bucket) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		now := time.Now()
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
			b.mu.Unlock()
			return nil
		}
		d := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
		b.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// soql quotes an id list for a WHERE Id IN (...) clause; ids are checked
// to be alphanumeric, so nothing needs escaping.
func soqlIDs(ids []string) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + id + "'")
	}
	return b.String()
}
