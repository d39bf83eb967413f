package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/api"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/pipeline"
	"github.com/oppsync/oppsync/pkg/reconcile"
	"github.com/oppsync/oppsync/pkg/retention"
	"github.com/oppsync/oppsync/pkg/source"
	"github.com/oppsync/oppsync/pkg/state"
)

// service is the oppsync process: consumer, pipeline, state, HTTP.
type service struct {
	cfg   *config.Config
	log   zerolog.Logger
	reg   *prometheus.Registry
	rdb   redis.UniversalClient
	store *state.Store
	dec   *decode.Decoder
	pipe  *pipeline.Pipeline
	src   *source.Source
	rc    *reconcile.Reconciler // nil unless salesforce.instance_url is set
	trim  *retention.Trimmer
	// schemaTopic holds the schemas read from schemas.topic; nil unless set.
	schemaTopic *decode.TopicSource
	defs        *campaigns.Store
}

type serviceOptions struct {
	// schemas are extra schema sources (the demo's embedded schemas).
	schemas []decode.SchemaSource
	// observer sees every durable batch (the demo's feed).
	observer pipeline.Observer
}

// newLogger returns the process logger writing to w. Every line passes
// through redactingWriter, so no component logs the credentials of a URL.
func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	w = redactingWriter{w}
	if cfg.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// redactingWriter masks the credentials inside every URL of a log line
// (config.RedactURLs): a component that logs an error quoting the schema
// registry or Salesforce URL does not leak their user or password. zerolog
// writes each line with one Write.
type redactingWriter struct{ w io.Writer }

func (r redactingWriter) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '@') < 0 {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, config.RedactURLs(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// redactedChecks wraps readiness checks so that /readyz, which shows their
// errors, masks the credentials of any URL they quote (the pipeline's last
// error may quote the schema registry's).
func redactedChecks(checks map[string]func(context.Context) error) map[string]func(context.Context) error {
	out := make(map[string]func(context.Context) error, len(checks))
	for name, check := range checks {
		out[name] = func(ctx context.Context) error {
			if err := check(ctx); err != nil {
				return errors.New(config.RedactURLs(err.Error()))
			}
			return nil
		}
	}
	return out
}

func newService(cfg *config.Config, log zerolog.Logger, opts serviceOptions) (*service, error) {
	s := &service{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return nil, err
	}
	s.rdb = rdb
	stc := cfg.Store()
	stc.OnCorrupt = corruptReporter(s.reg, log)
	s.store, err = state.New(stc, rdb)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	if err := s.setCampaigns(); err != nil {
		return nil, err
	}
	s.trim, err = retention.New(cfg.Retention(),
		rdb, s.reg, log.With().Str("component", "retention").Logger())
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	if s.rc, err = newReconciler(cfg, s.store, s.reg, log); err != nil {
		return nil, err
	}
	schemaSources := opts.schemas
	if cfg.Schemas.Topic != "" {
		s.schemaTopic = decode.NewTopicSource(cfg.Schemas.Wait)
		schemaSources = append(append([]decode.SchemaSource(nil), schemaSources...), s.schemaTopic)
	}
	s.dec, err = decode.New(cfg.Decode(), schemaSources...)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	s.pipe = pipeline.New(pipeline.Config{}, s.dec, s.store, s.reg, log)
	if opts.observer != nil {
		s.pipe.SetObserver(opts.observer)
	}
	s.src, err = source.New(cfg.Source(), aheadPipeline{s.pipe}, s.store, s.reg, log)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	s.registerGauges()
	return s, nil
}

func newRedis(c config.Redis) (redis.UniversalClient, error) {
	tlsCfg, err := c.TLS.Client("redis.tls")
	if err != nil {
		return nil, &usageError{"config: " + err.Error()}
	}
	opts := &redis.UniversalOptions{
		Addrs:        c.Addrs,
		Username:     c.Username,
		Password:     c.Password,
		DB:           c.DB,
		PoolSize:     c.PoolSize,
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		WriteTimeout: c.WriteTimeout,
		TLSConfig:    tlsCfg,
	}
	if len(c.Addrs) > 1 {
		return redis.NewClusterClient(opts.Cluster()), nil
	}
	return redis.NewClient(opts.Simple()), nil
}

// registerGauges exposes the gauges read from the decoder and Redis.
func (s *service) registerGauges() {
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oppsync_schemas_cached", Help: "Writer schemas compiled and cached.",
	}, func() float64 { return float64(s.dec.SchemasCached()) }))
	stats := newStatsCache(s.store)
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oppsync_pending_roles", Help: "Contact roles waiting for their unknown opportunity.",
	}, func() float64 { return float64(stats.get().PendingRoles) }))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oppsync_stale_records", Help: "Records marked stale by gap events, awaiting a resync.",
	}, func() float64 { return float64(stats.get().StaleRecords) }))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oppsync_ready", Help: "1 when the instance is ready (Kafka and Redis reachable, consuming).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if s.ready(ctx) != nil {
			return 0
		}
		return 1
	}))
}

// checks are the readiness checks of the consuming side, by name: the
// oppsync_ready gauge runs them, and /readyz runs them with the view's.
func (s *service) checks() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"redis":    s.store.Ping,
		"kafka":    func(context.Context) error { return s.src.Ready() },
		"pipeline": func(context.Context) error { return s.pipe.Ready() },
	}
}

// ready returns the first failing check's error (nil when all pass).
func (s *service) ready(ctx context.Context) error {
	for name, check := range s.checks() {
		if err := check(ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Stages of the service's run group, in stop order (see run).
const (
	stageConsume = iota
	stageBackground
	stageHTTP
	stageView
)

// shutdownGrace is the time the stages still to stop share once
// shutdown_timeout has been spent, so that HTTP still stops and the
// background loops still return before Redis closes after a drain that
// overran.
const shutdownGrace = 5 * time.Second

// run runs the service until ctx ends or one of its actors fails, then
// stops it in order within shutdown_timeout and returns the actor's error,
// if any.
func (s *service) run(ctx context.Context) error {
	// Every long-lived actor runs in g. Stopping cancels the stages one at a
	// time and waits for each before the next, so nothing stops before what
	// depends on it:
	//   1. consume: the source stops fetching, lets the in-flight batches
	//      finish and commits their offsets, then leaves the group;
	//   2. background: the releaser, pruner, reconciler and retention
	//      trimmer, which write Redis next to the consumer;
	//   3. http: the API, which answers /readyz and /metrics during the
	//      drain and queries the view;
	//   4. view: the lazy in-memory view the API's queries read;
	// and last, once every actor has returned, the Redis client closes (the
	// source closes its own Kafka connections when it returns).
	g := newRunGroup(ctx, "consumer", "background loops", "http", "view")
	defer s.rdb.Close()

	// The API's in-memory view of the replica follows the changes stream
	// once the first filter query asks for it.
	vc := s.cfg.View()
	vc.OnError = func(err error) {
		s.log.Warn().Err(err).Str("component", "view").Msg("following the replica")
	}
	lazy, err := newLazyView(s.store.Replica(), vc, func(run func(context.Context) error) bool { return g.spawn(stageView, "view", run) })
	if err != nil {
		return err
	}

	checks := s.checks()
	checks["view"] = lazy.Ready
	srv, err := api.New(api.Config{Addr: s.cfg.HTTP.Addr, AuthToken: s.cfg.HTTP.AuthToken}, api.Deps{
		Queries:    withCatalog{lazy, newCampaignCatalog(lazy, s.cfg.Access.HiddenFields)},
		Campaigns:  s.defs,
		Activity:   activityLog{s.store},
		Gatherer:   s.reg,
		Registerer: s.reg,
		Currency:   s.cfg.Currency.Default,
		Checks:     redactedChecks(checks),
	}, s.log.With().Str("component", "api").Logger())
	if err != nil {
		return &usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", s.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	g.spawn(stageHTTP, "http server", func(ctx context.Context) error {
		err := srv.Serve(ctx, ln)
		if err != nil && ctx.Err() != nil {
			// A request still running at the end of the graceful stop was
			// cut off; the stop itself went on.
			s.log.Warn().Err(err).Str("component", "api").Msg("stopping HTTP")
			return nil
		}
		return err
	})

	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// /healthz answers from here on, and /readyz says why the instance is
	// not ready while Redis cannot be reached yet.
	if s.initStore(g.ctx) != nil {
		return g.wait(timeout, shutdownGrace)
	}

	g.spawn(stageConsume, "consumer", s.src.Run)
	g.spawn(stageBackground, "releaser", func(ctx context.Context) error {
		return s.store.RunReleaser(ctx, 500*time.Millisecond, nil, func(err error) {
			s.log.Warn().Err(err).Msg("releasing pending contact roles")
		})
	})
	g.spawn(stageBackground, "pruner", func(ctx context.Context) error {
		return s.store.RunPruner(ctx, 10*time.Minute, func(err error) {
			s.log.Warn().Err(err).Msg("pruning activity older than activity.retention")
		})
	})
	if s.rc != nil {
		// The reconciler retries its own failures (a Salesforce outage
		// included) and never ends the service.
		g.spawn(stageBackground, "reconciler", s.rc.Run)
	}
	if s.schemaTopic != nil {
		// Schemas published by oppsync bridge: read from the start of the
		// topic, then followed, so a new schema id needs no restart.
		g.spawn(stageBackground, "schemas topic follower", func(ctx context.Context) error {
			return source.FollowSchemas(ctx, s.cfg.Source(), s.cfg.Schemas.Topic, s.schemaTopic,
				s.log.With().Str("component", "schemas").Logger())
		})
	}
	// Stream retention runs on every instance (passes are idempotent).
	g.spawn(stageBackground, "retention trimmer", s.trim.Run)
	s.log.Info().Str("org_id", s.cfg.OrgID).Strs("topics", s.cfg.Kafka.Topics).Str("group_id", s.cfg.Kafka.GroupID).
		Str("http", s.cfg.HTTP.Addr).Msg("oppsync running")

	<-g.ctx.Done()
	if g.failed() == nil {
		s.log.Info().Dur("timeout", timeout).Msg("shutting down: draining in-flight batches")
	}
	if err := g.wait(timeout, shutdownGrace); err != nil {
		return err
	}
	s.log.Info().Msg("stopped cleanly")
	return nil
}

// initStore prepares Redis, retrying until it answers or ctx ends.
func (s *service) initStore(ctx context.Context) error {
	initCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := s.store.Init(initCtx)
	cancel()
	for err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Msg("redis not ready yet; retrying")
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		initCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = s.store.Init(initCtx)
		cancel()
	}
	return ctx.Err()
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("run", "[--config FILE] [--<config.key> VALUE ...]", "oppsync run --config oppsync.yml --log.level debug", stdout).withConfig()
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	svc, err := newService(cfg, log, serviceOptions{})
	if err != nil {
		return err
	}
	return svc.run(ctx)
}

func cmdConfig(args []string, stdout io.Writer) error {
	c := newCommand("config", "[--config FILE] [--<config.key> VALUE ...]", "OPPSYNC_ORG_ID=acme oppsync config --config oppsync.yml", stdout).withConfig()
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	b, err := cfg.Redacted().YAML()
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// aheadPipeline lets the source begin a partition's next batch while Redis
// applies the previous one (source.AheadHandler).
type aheadPipeline struct{ *pipeline.Pipeline }

func (a aheadPipeline) BeginBatch(ctx context.Context, msgs []cdc.Message) source.Pending {
	return a.Pipeline.BeginBatch(ctx, msgs)
}
