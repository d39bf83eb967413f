package reconcile

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// Store is what reconciliation needs of the state (*state.Store). Every
// method honours ctx and is safe for concurrent use.
type Store interface {
	ApplyEvents(ctx context.Context, evs []*cdc.Event, opts state.ApplyOptions) (state.BatchResult, error)
	StaleIDs(ctx context.Context, entity string, max int) ([]string, error)
	StaleMarks(ctx context.Context, entity string, ids []string) (map[string]string, error)
	ClearStale(ctx context.Context, entity string, marks map[string]string) (int, error)
	ResyncNotices(ctx context.Context, after string, count int64) ([]state.ResyncNotice, error)
	Progress(ctx context.Context, name string) (map[string]string, error)
	SaveProgress(ctx context.Context, name string, fields map[string]string, reset bool) error
	ClearProgress(ctx context.Context, name, field, expect string) (bool, error)
	SpendProgress(ctx context.Context, name, prefix, period string, n, max int64) (int64, bool, error)
}

// Config configures reconciliation.
type Config struct {
	InstanceURL  string // https://<domain>.my.salesforce.com
	APIVersion   string // "61.0"
	ClientID     string
	ClientSecret string
	TokenURL     string // [<InstanceURL>/services/oauth2/token]

	// RateLimit is the sustained requests per second [10]; Burst the
	// requests allowed at once [RateLimit].
	RateLimit float64
	Burst     int
	// MaxRetries bounds the retries of one request [6]; the backoff doubles
	// from MinBackoff [500ms] up to MaxBackoff [30s].
	MaxRetries             int
	MinBackoff, MaxBackoff time.Duration
	// Interval is how often Run looks for stale records [1m].
	Interval time.Duration
	// IDsPerQuery is how many ids one SOQL query names [200].
	IDsPerQuery int
	// Fields lists the writer-schema fields of each entity: what is read
	// and how it is typed. OpportunityContactRole also reads IsPrimary.
	Fields map[string][]cdc.FieldInfo
	// SkipOverflowResync turns off the whole-entity re-read after
	// GAP_OVERFLOW (config salesforce.overflow_resync=false): the entity
	// stays marked for resync and its notice stays in the resync stream.
	SkipOverflowResync bool
	// MaxCallsPerDay bounds the REST data calls (sobject and query, retries
	// included) of all instances of the org per UTC day; 0 means no bound.
	// Past it, stale records stay stale and entities stay marked until the
	// next day (config salesforce.max_api_calls_per_day).
	MaxCallsPerDay int64
	// Now is the wall clock (tests set it) [time.Now].
	Now func() time.Time
}

// WithDefaults returns c with its zero-valued settings set to their
// defaults.
func (c Config) WithDefaults() Config {
	c.InstanceURL = strings.TrimRight(c.InstanceURL, "/")
	if c.APIVersion == "" {
		c.APIVersion = "61.0"
	}
	if c.TokenURL == "" {
		c.TokenURL = c.InstanceURL + "/services/oauth2/token"
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 10
	}
	if c.Burst <= 0 {
		c.Burst = max(1, int(c.RateLimit))
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 6
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.IDsPerQuery <= 0 {
		c.IDsPerQuery = 200
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
	if c.InstanceURL == "" || c.ClientID == "" || c.ClientSecret == "" {
		return errors.New("reconcile: instance URL, client id and client secret are required")
	}
	if _, err := instanceURL(c.InstanceURL, ""); err != nil {
		return fmt.Errorf("reconcile: instance URL: %w", err)
	}
	if !apiVersion.MatchString(c.APIVersion) {
		return fmt.Errorf("reconcile: API version %s must look like 61.0", quote(c.APIVersion))
	}
	if u, err := url.Parse(c.TokenURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("reconcile: the token URL must be an http(s) URL with a host")
	}
	if c.MaxCallsPerDay < 0 {
		return fmt.Errorf("reconcile: max calls per day must be >= 0, got %d", c.MaxCallsPerDay)
	}
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		if len(c.Fields[e]) == 0 {
			return fmt.Errorf("reconcile: no schema fields for %s", e)
		}
	}
	return nil
}

// Result counts what a reconciliation did.
type Result struct {
	Read     int // records re-read
	Deleted  int // records gone in Salesforce (DELETE events)
	Applied  int
	Triggers int
}

func (r *Result) add(o Result) {
	r.Read += o.Read
	r.Deleted += o.Deleted
	r.Applied += o.Applied
	r.Triggers += o.Triggers
}

var apiVersion = regexp.MustCompile(`^[0-9]+\.[0-9]$`)

// ProgressName is the hash "oppsync:{org}:reconcile" holding the resync
// stream cursor (resync_cursor), the entities marked for a whole re-read
// (entity_resync:<Entity> = the overflow's commit time, ms) and the REST
// calls of the day (api_calls:<YYYY-MM-DD>).
const ProgressName = "reconcile"

// Fields of the progress hash.
const (
	fieldCursor       = "resync_cursor"
	fieldEntityPrefix = "entity_resync:"
	fieldCallsPrefix  = "api_calls:"
)

// BudgetError says the daily REST call budget is spent.
type BudgetError struct {
	Used, Max int64
	Need      int64 // calls a whole-entity re-read still needs (0 = one call refused)
}

func (e *BudgetError) Error() string {
	if e.Need > 0 {
		return fmt.Sprintf("the re-read needs about %d more Salesforce API calls but only %d of %d are left today (salesforce.max_api_calls_per_day)",
			e.Need, max(0, e.Max-e.Used), e.Max)
	}
	return fmt.Sprintf("the daily Salesforce API budget is spent: %d of %d calls today (salesforce.max_api_calls_per_day)", e.Used, e.Max)
}

// Reconciler re-reads records from Salesforce and applies them as SNAPSHOT
// (or DELETE) events.
type Reconciler struct {
	cfg    Config
	store  Store
	c      *client
	log    zerolog.Logger
	m      *metrics
	fields map[string][]cdc.FieldInfo
	ids    map[string]string // Event.SchemaID per entity

	warnMu sync.Mutex
	warned map[string]bool // warnings given once (per entity mark or day)
}

// New returns a Reconciler; hc nil means http.DefaultClient. An
// *http.Client is used through a copy that follows redirects only to the
// origin of the request (Go's own policy keeps the Authorization header on
// a redirect to another port of the same host, to a subdomain, and on a
// downgrade to http); another Doer must not follow redirects to other
// hosts. Metrics are registered on reg (nil: none).
func New(cfg Config, store Store, hc Doer, reg prometheus.Registerer, log zerolog.Logger) (*Reconciler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	if h, ok := hc.(*http.Client); ok {
		hc = sameOrigin(h)
	}
	base, _ := instanceURL(cfg.InstanceURL, "") // checked by Validate
	r := &Reconciler{cfg: cfg, store: store, log: log.With().Str("component", "reconcile").Logger(),
		m:      newMetrics(reg),
		fields: map[string][]cdc.FieldInfo{}, ids: map[string]string{}, warned: map[string]bool{}}
	r.c = &client{cfg: cfg, base: base, instance: base, http: hc, lim: newBucket(cfg.RateLimit, cfg.Burst), metrics: r.m, spend: r.spendCall}
	for e, fs := range cfg.Fields {
		fs = append([]cdc.FieldInfo(nil), fs...)
		if e == cdc.EntityContactRole && !hasField(fs, "IsPrimary") {
			fs = append(fs, cdc.FieldInfo{Name: "IsPrimary", Kind: cdc.KindBool, SalesforceType: "Boolean"})
		}
		r.fields[e] = fs
		r.ids[e] = "rest:" + e
	}
	return r, nil
}

func hasField(fs []cdc.FieldInfo, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Run reconciles every Interval until ctx ends: GAP_OVERFLOW notices in the
// resync stream mark their entity for a whole re-read, marked entities are
// re-read (unless switched off or over budget), then the stale records.
// Failures are logged and retried at the next interval; Run returns nil on
// cancellation.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		res, err := r.pass(ctx)
		var be *BudgetError
		switch {
		case err != nil && ctx.Err() != nil:
		case errors.As(err, &be):
			r.warnOnce("budget:"+r.day(), func(e *zerolog.Event) {
				e.Err(err).Msg("Salesforce API budget spent; stale records stay stale until tomorrow (UTC) — raise salesforce.max_api_calls_per_day to go on")
			})
		case err != nil:
			r.log.Warn().Err(err).Msg("reconciliation failed; retrying at the next interval")
		}
		if res.Read > 0 || res.Deleted > 0 {
			r.log.Info().Int("read", res.Read).Int("deleted", res.Deleted).Int("applied", res.Applied).
				Int("triggers", res.Triggers).Msg("reconciled")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pass follows the resync stream from the saved cursor, marking entities
// for a whole re-read, re-reads the marked entities, then the stale
// records.
func (r *Reconciler) pass(ctx context.Context) (Result, error) {
	var total Result
	prog, err := r.store.Progress(ctx, ProgressName)
	if err != nil {
		return total, r.fail(err)
	}
	cursor := prog[fieldCursor]
	versions := map[string]int64{}
	for {
		notes, err := r.store.ResyncNotices(ctx, cursor, 1000)
		if err != nil {
			return total, r.fail(err)
		}
		if len(notes) == 0 {
			break
		}
		marks := map[string]string{}
		for _, n := range notes {
			if n.ChangeType == cdc.GapOverflow || wildcard(n.RecordIDs) {
				if _, ok := r.fields[n.Entity]; !ok {
					r.log.Warn().Str("entity", quote(n.Entity)).Str("notice", n.StreamID).Msg("resync notice for an unknown entity; skipped")
					continue
				}
				// The newest overflow is the floor of the re-read's versions;
				// a newer one keeps the entity marked (see Entity).
				f := fieldEntityPrefix + n.Entity
				old, _ := strconv.ParseInt(cmp.Or(marks[f], prog[f]), 10, 64)
				if _, marked := prog[f]; !marked || n.CommitTimestamp > old {
					marks[f] = strconv.FormatInt(max(old, n.CommitTimestamp), 10)
				}
				continue
			}
			for _, id := range n.RecordIDs {
				versions[id] = max(versions[id], n.CommitTimestamp)
			}
		}
		cursor = notes[len(notes)-1].StreamID
		marks[fieldCursor] = cursor
		if err := r.store.SaveProgress(ctx, ProgressName, marks, false); err != nil {
			return total, r.fail(err)
		}
		for f, v := range marks {
			prog[f] = v
		}
	}
	var over error // a budget error: the stale records may still fit
	for _, e := range entities {
		since, marked := prog[fieldEntityPrefix+e]
		if !marked {
			r.m.entityPending.WithLabelValues(e).Set(0)
			continue
		}
		r.m.entityPending.WithLabelValues(e).Set(1)
		if r.cfg.SkipOverflowResync {
			r.warnOnce("overflow:"+e+":"+since, func(ev *zerolog.Event) {
				ev.Str("entity", e).Msg("GAP_OVERFLOW: the whole-entity re-read is off, the entity stays marked for resync — " +
					"set salesforce.overflow_resync=true or run `oppsync resync --entity " + e + "`")
			})
			continue
		}
		res, err := r.Entity(ctx, e, 0)
		total.add(res)
		var be *BudgetError
		switch {
		case errors.As(err, &be):
			r.log.Warn().Err(err).Str("entity", e).Msg("GAP_OVERFLOW: the whole-entity re-read does not fit in today's API budget; the entity stays marked for resync")
			over = err
		case err != nil:
			return total, err
		}
	}
	res, err := r.stale(ctx, versions)
	total.add(res)
	return total, cmp.Or(err, over)
}

// warnOnce logs a warning once per key in the life of the process.
func (r *Reconciler) warnOnce(key string, msg func(*zerolog.Event)) {
	r.warnMu.Lock()
	seen := r.warned[key]
	r.warned[key] = true
	r.warnMu.Unlock()
	if !seen {
		msg(r.log.Warn())
	}
}

// counted marks an error fail has counted.
type counted struct{ error }

func (c counted) Unwrap() error { return c.error }

// fail counts err by reason, once, and returns it.
func (r *Reconciler) fail(err error) error {
	var c counted
	if err == nil || errors.Is(err, context.Canceled) || errors.As(err, &c) {
		return err
	}
	var (
		be *BudgetError
		ae *AnswerError
		se *salesforceError
		st *stateError
	)
	switch {
	case errors.As(err, &st):
		r.m.errors.WithLabelValues(reasonState).Inc()
	case errors.As(err, &be):
		r.m.errors.WithLabelValues(reasonBudget).Inc()
	case errors.As(err, &ae):
		r.m.errors.WithLabelValues(reasonInvalidAnswer).Inc()
	case errors.As(err, &se):
		r.m.errors.WithLabelValues(reasonSalesforce).Inc()
	default:
		r.m.errors.WithLabelValues(reasonState).Inc()
	}
	return counted{err}
}

func (r *Reconciler) day() string { return r.cfg.Now().UTC().Format("2006-01-02") }

// spendCall counts one REST data call against the daily budget, shared by
// every instance of the org through Redis.
func (r *Reconciler) spendCall(ctx context.Context) error {
	used, ok, err := r.store.SpendProgress(ctx, ProgressName, fieldCallsPrefix, r.day(), 1, r.cfg.MaxCallsPerDay)
	if err != nil {
		return err
	}
	r.observeBudget(used)
	if !ok {
		return &BudgetError{Used: used, Max: r.cfg.MaxCallsPerDay}
	}
	return nil
}

func (r *Reconciler) observeBudget(used int64) {
	r.m.callsUsed.Set(float64(used))
	if r.cfg.MaxCallsPerDay > 0 {
		r.m.callsLeft.Set(float64(max(0, r.cfg.MaxCallsPerDay-used)))
	}
}

// callsLeft returns the REST calls left today (-1: no bound).
func (r *Reconciler) callsLeft(ctx context.Context) (int64, error) {
	if r.cfg.MaxCallsPerDay <= 0 {
		return -1, nil
	}
	prog, err := r.store.Progress(ctx, ProgressName)
	if err != nil {
		return 0, err
	}
	used, _ := strconv.ParseInt(prog[fieldCallsPrefix+r.day()], 10, 64)
	r.observeBudget(used)
	return max(0, r.cfg.MaxCallsPerDay-used), nil
}

func wildcard(ids []string) bool {
	for _, id := range ids {
		if strings.Contains(id, "*") || id == cdc.OverflowRecordID {
			return true
		}
	}
	return len(ids) == 0
}

// Stale reconciles every record flagged stale now, taking the gap versions
// from the resync stream.
func (r *Reconciler) Stale(ctx context.Context) (Result, error) {
	versions := map[string]int64{}
	cursor := ""
	for {
		notes, err := r.store.ResyncNotices(ctx, cursor, 1000)
		if err != nil {
			return Result{}, r.fail(err)
		}
		if len(notes) == 0 {
			break
		}
		for _, n := range notes {
			for _, id := range n.RecordIDs {
				versions[id] = max(versions[id], n.CommitTimestamp)
			}
		}
		cursor = notes[len(notes)-1].StreamID
	}
	return r.stale(ctx, versions)
}

func (r *Reconciler) stale(ctx context.Context, versions map[string]int64) (Result, error) {
	var total Result
	for _, e := range entities {
		failed := map[string]bool{}
		for {
			ids, err := r.store.StaleIDs(ctx, e, r.cfg.IDsPerQuery+len(failed))
			if err != nil {
				return total, r.fail(err)
			}
			var todo []string
			for _, id := range ids {
				if !failed[id] {
					todo = append(todo, id)
				}
			}
			if len(todo) == 0 {
				break
			}
			todo = todo[:min(len(todo), r.cfg.IDsPerQuery)]
			res, err := r.reconcileIDs(ctx, e, todo, versions)
			total.add(res)
			if err != nil {
				var (
					ae  *APIError
					ans *AnswerError
				)
				permanentAnswer := errors.As(err, &ans) || errors.As(err, &ae) && !retryable(err)
				if !permanentAnswer || errors.As(err, new(*BudgetError)) {
					return total, err
				}
				// A permanent answer for these ids: leave them stale for an
				// operator and go on with the others.
				r.log.Warn().Err(err).Str("entity", e).Int("records", len(todo)).Msg("cannot re-read records; they stay stale")
				for _, id := range todo {
					failed[id] = true
				}
			}
		}
	}
	return total, nil
}

// IDs reconciles the named records of entity now.
func (r *Reconciler) IDs(ctx context.Context, entity string, ids []string) (Result, error) {
	if _, ok := r.fields[entity]; !ok {
		return Result{}, fmt.Errorf("unknown entity %q", entity)
	}
	var total Result
	for len(ids) > 0 {
		n := min(len(ids), r.cfg.IDsPerQuery)
		res, err := r.reconcileIDs(ctx, entity, ids[:n], nil)
		total.add(res)
		if err != nil {
			return total, err
		}
		ids = ids[n:]
	}
	return total, nil
}

// reconcileIDs re-reads a few records (one sobject GET for a single id, a
// queryAll SOQL for several), applies them and clears their stale flags
// unless a newer gap came meanwhile.
func (r *Reconciler) reconcileIDs(ctx context.Context, entity string, ids []string, versions map[string]int64) (Result, error) {
	for _, id := range ids {
		if !cdc.ValidID(id) {
			return Result{}, fmt.Errorf("%s is not a Salesforce id", quote(id))
		}
	}
	// The markers before the request: a gap applied after this read keeps
	// its record stale.
	marks, err := r.store.StaleMarks(ctx, entity, ids)
	if err != nil {
		return Result{}, r.fail(err)
	}
	found := map[string]record{}
	if len(ids) == 1 {
		var rec record
		err := r.c.get(ctx, kindSObject, r.path("sobjects/"+entity+"/"+ids[0]+"?fields="+url.QueryEscape(r.selectList(entity))), &rec)
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		case err != nil:
			return Result{}, r.fail(err)
		default:
			if id, ok := rec["Id"]; ok && !sameID(fmt.Sprint(id), ids[0]) {
				return Result{}, r.fail(&AnswerError{Kind: kindSObject, Err: fmt.Errorf("record Id %s is not the requested %s", quote(fmt.Sprint(id)), ids[0])})
			}
			rec["Id"] = ids[0]
			found[ids[0]] = rec
		}
	} else {
		q := "SELECT " + r.selectList(entity) + ", IsDeleted FROM " + entity + " WHERE Id IN (" + soqlIDs(ids) + ")"
		err := r.query(ctx, "queryAll", q, nil, func(rec record) error {
			id, _ := rec["Id"].(string)
			if !cdc.ValidID(id) {
				return &AnswerError{Kind: kindQuery, Err: fmt.Errorf("record Id %s is not a Salesforce id", quote(fmt.Sprint(rec["Id"])))}
			}
			found[id] = rec
			return nil
		})
		if err != nil {
			return Result{}, r.fail(err)
		}
	}
	evs := make([]*cdc.Event, 0, len(ids))
	var res Result
	for _, id := range ids {
		var gap int64
		if versions != nil {
			gap = versions[id]
		}
		rec, ok := found[id]
		if !ok {
			// Gone for good (hard-deleted or purged from the recycle bin).
			evs = append(evs, r.deleteEvent(entity, id, max(gap, r.cfg.Now().UnixMilli())))
			res.Deleted++
			continue
		}
		ev, err := r.toEvent(entity, rec, gap)
		if err != nil {
			return Result{}, r.fail(&AnswerError{Kind: kindQuery, Err: fmt.Errorf("%s %s: %w", entity, id, err)})
		}
		if ev.ChangeType == cdc.Delete {
			res.Deleted++
		} else {
			res.Read++
		}
		evs = append(evs, ev)
	}
	out, err := r.apply(ctx, entity, evs, marks)
	if err != nil {
		return out, err
	}
	r.count(entity, res)
	res.add(out)
	return res, nil
}

// sameID reports whether an answer's record id is the requested one (a
// 15-character id is the start of its 18-character form).
func sameID(got, want string) bool {
	return got == want || len(want) == 15 && len(got) == 18 && strings.HasPrefix(got, want)
}

func (r *Reconciler) count(entity string, res Result) {
	r.m.records.WithLabelValues(entity, "read").Add(float64(res.Read))
	r.m.records.WithLabelValues(entity, "deleted").Add(float64(res.Deleted))
}

// apply applies re-read records and clears the stale flags whose marker
// (read before the re-read) is still the current one.
func (r *Reconciler) apply(ctx context.Context, entity string, evs []*cdc.Event, marks map[string]string) (Result, error) {
	if len(evs) == 0 {
		return Result{}, nil
	}
	br, err := r.store.ApplyEvents(ctx, evs, state.ApplyOptions{StaleMarks: map[string]map[string]string{entity: marks}})
	if err != nil {
		return Result{}, r.fail(fmt.Errorf("applying %d re-read %s records: %w", len(evs), entity, err))
	}
	res := Result{Applied: br.Applied}
	for _, n := range br.Triggers {
		res.Triggers += n
	}
	if _, err := r.store.ClearStale(ctx, entity, marks); err != nil {
		return res, r.fail(err)
	}
	return res, nil
}

// Entity re-reads every record of entity, deleted ones included (after a
// GAP_OVERFLOW): a paged queryAll applied page by page. since is the
// minimum version given (0: the commit time of the overflow the entity is
// marked for, if any). When it succeeds, the entity's mark is cleared unless
// a newer overflow came meanwhile. With a daily budget, a re-read that
// would not fit in what is left stops after its first page.
func (r *Reconciler) Entity(ctx context.Context, entity string, since int64) (Result, error) {
	if _, ok := r.fields[entity]; !ok {
		return Result{}, fmt.Errorf("unknown entity %s", quote(entity))
	}
	prog, err := r.store.Progress(ctx, ProgressName)
	if err != nil {
		return Result{}, r.fail(err)
	}
	mark, marked := prog[fieldEntityPrefix+entity]
	if since == 0 {
		since, _ = strconv.ParseInt(mark, 10, 64)
	}
	stale, err := r.store.StaleMarks(ctx, entity, nil)
	if err != nil {
		return Result{}, r.fail(err)
	}
	var total Result
	var evs []*cdc.Event
	marks := map[string]string{}
	flush := func() error {
		res, err := r.apply(ctx, entity, evs, marks)
		total.add(res)
		evs, marks = evs[:0], map[string]string{}
		return err
	}
	budget := func(size, page int) error {
		left, err := r.callsLeft(ctx)
		if err != nil || left < 0 || page == 0 || size <= page {
			return err
		}
		if need := int64((size - page + page - 1) / page); need > left {
			return &BudgetError{Used: r.cfg.MaxCallsPerDay - left, Max: r.cfg.MaxCallsPerDay, Need: need}
		}
		return nil
	}
	q := "SELECT " + r.selectList(entity) + ", IsDeleted FROM " + entity
	var read Result
	err = r.query(ctx, "queryAll", q, budget, func(rec record) error {
		ev, err := r.toEvent(entity, rec, since)
		if err != nil {
			return &AnswerError{Kind: kindQuery, Err: fmt.Errorf("%s %s: %w", entity, quote(fmt.Sprint(rec["Id"])), err)}
		}
		if ev.ChangeType == cdc.Delete {
			read.Deleted++
		} else {
			read.Read++
		}
		evs = append(evs, ev)
		marks[ev.RecordIDs[0]] = stale[ev.RecordIDs[0]]
		if len(evs) >= 2000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	r.count(entity, read)
	total.add(read)
	if err != nil {
		return total, r.fail(err)
	}
	if marked {
		if _, err := r.store.ClearProgress(ctx, ProgressName, fieldEntityPrefix+entity, mark); err != nil {
			return total, r.fail(err)
		}
		r.m.entityPending.WithLabelValues(entity).Set(0)
	}
	return total, nil
}

func (r *Reconciler) path(rest string) string {
	return "/services/data/v" + r.cfg.APIVersion + "/" + rest
}

// query runs a SOQL query (resource "query" or "queryAll"), following
// nextRecordsUrl, and calls fn for each record. first, if set, sees the
// first page's totalSize and record count before more pages are fetched.
func (r *Reconciler) query(ctx context.Context, resource, soql string, first func(size, page int) error, fn func(record) error) error {
	next := r.path(resource + "?q=" + url.QueryEscape(soql))
	for pages := 0; next != ""; pages++ {
		var page struct {
			TotalSize      int               `json:"totalSize"`
			Done           bool              `json:"done"`
			NextRecordsURL string            `json:"nextRecordsUrl"`
			Records        []json.RawMessage `json:"records"`
		}
		if err := r.c.get(ctx, kindQuery, next, &page); err != nil {
			return err
		}
		for _, raw := range page.Records {
			rec, err := decodeRecord(raw)
			if err != nil {
				return &AnswerError{Kind: kindQuery, Err: err}
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if page.Done {
			return nil
		}
		if page.NextRecordsURL == "" {
			return &AnswerError{Kind: kindQuery, Err: errors.New("a page with done=false has no nextRecordsUrl")}
		}
		if pages == 0 && first != nil {
			if err := first(page.TotalSize, len(page.Records)); err != nil {
				return err
			}
		}
		next = page.NextRecordsURL
	}
	return nil
}

// selectList is the SOQL field list: Id, SystemModstamp and the schema's
// fields (a compound field once, by its parent name).
func (r *Reconciler) selectList(entity string) string {
	names := []string{"Id", "SystemModstamp"}
	seen := map[string]bool{"Id": true, "SystemModstamp": true}
	for _, f := range r.fields[entity] {
		top, _, _ := strings.Cut(f.Name, ".")
		if !seen[top] {
			seen[top] = true
			names = append(names, top)
		}
	}
	return strings.Join(names, ", ")
}

// record is a REST record, numbers kept as json.Number.
type record map[string]any

func decodeRecord(raw []byte) (record, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var rec record
	if err := d.Decode(&rec); err != nil {
		return nil, fmt.Errorf("decoding a record: %w", err)
	}
	return rec, nil
}

func (r *Reconciler) deleteEvent(entity, id string, ts int64) *cdc.Event {
	return &cdc.Event{Entity: entity, ChangeType: cdc.Delete, RecordIDs: []string{id},
		Version: cdc.Version{CommitTimestamp: ts}, Schema: r.fields[entity], SchemaID: r.ids[entity],
		Header: cdc.EventHeader{ChangeOrigin: "oppsync/reconcile"}}
}

// toEvent converts a REST record to a SNAPSHOT event (DELETE when
// IsDeleted), versioned by the newer of gap and the record's SystemModstamp.
func (r *Reconciler) toEvent(entity string, rec record, gap int64) (*cdc.Event, error) {
	id, _ := rec["Id"].(string)
	if !cdc.ValidID(id) {
		return nil, fmt.Errorf("record without a valid Id")
	}
	ts := gap
	if s, ok := rec["SystemModstamp"].(string); ok {
		t, err := parseDateTime(s)
		if err != nil {
			return nil, fmt.Errorf("SystemModstamp: %w", err)
		}
		ts = max(ts, t.UnixMilli())
	}
	if del, _ := rec["IsDeleted"].(bool); del {
		return r.deleteEvent(entity, id, ts), nil
	}
	ev := &cdc.Event{Entity: entity, ChangeType: cdc.Snapshot, RecordIDs: []string{id},
		Version: cdc.Version{CommitTimestamp: ts}, Schema: r.fields[entity], SchemaID: r.ids[entity],
		Header: cdc.EventHeader{ChangeOrigin: "oppsync/reconcile"}}
	for _, f := range r.fields[entity] {
		var raw any
		if parent, child, nested := strings.Cut(f.Name, "."); nested {
			if obj, ok := rec[parent].(map[string]any); ok {
				raw = obj[child]
			}
		} else {
			raw = rec[f.Name]
		}
		v, err := toValue(raw, f.Kind)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		ev.Fields = append(ev.Fields, cdc.Field{Name: f.Name, Value: v, Changed: true})
	}
	return ev, nil
}

// toValue types a JSON value by the schema kind.
func toValue(raw any, kind cdc.Kind) (cdc.Value, error) {
	if raw == nil {
		return cdc.Null, nil
	}
	switch x := raw.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return cdc.Null, err
		}
		if kind == cdc.KindString {
			return cdc.String(x.String()), nil
		}
		return cdc.Number(f), nil
	case bool:
		if kind == cdc.KindString {
			return cdc.String(fmt.Sprint(x)), nil
		}
		return cdc.Bool(x), nil
	case string:
		switch kind {
		case cdc.KindDate:
			d, err := time.Parse(cdc.DateLayout, x)
			if err != nil {
				return cdc.Null, fmt.Errorf("%q is not a date", x)
			}
			return cdc.Value{Kind: cdc.KindDate, Str: d.Format(cdc.DateLayout)}, nil
		case cdc.KindDateTime:
			t, err := parseDateTime(x)
			if err != nil {
				return cdc.Null, err
			}
			return cdc.DateTimeFromMillis(t.UnixMilli()), nil
		case cdc.KindNumber:
			var n json.Number = json.Number(x)
			f, err := n.Float64()
			if err != nil {
				return cdc.Null, fmt.Errorf("%q is not a number", x)
			}
			return cdc.Number(f), nil
		}
		return cdc.String(x), nil
	}
	return cdc.Null, fmt.Errorf("unexpected JSON %T", raw)
}

var dateTimeLayouts = []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.000Z", time.RFC3339Nano}

func parseDateTime(s string) (time.Time, error) {
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a datetime", s)
}
