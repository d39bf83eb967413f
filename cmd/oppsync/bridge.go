package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/oppsync/oppsync/pkg/bridge"
	"github.com/oppsync/oppsync/pkg/bridge/pubsubpb"
	"github.com/oppsync/oppsync/pkg/config"
)

// maxEventResponse bounds one Subscribe response: up to 100 events of up
// to 1 MB each.
const maxEventResponse = 128 << 20

// cmdBridge runs `oppsync bridge`: Salesforce Pub/Sub API → Kafka (CONTRACT §9).
func cmdBridge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("bridge", "[--config FILE] [--<config.key> VALUE ...]", "oppsync bridge --config bridge.yml", stdout).withConfig()
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr).With().Str("component", "bridge").Logger()
	conn, err := dialPubSub(cfg.Bridge)
	if err != nil {
		return err
	}
	defer conn.Close()
	k, err := bridge.NewKafka(cfg.Source(), cfg.Bridge.MaxInFlight)
	if err != nil {
		return &usageError{err.Error()}
	}
	defer k.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sf := cfg.Salesforce
	b, err := bridge.New(bridge.Config{
		Channels: cfg.Bridge.Channels, MaxInFlight: cfg.Bridge.MaxInFlight, TopicPrefix: cfg.Bridge.TopicPrefix,
		SchemasTopic: cfg.Bridge.SchemasTopic, Start: cfg.Bridge.Start, OnExpiredReplay: cfg.Bridge.OnExpiredReplay,
		InstanceURL: sf.InstanceURL, ClientID: sf.ClientID, ClientSecret: sf.ClientSecret, TokenURL: sf.TokenURL,
		WriteTimeout: cfg.ShutdownTimeout,
	}, pubsubpb.NewPubSubClient(conn), k, &http.Client{Timeout: sf.Timeout}, reg, log)
	if err != nil {
		return &usageError{"config: " + err.Error()}
	}
	return runBridge(ctx, cfg, b, reg, log)
}

// dialPubSub returns a client connection to bridge.endpoint: TLS with the
// system roots or bridge.tls.ca_file, or plaintext.
func dialPubSub(c config.Bridge) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if !c.Plaintext {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS.CAFile != "" {
			pem, err := os.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, &usageError{fmt.Sprintf("config: bridge.tls.ca_file: %v", err)}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, &usageError{"config: bridge.tls.ca_file: no PEM certificates in " + c.TLS.CAFile}
			}
			tc.RootCAs = pool
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(c.Endpoint, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxEventResponse)))
	if err != nil {
		return nil, &usageError{fmt.Sprintf("config: bridge.endpoint: %v", err)}
	}
	return conn, nil
}

// Stages of the bridge's run group, in stop order.
const (
	bridgeStageForward = iota
	bridgeStageHTTP
)

// runBridge runs the bridge and its health and metrics listener until ctx
// ends or the bridge fails; the bridge stops first (its in-flight write
// finishes), then HTTP.
func runBridge(ctx context.Context, cfg *config.Config, b *bridge.Bridge, reg *prometheus.Registry, log zerolog.Logger) error {
	g := newRunGroup(ctx, "bridge", "http")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := b.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": config.RedactURLs(err.Error())})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.spawn(bridgeStageHTTP, "http server", func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
	})
	g.spawn(bridgeStageForward, "bridge", b.Run)
	log.Info().Strs("channels", cfg.Bridge.Channels).Str("endpoint", cfg.Bridge.Endpoint).Str("http", cfg.HTTP.Addr).Msg("oppsync bridge running")
	<-g.ctx.Done()
	if err := g.wait(cfg.ShutdownTimeout, shutdownGrace); err != nil {
		return err
	}
	log.Info().Msg("stopped cleanly")
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
