package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/filters"
)

// Records reads single records. Implementations block for their storage
// round trips, honour ctx and are safe for concurrent use.
type Records interface {
	// Opportunity returns an opportunity; ok is false for an id never seen.
	Opportunity(ctx context.Context, id string) (o *filters.Opportunity, ok bool, err error)
	// PersonOpportunities returns the non-deleted opportunities a person
	// holds a live role on; ok is false for a person never seen.
	PersonOpportunities(ctx context.Context, personID string) (opps []*filters.Opportunity, ok bool, err error)
}

// Catalog returns the constraint catalog. It blocks, honours ctx and is
// safe for concurrent use.
type Catalog interface {
	Catalog(ctx context.Context) (*filters.Catalog, error)
}

// Querier answers person queries: one page of matching person ids in a
// stable order and the cursor of the next page ("" after the last). It
// blocks, honours ctx (returning its error) and is safe for concurrent use.
// An error with a method Unavailable() bool returning true means "not
// ready yet" (503).
type Querier interface {
	Query(ctx context.Context, q *filters.Query) (ids []string, next string, err error)
}

// Queries is everything the API reads; view.View implements it.
type Queries interface {
	Records
	Catalog
	Querier
}

// Config configures the Server.
type Config struct {
	// Addr is the listen address [":8080"].
	Addr string
	// AuthToken, when set, is required as "Authorization: Bearer <token>"
	// on /v1/* and /people/*.
	AuthToken string
	// QueryTimeout bounds the work of one request [10s].
	QueryTimeout time.Duration
	// MaxBodyBytes caps request bodies [1 MiB].
	MaxBodyBytes int64
	// ShutdownTimeout bounds the graceful shutdown in Run [10s].
	ShutdownTimeout time.Duration
	// Now is the clock filters are evaluated against [time.Now].
	Now func() time.Time
}

// WithDefaults returns c with its zero-valued settings set to their
// defaults.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 10 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate checks c with its defaults applied (WithDefaults); it changes
// nothing.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("http.addr: %q is not host:port", c.Addr)
	}
	if c.QueryTimeout < 0 || c.MaxBodyBytes < 0 || c.ShutdownTimeout < 0 {
		return errors.New("api: timeouts and limits must not be negative")
	}
	return nil
}

// Deps are the Server's collaborators.
type Deps struct {
	Queries Queries
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the HTTP metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Checks are the readiness checks by name ("kafka", "redis", "view"):
	// each returns nil when its dependency is fine, honours ctx (readyz
	// gives each 2s) and is safe for concurrent use.
	Checks map[string]func(ctx context.Context) error
	// Currency labels every amount.
	Currency string
	// Campaigns serves /v1/campaigns; Activity serves
	// /v1/people/{id}/activity. Nil answers 503 on those routes.
	Campaigns Campaigns
	Activity  ActivityLog
}

// Server is the HTTP server. Build it with New; it is safe for concurrent
// use.
type Server struct {
	cfg     Config
	deps    Deps
	log     zerolog.Logger
	m       *metrics
	handler http.Handler
	// patterns are the mux patterns registered by handle, in order: the
	// routes the OpenAPI document must describe.
	patterns []string
}

// New returns a Server.
func New(cfg Config, deps Deps, log zerolog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Queries == nil {
		return nil, errors.New("api: Deps.Queries is required")
	}
	if deps.Gatherer == nil {
		deps.Gatherer = prometheus.NewRegistry()
	}
	if deps.Currency == "" {
		deps.Currency = "USD"
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, deps: deps, log: log.With().Str("component", "api").Logger(), m: m}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.handle(mux, "GET /healthz", false, s.healthz)
	s.handle(mux, "GET /readyz", false, s.readyz)
	metrics := promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{})
	s.handle(mux, "GET /metrics", false, metrics.ServeHTTP)
	s.handle(mux, "GET /v1/people/{personId}/opportunities", true, s.personOpportunities)
	s.handle(mux, "GET /v1/opportunities/{id}", true, s.opportunity)
	s.handle(mux, "GET /v1/constraints", true, s.constraints)
	s.handle(mux, "POST /v1/people/query", true, s.query)
	s.handle(mux, "GET /people/{personId}", true, s.personPage)
	s.handle(mux, "GET /v1/openapi.json", true, serveOpenAPI)
	s.handle(mux, "GET /v1/people/{personId}/activity", true, s.personActivity)
	s.handle(mux, "PUT /v1/campaigns/{campaignId}", true, s.putCampaign)
	s.handle(mux, "GET /v1/campaigns/{campaignId}", true, s.getCampaign)
	s.handle(mux, "DELETE /v1/campaigns/{campaignId}", true, s.deleteCampaign)
	s.handle(mux, "GET /v1/campaigns", true, s.listCampaigns)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			// No route (404) or wrong method (405): the mux's answer, as JSON.
			start := time.Now()
			jw := &jsonFallback{ResponseWriter: w}
			mux.ServeHTTP(jw, r)
			s.m.requests.WithLabelValues("unmatched", strconv.Itoa(jw.code)).Inc()
			s.m.duration.WithLabelValues("unmatched").Observe(time.Since(start).Seconds())
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// jsonFallback turns the mux's plain-text 404 and 405 into JSON errors.
type jsonFallback struct {
	http.ResponseWriter
	code int
}

func (w *jsonFallback) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	msg := "no such route"
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed"
	}
	w.ResponseWriter.Header().Del("Content-Length")
	writeError(w.ResponseWriter, code, msg)
}

func (w *jsonFallback) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusNotFound)
	}
	return len(b), nil
}

// Run listens on Addr and serves until ctx ends, then shuts down
// gracefully within ShutdownTimeout. It returns nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener (closed on return).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.QueryTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("serving HTTP")
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}
