package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/bulk"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/schemas"
)

// cmdImport seeds the state from Salesforce Bulk API 2.0 CSV exports:
//
//	oppsync import [--config FILE] --opportunities F[,F2...] --contact-roles F[,F2...]
//	    [--schema FILE] [--emit-triggers] [--max-errors N] [--batch N] [--workers N] [--resume]
//	    [--max-field-bytes N] [--max-record-bytes N] [--metrics-addr HOST:PORT]
//
// --metrics-addr serves the import's metrics on /metrics while it runs.
func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("import", "[--config FILE] --opportunities F[,F2...] --contact-roles F[,F2...] [flags]",
		"oppsync import --config oppsync.yml --opportunities opps-1.csv,opps-2.csv --contact-roles roles.csv", stdout).withConfig()
	icfg := bulk.DefaultConfig()
	c.fs.Var(positive{n: &icfg.MaxErrors, zeroOK: true}, "max-errors", "rejected rows tolerated before the import stops")
	c.fs.Var(positive{n: &icfg.BatchSize}, "batch", "rows per apply call")
	c.fs.Var(positive{n: &icfg.Workers}, "workers", "batches applied concurrently")
	c.fs.Var(positive{n: &icfg.MaxFieldBytes}, "max-field-bytes", "longest CSV field accepted (decoded bytes); a longer one, or an unbalanced quote, stops the import at its line")
	c.fs.Var(positive{n: &icfg.MaxRecordBytes}, "max-record-bytes", "longest CSV record accepted (raw bytes; at least --max-field-bytes)")
	c.fs.BoolVar(&icfg.EmitTriggers, "emit-triggers", false, "write the trigger entries the import causes (default: a quiet import)")
	c.fs.BoolVar(&icfg.Resume, "resume", false, "continue where a previous run with the same files stopped")
	oppFiles := c.fs.String("opportunities", "", "Opportunity export part `files`, comma-separated, in order")
	roleFiles := c.fs.String("contact-roles", "", "OpportunityContactRole export part `files`, comma-separated, in order")
	schemaFile := c.fs.String("schema", "", "the org's Opportunity change-event schema (.avsc) to type custom fields (default: the standard fields)")
	metricsAddr := c.fs.String("metrics-addr", "", "serve the import's metrics on http://`HOST:PORT`/metrics while it runs")
	if err := c.parse(args); err != nil {
		return err
	}
	recordSet := false
	c.fs.Visit(func(f *flag.Flag) { recordSet = recordSet || f.Name == "max-record-bytes" })
	if !recordSet {
		icfg.MaxRecordBytes = max(icfg.MaxRecordBytes, icfg.MaxFieldBytes)
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	opps, roles := splitComma(*oppFiles), splitComma(*roleFiles)
	if len(opps) == 0 && len(roles) == 0 {
		return usagef("import: give --opportunities and/or --contact-roles files")
	}
	oppSchema := schemas.PubSub(cdc.EntityOpportunity)
	if p := *schemaFile; p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return usagef("--schema: %v", err)
		}
		oppSchema = string(b)
	}
	var sources []bulk.Source
	for _, e := range []struct {
		entity, schema string
		files          []string
	}{{cdc.EntityOpportunity, oppSchema, opps}, {cdc.EntityContactRole, schemas.PubSub(cdc.EntityContactRole), roles}} {
		if len(e.files) == 0 {
			continue
		}
		typer, err := typerFor(e.entity, e.schema, cfg.Access.HiddenFields)
		if err != nil {
			return usagef("import: %v", err)
		}
		sources = append(sources, bulk.Source{Typer: typer, Files: e.files})
	}
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	// No group cache: an export's rows come in no useful order, and the
	// cache would only hold memory (measured: no slower without it).
	store, err := newStore(ctx, cfg, rdb, -1)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	im, err := bulk.New(icfg, store, reg, log)
	if err != nil {
		return usagef("import: %v", err)
	}
	if addr := *metricsAddr; addr != "" {
		stop, err := serveMetrics(addr, reg)
		if err != nil {
			return usagef("--metrics-addr: %v", err)
		}
		defer stop()
	}
	stop := reportProgress(stderr, im.Stats)
	start := time.Now()
	sum, err := im.Run(ctx, sources...)
	stop()
	for _, e := range sum.Errors {
		fmt.Fprintln(stderr, e)
	}
	if int(sum.Rejected) > len(sum.Errors) {
		fmt.Fprintf(stderr, "... and %d more rejected rows\n", int(sum.Rejected)-len(sum.Errors))
	}
	el := time.Since(start)
	fmt.Fprintf(stderr, "import: %d rows, %d bytes in %s (%.0f rows/s): %d applied, %d already current, %d skipped, %d rejected, %d triggers\n",
		sum.Rows, sum.BytesRead, el.Round(time.Millisecond), float64(sum.Rows)/el.Seconds(), sum.Applied, sum.Duplicates, sum.Skipped, sum.Rejected, sum.Triggers)
	if err != nil {
		var re *bulk.RowError
		if errors.As(err, &re) && !errors.Is(err, bulk.ErrTooManyErrors) && !errors.Is(err, bulk.ErrTooLong) {
			return usagef("import: %v", err) // a bad header
		}
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// serveMetrics serves reg on http://addr/metrics until the returned
// function is called.
func serveMetrics(addr string, reg *prometheus.Registry) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // ErrServerClosed once stopped
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// typerFor builds the CSV typer of an entity from its writer schema text.
func typerFor(entity, schemaText string, hidden []string) (*bulk.Typer, error) {
	sch, err := decode.ParseSchema(schemaText)
	if err != nil {
		return nil, fmt.Errorf("%s schema: %w", entity, err)
	}
	var h []string
	for _, hf := range hidden {
		if e, f, ok := strings.Cut(hf, "."); ok && e == entity {
			h = append(h, f)
		}
	}
	return bulk.NewTyper(entity, sch.Fields(), h)
}

// newStore opens the state of cfg's org for the operator commands.
// cacheGroups is state.Config.CacheGroups (0: the default).
func newStore(ctx context.Context, cfg *config.Config, rdb redis.UniversalClient, cacheGroups int) (*state.Store, error) {
	stc := cfg.Store()
	stc.CacheGroups = cacheGroups
	store, err := state.New(stc, rdb)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	if err := store.Init(ctx); err != nil {
		return nil, err
	}
	return store, nil
}

// reportProgress prints the import's progress to w every second on a
// terminal (one rewritten line) and every ten seconds otherwise. The
// returned function stops it.
func reportProgress(w io.Writer, stats func() bulk.Stats) func() {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 10 * time.Second
	if tty {
		every = time.Second
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
			}
			s := stats()
			el := time.Since(start).Seconds()
			rate := float64(s.Rows) / el
			eta := "?"
			if s.BytesRead > 0 && s.BytesTotal > s.BytesRead {
				left := el * float64(s.BytesTotal-s.BytesRead) / float64(s.BytesRead)
				eta = time.Duration(left * float64(time.Second)).Round(time.Second).String()
			}
			pct := 0.0
			if s.BytesTotal > 0 {
				pct = 100 * float64(s.BytesRead) / float64(s.BytesTotal)
			}
			line := fmt.Sprintf("import: %5.1f%%  %d rows  %.0f rows/s  %d applied  %d rejected  ETA %s",
				pct, s.Rows, rate, s.Applied, s.Rejected, eta)
			if tty {
				fmt.Fprint(w, "\r\033[K"+line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}()
	return func() { close(done); <-stopped }
}
