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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/sfauth"
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
	var ans *AnswerError
	if errors.As(err, &ans) {
		return false
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return true // transport errors
	}
	return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Code == "REQUEST_LIMIT_EXCEEDED"
}

// client is a Salesforce REST client: OAuth 2.0 client credentials, a token
// bucket, retries with capped backoff and one re-authentication on 401.
type client struct {
	cfg     Config
	base    *url.URL // the configured instance URL
	http    Doer
	lim     *bucket
	metrics *metrics
	// spend, when set, is called before each data request: the daily API
	// budget. Its error is permanent.
	spend func(context.Context) error

	mu       sync.Mutex
	token    string
	instance *url.URL // from the token answer, else base
}

func (c *client) authenticate(ctx context.Context) (string, *url.URL, error) {
	var sess sfauth.Session
	err := c.retry(ctx, func() error {
		if err := c.lim.wait(ctx); err != nil {
			return err
		}
		req, err := sfauth.NewRequest(ctx, c.cfg.TokenURL, c.cfg.ClientID, c.cfg.ClientSecret)
		if err != nil {
			return permanent{err}
		}
		body, err := c.send(req, kindToken)
		if err != nil {
			return err
		}
		if sess, err = sfauth.ParseAnswer(body, c.base); err != nil {
			return permanent{&AnswerError{Kind: kindToken, Err: err}}
		}
		return nil
	})
	if err != nil {
		return "", nil, fmt.Errorf("authenticating: %w", err)
	}
	c.mu.Lock()
	c.token, c.instance = sess.AccessToken, sess.InstanceURL
	c.mu.Unlock()
	return sess.AccessToken, sess.InstanceURL, nil
}

// instanceURL checks an instance URL (sfauth.InstanceURL).
func instanceURL(raw, scheme string) (*url.URL, error) { return sfauth.InstanceURL(raw, scheme) }

func (c *client) session(ctx context.Context) (string, *url.URL, error) {
	c.mu.Lock()
	tok, inst := c.token, c.instance
	c.mu.Unlock()
	if tok != "" {
		return tok, inst, nil
	}
	return c.authenticate(ctx)
}

// get fetches ref, a path on the instance (with its query), and decodes the
// JSON answer. ref comes from the reconciler or from an answer
// (nextRecordsUrl): the request is built from the instance URL with ref's
// path and query only, and refused unless it stays on the instance.
func (c *client) get(ctx context.Context, kind, ref string, out any) error {
	path, query, err := instancePath(ref)
	if err != nil {
		return err
	}
	reauthed := false
	err = c.retry(ctx, func() error {
		tok, inst, err := c.session(ctx)
		if err != nil {
			return err
		}
		u := *inst
		u.Path, u.RawQuery = path, query
		if u.Scheme != inst.Scheme || u.Host != inst.Host || u.User != nil {
			return permanent{fmt.Errorf("request URL %s is not on the instance %s", quote(u.String()), inst.Host)}
		}
		if c.spend != nil {
			if err := c.spend(ctx); err != nil {
				var be *BudgetError
				if !errors.As(err, &be) {
					err = &stateError{err}
				}
				return permanent{err}
			}
		}
		if err := c.lim.wait(ctx); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return permanent{err}
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		body, err := c.send(req, kind)
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
			return permanent{&AnswerError{Kind: kind, Err: fmt.Errorf("decoding %s: %w", quote(path), err)}}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return &salesforceError{err}
	}
	return err
}

// salesforceError marks what a REST request returned in the end (an
// *APIError, an *AnswerError, a transport error) for the error metric.
type salesforceError struct{ err error }

func (e *salesforceError) Error() string { return e.err.Error() }
func (e *salesforceError) Unwrap() error { return e.err }

// stateError is a Redis failure met while sending a request (the budget).
type stateError struct{ err error }

func (e *stateError) Error() string { return e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }

// sameOrigin returns a copy of hc that follows a redirect only to the
// origin (scheme, host and port) of the request it answers. Go's default
// policy keeps the Authorization header on a redirect to another port of the
// same host name, to a subdomain and on a downgrade to http, and re-sends a
// POST body (the client secret) on 307/308.
func sameOrigin(hc *http.Client) *http.Client {
	c := *hc
	next := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from := via[len(via)-1].URL
		if req.URL.Scheme != from.Scheme || req.URL.Host != from.Host {
			return &AnswerError{Kind: "redirect", Err: fmt.Errorf("refusing a redirect from %s to %s", from.Host, quote(req.URL.Scheme+"://"+req.URL.Host))}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// instancePath checks a reference to a REST resource of the instance and
// splits it into path and query. Only what Salesforce sends is accepted: an
// absolute path under /services/data/ of letters, digits and "._-/" (no
// "..", no "//", so no scheme, host or user info), and a query of URL-safe
// characters. Anything else is refused, naming the value.
func instancePath(ref string) (string, string, error) {
	path, query, _ := strings.Cut(ref, "?")
	bad := func(why string) error {
		return &AnswerError{Kind: "nextRecordsUrl", Err: fmt.Errorf("%s is not a path on the instance: %s", quote(ref), why)}
	}
	switch {
	case len(ref) > maxRefLen:
		return "", "", bad(fmt.Sprintf("longer than %d bytes", maxRefLen))
	case !strings.HasPrefix(path, "/services/data/"):
		return "", "", bad("it must start with /services/data/")
	case strings.Contains(path, ".."):
		return "", "", bad(`it holds ".."`)
	case strings.Contains(path, "//"):
		return "", "", bad(`it holds "//"`)
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; !(isAlnum(c) || c == '.' || c == '_' || c == '-' || c == '/') {
			return "", "", bad(fmt.Sprintf("character %q is not allowed in the path", c))
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; !(isAlnum(c) || strings.IndexByte("._-~%+=&", c) >= 0) {
			return "", "", bad(fmt.Sprintf("character %q is not allowed in the query", c))
		}
	}
	return path, query, nil
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// quote renders an outside value for an error: quoted, at most 80 bytes.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// AnswerError is a REST answer refused at the edge: a bad nextRecordsUrl,
// record id, token answer or an oversized or malformed body. It is never
// retried.
type AnswerError struct {
	Kind string // endpoint kind: token, sobject, query, nextRecordsUrl
	Err  error
}

func (e *AnswerError) Error() string { return "salesforce " + e.Kind + " answer: " + e.Err.Error() }
func (e *AnswerError) Unwrap() error { return e.Err }

// Endpoint kinds, the label of oppsync_salesforce_api_requests_total.
const (
	kindToken   = "token"
	kindSObject = "sobject"
	kindQuery   = "query"
)

// Bounds of what an answer may be.
const (
	maxTokenLen     = sfauth.MaxTokenLen
	maxRefLen       = 16384
	maxTokenAnswer  = sfauth.MaxAnswer
	maxErrorMessage = 512
)

// maxDataAnswer bounds a data answer (a query page of 2,000 records with
// every field is a few MiB); a variable so that tests can lower it.
var maxDataAnswer int64 = 64 << 20

// send does one request and turns error answers into *APIError. The body
// is read up to a bound (64 KiB for the token endpoint, 64 MiB otherwise):
// a longer answer is an error naming the endpoint.
func (c *client) send(req *http.Request, kind string) ([]byte, error) {
	resp, err := c.http.Do(req)
	c.observe(kind, resp, err)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := maxDataAnswer
	if kind == kindToken {
		limit = maxTokenAnswer
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, permanent{&AnswerError{Kind: kind, Err: fmt.Errorf("the answer to %s is longer than %d bytes", quote(req.URL.Path), limit)}}
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
	ae.Code, ae.Message = sfauth.Printable(ae.Code, 64), sfauth.Printable(ae.Message, maxErrorMessage)
	return nil, ae
}

// observe counts a request by endpoint kind and status class.
func (c *client) observe(kind string, resp *http.Response, err error) {
	if c.metrics == nil {
		return
	}
	class := "error"
	if err == nil {
		switch resp.StatusCode / 100 {
		case 2:
			class = "2xx"
		case 3:
			class = "3xx"
		case 4:
			class = "4xx"
		case 5:
			class = "5xx"
		}
	}
	c.metrics.requests.WithLabelValues(kind, class).Inc()
}

// permanent marks an error retry must not retry.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

var errRetryNow = errors.New("retry now")

// retry runs op until it succeeds, fails permanently, MaxRetries retries
// are spent, or ctx ends; backoff doubles from MinBackoff up to MaxBackoff.
func (c *client) retry(ctx context.Context, op func() error) error {
	bo := backoff.Backoff{Min: c.cfg.MinBackoff, Max: c.cfg.MaxBackoff}
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
		if err := bo.Wait(ctx); err != nil {
			return err
		}
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
