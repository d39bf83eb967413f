package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/reconcile"
	"github.com/oppsync/oppsync/schemas"
)

// cmdResync reconciles records with Salesforce now:
//
//	oppsync resync [--config FILE] (--stale | --ids ID,ID... [--entity E] | --entity Opportunity|OpportunityContactRole)
//
// --ids names records of --entity (default Opportunity); --entity alone
// re-reads the whole entity (after GAP_OVERFLOW).
func cmdResync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newCommand("resync", "[--config FILE] (--stale | --ids ID,ID... [--entity E] | --entity Opportunity|OpportunityContactRole)",
		"oppsync resync --config oppsync.yml --ids 0068c000000q6IsAAI,0068c000000q6ItAAI", stdout).withConfig()
	stale := c.fs.Bool("stale", false, "re-read every record marked stale by a gap event")
	idList := c.fs.String("ids", "", "re-read these records (comma-separated ids) of --entity")
	entityFlag := c.fs.String("entity", "", "with --ids: their entity (default Opportunity); alone: re-read the whole entity (after GAP_OVERFLOW)")
	if err := c.parse(args); err != nil {
		return err
	}
	cfg, err := c.config()
	if err != nil {
		return err
	}
	ids := splitComma(*idList)
	entity := *entityFlag
	modes := 0
	for _, on := range []bool{*stale, len(ids) > 0, entity != "" && len(ids) == 0} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return usagef("resync: give exactly one of --stale, --ids ID,... or --entity Opportunity|OpportunityContactRole")
	}
	if entity != "" && entity != cdc.EntityOpportunity && entity != cdc.EntityContactRole {
		return usagef("resync: --entity must be Opportunity or OpportunityContactRole, got %q", entity)
	}
	log := newLogger(cfg.Log, stderr)
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store, err := newStore(ctx, cfg, rdb, 0)
	if err != nil {
		return err
	}
	rc, err := newReconciler(cfg, store, nil, log)
	if err != nil {
		return err
	}
	if rc == nil {
		return usagef("resync: salesforce.instance_url is not set; stale records stay flagged for an operator")
	}
	var res reconcile.Result
	switch {
	case *stale:
		res, err = rc.Stale(ctx)
	case len(ids) > 0:
		if entity == "" {
			entity = cdc.EntityOpportunity
		}
		res, err = rc.IDs(ctx, entity, ids)
	default:
		res, err = rc.Entity(ctx, entity, 0)
	}
	fmt.Fprintf(stdout, "resync: %d records re-read, %d deleted, %d applied, %d triggers\n", res.Read, res.Deleted, res.Applied, res.Triggers)
	if err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	return nil
}

// newReconciler builds the reconciler from the salesforce.* keys; it
// returns nil when salesforce.instance_url is empty (reconciliation off).
//
// `oppsync run` starts it next to the releaser (service.run), with its
// metrics on the service's registry; `oppsync resync` registers none.
func newReconciler(cfg *config.Config, store reconcile.Store, reg prometheus.Registerer, log zerolog.Logger) (*reconcile.Reconciler, error) {
	sf := cfg.Salesforce
	if sf.InstanceURL == "" {
		return nil, nil
	}
	fields := map[string][]cdc.FieldInfo{}
	for _, e := range []string{cdc.EntityOpportunity, cdc.EntityContactRole} {
		typer, err := decode.ParseSchema(schemas.PubSub(e))
		if err != nil {
			return nil, fmt.Errorf("%s schema: %w", e, err)
		}
		fields[e] = withoutHidden(e, typer.Fields(), cfg.Access.HiddenFields)
	}
	rc, err := reconcile.New(reconcile.Config{
		InstanceURL: sf.InstanceURL, APIVersion: sf.APIVersion, ClientID: sf.ClientID, ClientSecret: sf.ClientSecret,
		TokenURL: sf.TokenURL, RateLimit: float64(sf.RateLimit), Interval: sf.Interval, Fields: fields,
		SkipOverflowResync: !sf.OverflowResync, MaxCallsPerDay: sf.MaxAPICallsPerDay,
	}, store, &http.Client{Timeout: sf.Timeout}, reg, log)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	return rc, nil
}

// withoutHidden drops the fields the sync user must not read
// (access.hidden_fields "Entity.Field"; a compound parent hides its children).
func withoutHidden(entity string, fs []cdc.FieldInfo, hidden []string) []cdc.FieldInfo {
	h := map[string]bool{}
	for _, hf := range hidden {
		h[hf] = true
	}
	var out []cdc.FieldInfo
	for _, f := range fs {
		parent := f.Name
		for i := 0; i < len(parent); i++ {
			if parent[i] == '.' {
				parent = parent[:i]
				break
			}
		}
		if h[entity+"."+f.Name] || h[entity+"."+parent] {
			continue
		}
		out = append(out, f)
	}
	return out
}
