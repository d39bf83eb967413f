package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"google.golang.org/grpc/metadata"

	"github.com/oppsync/oppsync/pkg/backoff"
	"github.com/oppsync/oppsync/pkg/sfauth"
)

// session keeps the current Salesforce session and turns it into the gRPC
// metadata every call carries (accesstoken, instanceurl, tenantid). Safe
// for concurrent use.
type session struct {
	cfg  Config
	hc   sfauth.Doer
	base *url.URL

	mu   sync.Mutex
	cur  sfauth.Session
	org  string // tenantid: the org id of cur's identity URL
	have bool
}

func newSession(cfg Config, hc sfauth.Doer) (*session, error) {
	base, err := sfauth.InstanceURL(cfg.InstanceURL, "")
	if err != nil {
		return nil, fmt.Errorf("salesforce.instance_url: %w", err)
	}
	return &session{cfg: cfg, hc: hc, base: base}, nil
}

// AuthError is a refusal of the configured credentials: the token endpoint
// refused them, or the Pub/Sub API refused a fresh session. It ends Run.
type AuthError struct{ Err error }

func (e *AuthError) Error() string {
	return "bridge: Salesforce refused the credentials: " + e.Err.Error() +
		" (check salesforce.client_id, salesforce.client_secret, salesforce.token_url and that the connected app's run-as user may use the Pub/Sub API)"
}

func (e *AuthError) Unwrap() error { return e.Err }

// outgoing returns ctx with the session's metadata, authenticating first
// when there is no session yet.
func (s *session) outgoing(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	cur, org, have := s.cur, s.org, s.have
	s.mu.Unlock()
	if !have {
		var err error
		if cur, err = s.refresh(ctx); err != nil {
			return nil, err
		}
		s.mu.Lock()
		org = s.org
		s.mu.Unlock()
	}
	return metadata.AppendToOutgoingContext(ctx,
		"accesstoken", cur.AccessToken, "instanceurl", cur.InstanceURL.String(), "tenantid", org), nil
}

// refresh fetches a new session. Transport errors and server errors of the
// token endpoint are retried with backoff; a refusal is an *AuthError.
func (s *session) refresh(ctx context.Context) (sfauth.Session, error) {
	bo := backoff.Backoff{Min: s.cfg.MinBackoff, Max: s.cfg.MaxBackoff}
	for {
		cur, err := sfauth.Fetch(ctx, s.hc, s.cfg.TokenURL, s.cfg.ClientID, s.cfg.ClientSecret, s.base)
		var org string
		if err == nil {
			if org, err = sfauth.OrgID(cur.Identity); err != nil {
				err = &sfauth.AnswerError{Err: fmt.Errorf("the org id (tenantid) is unknown: %w", err)}
			}
		}
		if err == nil {
			s.mu.Lock()
			s.cur, s.org, s.have = cur, org, true
			s.mu.Unlock()
			return cur, nil
		}
		var te *sfauth.Error
		var ae *sfauth.AnswerError
		if (errors.As(err, &te) && !te.Retryable()) || errors.As(err, &ae) {
			return sfauth.Session{}, &AuthError{err}
		}
		if ctx.Err() != nil {
			return sfauth.Session{}, ctx.Err()
		}
		if bo.Wait(ctx) != nil {
			return sfauth.Session{}, ctx.Err()
		}
	}
}
