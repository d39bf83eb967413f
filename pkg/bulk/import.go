package bulk

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// Applier applies events with the state's version-checked scripts. Both
// methods honour ctx and are safe for concurrent use (*state.Store).
type Applier interface {
	ApplyEvents(ctx context.Context, evs []*cdc.Event, opts state.ApplyOptions) (state.BatchResult, error)
	// KnownOpportunities reports which opportunity ids the state knows.
	KnownOpportunities(ctx context.Context, ids []string) ([]bool, error)
}

// Checkpointer stores the import's progress hash. Both methods honour ctx.
type Checkpointer interface {
	Progress(ctx context.Context, name string) (map[string]string, error)
	SaveProgress(ctx context.Context, name string, fields map[string]string, reset bool) error
}

// Store is what an Importer needs of the state.
type Store interface {
	Applier
	Checkpointer
}

// Config tunes an import.
type Config struct {
	// BatchSize is the number of events per ApplyEvents call [2000].
	BatchSize int
	// Workers is the number of batches applied concurrently [4]. Rows are
	// partitioned by opportunity id, so one opportunity's rows stay in order.
	Workers int
	// MaxErrors is how many rejected rows are tolerated; the next one stops
	// the import [0: stop at the first].
	MaxErrors int
	// EmitTriggers writes the trigger entries the import causes (e.g.
	// added_to_opportunity for the contact roles it creates); the default is
	// a quiet import.
	EmitTriggers bool
	// Resume continues where the progress saved in Redis says a previous
	// run with the same files stopped.
	Resume bool
	// CheckpointRows is how many rows are read between checkpoints
	// [16 × BatchSize × Workers].
	CheckpointRows int
	// KeepErrors bounds how many row errors Summary keeps [100].
	KeepErrors int
	// MaxFieldBytes bounds one CSV field (decoded) [1 MiB] and
	// MaxRecordBytes one record (raw) [4 MiB]: a file with a longer one is
	// refused at that field, which is also how an unbalanced quote shows.
	MaxFieldBytes, MaxRecordBytes int
}

// Bounds of Config.MaxFieldBytes and Config.MaxRecordBytes.
const (
	DefaultMaxFieldBytes  = 1 << 20
	DefaultMaxRecordBytes = 4 << 20
	maxBound              = 1 << 30
)

// DefaultConfig returns the defaults in brackets above.
func DefaultConfig() Config {
	return Config{BatchSize: 2000, Workers: 4, KeepErrors: 100,
		MaxFieldBytes: DefaultMaxFieldBytes, MaxRecordBytes: DefaultMaxRecordBytes}
}

// WithDefaults returns c with its zero-valued settings set to their
// defaults.
func (c Config) WithDefaults() Config {
	def := DefaultConfig()
	if c.BatchSize == 0 {
		c.BatchSize = def.BatchSize
	}
	if c.Workers == 0 {
		c.Workers = def.Workers
	}
	if c.KeepErrors == 0 {
		c.KeepErrors = def.KeepErrors
	}
	if c.MaxFieldBytes == 0 {
		c.MaxFieldBytes = def.MaxFieldBytes
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = max(DefaultMaxRecordBytes, c.MaxFieldBytes)
	}
	if c.CheckpointRows <= 0 {
		c.CheckpointRows = 16 * c.BatchSize * c.Workers
	}
	return c
}

// Validate checks c with its defaults applied (WithDefaults); it changes
// nothing.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.BatchSize < 0:
		return fmt.Errorf("batch size must be positive, got %d", c.BatchSize)
	case c.Workers < 0:
		return fmt.Errorf("workers must be positive, got %d", c.Workers)
	case c.MaxErrors < 0:
		return fmt.Errorf("max errors must be >= 0, got %d", c.MaxErrors)
	case c.MaxFieldBytes < 0 || c.MaxFieldBytes > maxBound:
		return fmt.Errorf("max field bytes must be between 1 and %d, got %d", maxBound, c.MaxFieldBytes)
	case c.MaxRecordBytes < c.MaxFieldBytes || c.MaxRecordBytes > maxBound:
		return fmt.Errorf("max record bytes must be between the max field bytes (%d) and %d, got %d", c.MaxFieldBytes, maxBound, c.MaxRecordBytes)
	}
	return nil
}

// Source is the part files of one entity, in order.
type Source struct {
	Typer *Typer
	Files []string
}

// Stats are the live counters of an import (safe to read concurrently).
type Stats struct {
	BytesTotal int64
	BytesRead  int64
	Rows       int64 // rows read (every entity)
	Applied    int64 // record changes written
	Duplicates int64 // rows the state already reflected (or held newer)
	Skipped    int64 // deleted rows and rows before the resume point
	Rejected   int64
	Triggers   int64
}

// Summary is the outcome of an import.
type Summary struct {
	Stats
	Errors []*RowError // the first Config.KeepErrors rejected rows
}

// ErrTooManyErrors stops an import whose rejected rows exceed MaxErrors.
var ErrTooManyErrors = errors.New("too many rejected rows")

// ProgressName is the progress hash of imports: "oppsync:{org}:import".
const ProgressName = "import"

// Importer loads Bulk API 2.0 CSV exports into the state.
type Importer struct {
	cfg   Config
	store Store
	log   zerolog.Logger
	m     *metrics

	bytesTotal, bytesRead, rows, applied, dups, skipped, rejected, triggers atomic.Int64

	mu     sync.Mutex
	errs   []*RowError
	nerr   int
	cancel context.CancelCauseFunc
}

// New returns an Importer. Its metrics go to reg (nil: not registered).
func New(cfg Config, store Store, reg prometheus.Registerer, log zerolog.Logger) (*Importer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Importer{cfg: cfg, store: store, m: m, log: log.With().Str("component", "import").Logger()}, nil
}

// Stats returns the live counters.
func (im *Importer) Stats() Stats {
	return Stats{
		BytesTotal: im.bytesTotal.Load(), BytesRead: im.bytesRead.Load(), Rows: im.rows.Load(),
		Applied: im.applied.Load(), Duplicates: im.dups.Load(), Skipped: im.skipped.Load(),
		Rejected: im.rejected.Load(), Triggers: im.triggers.Load(),
	}
}

// Run imports the sources in order (opportunities before contact roles: a
// role's OpportunityId must be known to the state when it is read). It
// returns the summary and, when the import stopped early, why; an error
// wrapping ErrTooManyErrors means rows were rejected beyond MaxErrors.
func (im *Importer) Run(ctx context.Context, sources ...Source) (Summary, error) {
	sig := signature(sources)
	var total int64
	for _, s := range sources {
		for _, f := range s.Files {
			st, err := os.Stat(f)
			if err != nil {
				return im.summary(), err
			}
			total += st.Size()
		}
	}
	im.bytesTotal.Store(total)
	prog := map[string]string{}
	if im.cfg.Resume {
		p, err := im.store.Progress(ctx, ProgressName)
		if err != nil {
			return im.summary(), err
		}
		if len(p) > 0 && p["files"] != sig {
			return im.summary(), fmt.Errorf("--resume: the saved progress is for other files (%s)", p["files"])
		}
		prog = p
	}
	if len(prog) == 0 {
		if err := im.store.SaveProgress(ctx, ProgressName, map[string]string{"files": sig}, true); err != nil {
			return im.summary(), err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	im.cancel = cancel
	for _, s := range sources {
		if err := im.runSource(ctx, s, prog); err != nil {
			if cause := context.Cause(ctx); cause != nil && errors.Is(cause, ErrTooManyErrors) {
				err = cause
			}
			return im.summary(), err
		}
	}
	if err := im.store.SaveProgress(ctx, ProgressName, map[string]string{"done": "1"}, false); err != nil {
		return im.summary(), err
	}
	return im.summary(), nil
}

func (im *Importer) summary() Summary {
	im.mu.Lock()
	defer im.mu.Unlock()
	return Summary{Stats: im.Stats(), Errors: append([]*RowError(nil), im.errs...)}
}

func signature(sources []Source) string {
	var parts []string
	for _, s := range sources {
		parts = append(parts, s.Typer.Entity()+"="+strings.Join(s.Files, ","))
	}
	return strings.Join(parts, ";")
}

// addBytes counts n bytes of entity's files read.
func (im *Importer) addBytes(entity string, n int64) {
	im.bytesRead.Add(n)
	im.m.bytes(entity).Add(float64(n))
}

// fatal counts the row that stops the import and returns its error.
func (im *Importer) fatal(entity, path string, base int, err error) error {
	im.rejected.Add(1)
	im.m.rows(entity, outcomeRejected).Inc()
	re := &RowError{File: path, Line: 1, Column: 1, Err: err}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		re.Line, re.Column, re.Err = base+pe.Line, pe.Column, pe.Err
	}
	return re
}

// reject records a rejected row; beyond MaxErrors it stops the import.
func (im *Importer) reject(entity string, e *RowError) {
	im.rejected.Add(1)
	im.m.rows(entity, outcomeRejected).Inc()
	im.mu.Lock()
	im.nerr++
	if len(im.errs) < im.cfg.KeepErrors {
		im.errs = append(im.errs, e)
	}
	over := im.nerr > im.cfg.MaxErrors
	im.mu.Unlock()
	if over {
		im.cancel(fmt.Errorf("%w (%d, --max-errors %d): %w", ErrTooManyErrors, im.nerr, im.cfg.MaxErrors, e))
	}
}

// item is one typed row on its way to a worker, or a checkpoint marker.
type item struct {
	ev   *cdc.Event
	file string
	line int
	col  int // OpportunityId column of a contact role (1-based byte column)
	mark *mark
}

// mark is a checkpoint: when every worker has applied what it received
// before the mark, the position is durable.
type mark struct {
	left   atomic.Int32
	done   chan struct{}
	fields map[string]string
}

func (m *mark) ack() {
	if m.left.Add(-1) == 0 {
		close(m.done)
	}
}

func (im *Importer) runSource(ctx context.Context, src Source, prog map[string]string) error {
	entity := src.Typer.Entity()
	if prog[entity+".done"] == "1" {
		for _, f := range src.Files {
			if st, err := os.Stat(f); err == nil {
				im.bytesRead.Add(st.Size())
			}
		}
		im.log.Info().Str("entity", entity).Msg("already imported; skipping")
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	chans := make([]chan item, im.cfg.Workers)
	for i := range chans {
		chans[i] = make(chan item, im.cfg.BatchSize)
		ch := chans[i]
		g.Go(func() error { return im.work(gctx, entity, ch) })
	}
	marks := make(chan *mark, 64)
	g.Go(func() error {
		for m := range marks {
			select {
			case <-m.done:
			case <-gctx.Done():
				return nil
			}
			if err := im.store.SaveProgress(gctx, ProgressName, m.fields, false); err != nil {
				return err
			}
		}
		return nil
	})
	g.Go(func() error {
		defer func() {
			for _, ch := range chans {
				close(ch)
			}
			close(marks)
		}()
		sendMark := func(fields map[string]string) error {
			m := &mark{done: make(chan struct{}), fields: fields}
			m.left.Store(int32(len(chans)))
			select {
			case marks <- m:
			case <-gctx.Done():
				return nil
			}
			for _, ch := range chans {
				select {
				case ch <- item{mark: m}:
				case <-gctx.Done():
					return nil
				}
			}
			return nil
		}
		startFile, _ := strconv.Atoi(prog[entity+".file"])
		for i, f := range src.Files {
			if i < startFile {
				if st, err := os.Stat(f); err == nil {
					im.bytesRead.Add(st.Size())
				}
				continue
			}
			var off int64
			var line int
			if i == startFile && prog[entity+".file"] != "" {
				off, _ = strconv.ParseInt(prog[entity+".offset"], 10, 64)
				line, _ = strconv.Atoi(prog[entity+".line"])
			}
			err := im.readFile(gctx, src.Typer, f, off, line, chans, func(offset int64, line int) error {
				return sendMark(map[string]string{
					entity + ".file": strconv.Itoa(i), entity + ".offset": strconv.FormatInt(offset, 10),
					entity + ".line": strconv.Itoa(line),
				})
			})
			if err != nil {
				return err
			}
		}
		return sendMark(map[string]string{entity + ".done": "1"})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// readFile streams one CSV file from offset (a record boundary; line is the
// number of lines before it) into the workers, calling checkpoint every
// CheckpointRows rows and at the end of the file.
func (im *Importer) readFile(ctx context.Context, typer *Typer, path string, offset int64, line int,
	chans []chan item, checkpoint func(offset int64, line int) error) error {
	entity := typer.Entity()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cr := newCSVReader(f, im.cfg.MaxFieldBytes, im.cfg.MaxRecordBytes)
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty part
		}
		re := &RowError{File: path, Line: 1, Column: 1, Err: fmt.Errorf("reading the header: %w", err)}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			re.Line, re.Column, re.Err = pe.Line, pe.Column, fmt.Errorf("reading the header: %w", pe.Err)
		}
		return re
	}
	h, bad, err := typer.Bind(header)
	if err != nil {
		line, col := 1, 1
		if bad >= 0 {
			line, col = cr.FieldPos(bad)
		}
		return &RowError{File: path, Line: line, Column: col, Err: err}
	}
	// base and start are the lines and bytes before the reader's first
	// byte; last is the number of lines before the next record (the line
	// count a checkpoint records).
	base, last := 0, 0
	var start int64
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return fmt.Errorf("seeking %s: %w", path, err)
		}
		cr = newCSVReader(f, im.cfg.MaxFieldBytes, im.cfg.MaxRecordBytes)
		base, start, last = line, offset, line
	} else {
		offset = cr.InputOffset()
		last = cr.LinesRead()
	}
	im.addBytes(entity, offset)
	sinceMark := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		rec, err := cr.Read()
		now := start + cr.InputOffset()
		im.addBytes(entity, now-offset)
		offset = now
		if errors.Is(err, io.EOF) {
			break
		}
		im.rows.Add(1)
		if err != nil {
			if errors.Is(err, ErrTooLong) {
				// Where the record ends is not worth finding out: an
				// unbalanced quote would have it at the end of the file.
				return im.fatal(entity, path, base, err)
			}
			var pe *csv.ParseError
			re := &RowError{File: path, Err: err}
			if errors.As(err, &pe) {
				re.Line, re.Column, re.Err = base+pe.Line, pe.Column, pe.Err
			}
			im.reject(entity, re)
			continue
		}
		last = base + cr.LinesRead()
		if len(rec) != len(h.cols) {
			l, _ := cr.FieldPos(0)
			im.reject(entity, &RowError{File: path, Line: base + l, Column: 1, Err: csv.ErrFieldCount})
			continue
		}
		ev, bad, err := typer.Row(h, rec)
		if err != nil {
			l, c := cr.FieldPos(max(bad, 0))
			re := &RowError{File: path, Line: base + l, Column: c, Err: err}
			if bad >= 0 {
				re.Field = h.cols[bad].name
			}
			im.reject(entity, re)
			continue
		}
		if ev == nil {
			im.skipped.Add(1)
			im.m.rows(entity, outcomeSkipped).Inc()
			continue
		}
		it := item{ev: ev, file: path}
		it.line, _ = cr.FieldPos(0)
		it.line += base
		key := ev.RecordIDs[0]
		if h.oppCol >= 0 {
			l, c := cr.FieldPos(h.oppCol)
			it.line, it.col = base+l, c
			key = rec[h.oppCol]
		}
		select {
		case chans[fnv64(key)%uint64(len(chans))] <- it:
		case <-ctx.Done():
			return nil
		}
		if sinceMark++; sinceMark >= im.cfg.CheckpointRows {
			sinceMark = 0
			if err := checkpoint(offset, last); err != nil {
				return err
			}
		}
	}
	return checkpoint(offset, last)
}

// work batches the rows of its partition and applies them.
func (im *Importer) work(ctx context.Context, entity string, in <-chan item) error {
	batch := make([]item, 0, im.cfg.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		defer func() { batch = batch[:0] }()
		return im.apply(ctx, entity, batch)
	}
	for it := range in {
		if it.mark != nil {
			if err := flush(); err != nil {
				return err
			}
			it.mark.ack()
			continue
		}
		batch = append(batch, it)
		if len(batch) >= im.cfg.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// apply checks the contact roles' opportunities, then applies the batch.
func (im *Importer) apply(ctx context.Context, entity string, batch []item) error {
	evs := make([]*cdc.Event, 0, len(batch))
	if entity == cdc.EntityContactRole {
		ids := make([]string, len(batch))
		for i, it := range batch {
			f, _ := it.ev.Field("OpportunityId")
			ids[i] = f.Value.Str
		}
		known, err := im.store.KnownOpportunities(ctx, ids)
		if err != nil {
			return err
		}
		for i, it := range batch {
			if !known[i] {
				im.reject(entity, &RowError{File: it.file, Line: it.line, Column: it.col, Field: "OpportunityId",
					Err: fmt.Errorf("%w %s: neither imported nor in the state", ErrUnknownRef, ids[i])})
				continue
			}
			evs = append(evs, it.ev)
		}
	} else {
		for _, it := range batch {
			evs = append(evs, it.ev)
		}
	}
	if len(evs) == 0 {
		return nil
	}
	res, err := im.store.ApplyEvents(ctx, evs, state.ApplyOptions{Quiet: !im.cfg.EmitTriggers})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("applying %d %s rows: %w", len(evs), entity, err)
	}
	im.applied.Add(int64(res.Applied))
	im.dups.Add(int64(res.Duplicates))
	im.m.rows(entity, outcomeApplied).Add(float64(res.Applied))
	im.m.rows(entity, outcomeDuplicate).Add(float64(res.Duplicates))
	for _, n := range res.Triggers {
		im.triggers.Add(int64(n))
	}
	return nil
}
