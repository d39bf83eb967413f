package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/state"
)

// Store is what reconciliation needs of the state (*state.Store). Every
// method honours ctx and is safe for concurrent use.
type Store interface {
	ApplyEvents(ctx context.Context, evs []*cdc.Event, opts state.ApplyOptions) (state.BatchResult, error)
	StaleIDs(ctx context.Context, entity string, max int) ([]string, error)
	ClearStale(ctx context.Context, entity string, ids ...string) error
	ResyncNotices(ctx context.Context, after string, count int64) ([]state.ResyncNotice, error)
	Progress(ctx context.Context, name string) (map[string]string, error)
	SaveProgress(ctx context.Context, name string, fields map[string]string, reset bool) error
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
	// Now is the wall clock (tests set it) [time.Now].
	Now func() time.Time
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	c.InstanceURL = strings.TrimRight(c.InstanceURL, "/")
	if c.InstanceURL == "" || c.ClientID == "" || c.ClientSecret == "" {
		return errors.New("reconcile: instance URL, client id and client secret are required")
	}
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

// ProgressName is the hash "oppsync:{org}:reconcile" holding the resync
// stream cursor.
const ProgressName = "reconcile"

// Reconciler re-reads records from Salesforce and applies them as SNAPSHOT
// (or DELETE) events.
type Reconciler struct {
	cfg    Config
	store  Store
	c      *client
	log    zerolog.Logger
	fields map[string][]cdc.FieldInfo
	ids    map[string]string // Event.SchemaID per entity
}

// New returns a Reconciler; hc nil means http.DefaultClient.
func New(cfg Config, store Store, hc Doer, log zerolog.Logger) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	r := &Reconciler{cfg: cfg, store: store, log: log.With().Str("component", "reconcile").Logger(),
		c:      &client{cfg: cfg, http: hc, lim: newBucket(cfg.RateLimit, cfg.Burst)},
		fields: map[string][]cdc.FieldInfo{}, ids: map[string]string{}}
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
// resync stream trigger an entity resync, then the stale records are
// re-read. Failures are logged and retried at the next interval; Run
// returns nil on cancellation.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if res, err := r.pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("reconciliation failed; retrying at the next interval")
		} else if res.Read > 0 || res.Deleted > 0 {
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

// pass follows the resync stream from the saved cursor, then reconciles
// the stale records.
func (r *Reconciler) pass(ctx context.Context) (Result, error) {
	var total Result
	prog, err := r.store.Progress(ctx, ProgressName)
	if err != nil {
		return total, err
	}
	cursor := prog["resync_cursor"]
	versions := map[string]int64{}
	for {
		notes, err := r.store.ResyncNotices(ctx, cursor, 1000)
		if err != nil {
			return total, err
		}
		if len(notes) == 0 {
			break
		}
		for _, n := range notes {
			if n.ChangeType == cdc.GapOverflow || wildcard(n.RecordIDs) {
				res, err := r.Entity(ctx, n.Entity, n.CommitTimestamp)
				total.add(res)
				if err != nil {
					return total, err
				}
				continue
			}
			for _, id := range n.RecordIDs {
				versions[id] = max(versions[id], n.CommitTimestamp)
			}
		}
		cursor = notes[len(notes)-1].StreamID
		if err := r.store.SaveProgress(ctx, ProgressName, map[string]string{"resync_cursor": cursor}, false); err != nil {
			return total, err
		}
	}
	res, err := r.stale(ctx, versions)
	total.add(res)
	return total, err
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
			return Result{}, err
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
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		failed := map[string]bool{}
		for {
			ids, err := r.store.StaleIDs(ctx, e, r.cfg.IDsPerQuery+len(failed))
			if err != nil {
				return total, err
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
				var ae *APIError
				if !errors.As(err, &ae) || retryable(err) {
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
// queryAll SOQL for several), applies them and clears their stale flags.
func (r *Reconciler) reconcileIDs(ctx context.Context, entity string, ids []string, versions map[string]int64) (Result, error) {
	for _, id := range ids {
		if !cdc.ValidID(id) {
			return Result{}, fmt.Errorf("%q is not a Salesforce id", id)
		}
	}
	found := map[string]record{}
	if len(ids) == 1 {
		var rec record
		err := r.c.get(ctx, r.path("sobjects/"+entity+"/"+ids[0]+"?fields="+url.QueryEscape(r.selectList(entity))), &rec)
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		case err != nil:
			return Result{}, err
		default:
			found[ids[0]] = rec
		}
	} else {
		q := "SELECT " + r.selectList(entity) + ", IsDeleted FROM " + entity + " WHERE Id IN (" + soqlIDs(ids) + ")"
		err := r.query(ctx, "queryAll", q, func(rec record) error {
			if id, _ := rec["Id"].(string); id != "" {
				found[id] = rec
			}
			return nil
		})
		if err != nil {
			return Result{}, err
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
			return res, fmt.Errorf("%s %s: %w", entity, id, err)
		}
		if ev.ChangeType == cdc.Delete {
			res.Deleted++
		} else {
			res.Read++
		}
		evs = append(evs, ev)
	}
	out, err := r.apply(ctx, entity, evs, ids)
	res.add(out)
	return res, err
}

func (r *Reconciler) apply(ctx context.Context, entity string, evs []*cdc.Event, ids []string) (Result, error) {
	if len(evs) == 0 {
		return Result{}, nil
	}
	br, err := r.store.ApplyEvents(ctx, evs, state.ApplyOptions{})
	if err != nil {
		return Result{}, fmt.Errorf("applying %d re-read %s records: %w", len(evs), entity, err)
	}
	res := Result{Applied: br.Applied}
	for _, n := range br.Triggers {
		res.Triggers += n
	}
	if err := r.store.ClearStale(ctx, entity, ids...); err != nil {
		return res, err
	}
	return res, nil
}

// Entity re-reads every record of entity, deleted ones included (after a
// GAP_OVERFLOW): a paged queryAll applied page by page. since is the
// overflow's commit time (0 when unknown): the minimum version given.
func (r *Reconciler) Entity(ctx context.Context, entity string, since int64) (Result, error) {
	if _, ok := r.fields[entity]; !ok {
		return Result{}, fmt.Errorf("unknown entity %q", entity)
	}
	var total Result
	var evs []*cdc.Event
	var ids []string
	flush := func() error {
		res, err := r.apply(ctx, entity, evs, ids)
		total.add(res)
		evs, ids = evs[:0], ids[:0]
		return err
	}
	q := "SELECT " + r.selectList(entity) + ", IsDeleted FROM " + entity
	err := r.query(ctx, "queryAll", q, func(rec record) error {
		ev, err := r.toEvent(entity, rec, since)
		if err != nil {
			return fmt.Errorf("%s %v: %w", entity, rec["Id"], err)
		}
		if ev.ChangeType == cdc.Delete {
			total.Deleted++
		} else {
			total.Read++
		}
		evs = append(evs, ev)
		ids = append(ids, ev.RecordIDs[0])
		if len(evs) >= 2000 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return total, err
	}
	return total, flush()
}

func (r *Reconciler) path(rest string) string {
	return "/services/data/v" + r.cfg.APIVersion + "/" + rest
}

// query runs a SOQL query (resource "query" or "queryAll"), following
// nextRecordsUrl, and calls fn for each record.
func (r *Reconciler) query(ctx context.Context, resource, soql string, fn func(record) error) error {
	next := r.path(resource + "?q=" + url.QueryEscape(soql))
	for next != "" {
		var page struct {
			Done           bool              `json:"done"`
			NextRecordsURL string            `json:"nextRecordsUrl"`
			Records        []json.RawMessage `json:"records"`
		}
		if err := r.c.get(ctx, next, &page); err != nil {
			return err
		}
		for _, raw := range page.Records {
			rec, err := decodeRecord(raw)
			if err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		next = ""
		if !page.Done {
			next = page.NextRecordsURL
		}
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
