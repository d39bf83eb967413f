package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/api"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/config"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/view"
	"github.com/oppsync/oppsync/schemas"
)

// cmdCampaigns manages campaign definitions in Redis (CONTRACT §8):
//
//	oppsync campaigns apply -f FILE [--config FILE]
//	oppsync campaigns list [--json] [--config FILE]
//	oppsync campaigns delete ID [--config FILE]
func cmdCampaigns(ctx context.Context, args []string, stdout io.Writer) error {
	const synopsis = "apply -f FILE | list [--json] | delete ID  [--config FILE] [--<config.key>=VALUE ...]"
	sub := ""
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "apply":
		c := newCommand("campaigns apply", "-f FILE [--config FILE]",
			"oppsync campaigns apply -f campaigns.yml --config oppsync.yml", stdout).withConfig()
		file := c.fs.String("f", "", "YAML or JSON `file` of one campaign definition or a list, each with its campaign_id (- for stdin)")
		if err := c.parse(args); err != nil {
			return err
		}
		if *file == "" {
			return usagef("campaigns apply: give -f FILE")
		}
		return withCampaigns(ctx, c, func(st *campaigns.Store) error { return applyCampaigns(ctx, st, *file, stdout) })
	case "list":
		c := newCommand("campaigns list", "[--json] [--config FILE]", "oppsync campaigns list --config oppsync.yml", stdout).withConfig()
		asJSON := c.fs.Bool("json", false, "print the definitions as JSON ({\"campaigns\": [...]}, as GET /v1/campaigns)")
		if err := c.parse(args); err != nil {
			return err
		}
		return withCampaigns(ctx, c, func(st *campaigns.Store) error { return listCampaigns(ctx, st, *asJSON, stdout) })
	case "delete":
		c := newCommand("campaigns delete", "ID [--config FILE]", "oppsync campaigns delete big-deals --config oppsync.yml", stdout).withConfig()
		id, rest := "", args
		if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
			id, rest = args[0], args[1:]
		}
		if err := c.parse(rest); err != nil {
			return err
		}
		if id == "" {
			return usagef("campaigns delete: give the campaign ID")
		}
		if !campaigns.ValidID(id) {
			return usagef("campaigns delete: %q is not a campaign id ([A-Za-z0-9_-]{1,64})", id)
		}
		return withCampaigns(ctx, c, func(st *campaigns.Store) error {
			ok, err := st.Delete(ctx, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("campaigns delete: no campaign %q", id)
			}
			fmt.Fprintf(stdout, "%s: deleted\n", id)
			return nil
		})
	case "-h", "--help", "help":
		fmt.Fprintf(stdout, "usage: oppsync campaigns %s\n\nEach subcommand answers --help with its flags.\n\nexample:\n  oppsync campaigns apply -f campaigns.yml --config oppsync.yml\n", synopsis)
		return errHelp
	}
	return usagef("campaigns: want apply, list or delete (usage: oppsync campaigns %s)", synopsis)
}

// withCampaigns loads the configuration and runs fn on the org's campaign
// store.
func withCampaigns(ctx context.Context, c *command, fn func(*campaigns.Store) error) error {
	cfg, err := c.config()
	if err != nil {
		return err
	}
	rdb, err := newRedis(cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store, err := state.New(cfg.Store(), rdb)
	if err != nil {
		return &usageError{err.Error()}
	}
	st, err := newCampaignStore(cfg, rdb, store)
	if err != nil {
		return err
	}
	return fn(st)
}

func applyCampaigns(ctx context.Context, st *campaigns.Store, file string, stdout io.Writer) error {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return usagef("campaigns apply: %v", err)
	}
	opts, err := st.Options(ctx)
	if err != nil {
		return err
	}
	// Every definition is validated before any is stored.
	defs, err := campaigns.ParseFile(data, opts)
	if err != nil {
		return usagef("campaigns apply: %s: %v", file, err)
	}
	for _, d := range defs {
		stored, changed, err := st.Store(ctx, d)
		if err != nil {
			var le *campaigns.LimitError
			if errors.As(err, &le) {
				return fmt.Errorf("campaigns apply: %s: %w", d.CampaignID, err)
			}
			return err
		}
		what := "unchanged"
		if changed {
			what = "stored"
		}
		fmt.Fprintf(stdout, "%s: %s (version %d)\n", d.CampaignID, what, stored.Version)
	}
	return nil
}

func listCampaigns(ctx context.Context, st *campaigns.Store, asJSON bool, stdout io.Writer) error {
	list, _, err := st.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		if list == nil {
			list = []*campaigns.Stored{}
		}
		b, _ := json.MarshalIndent(map[string]any{"campaigns": list}, "", "  ")
		_, err := fmt.Fprintln(stdout, string(b))
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVERSION\tACTIVE\tUPDATED_AT\tNAME")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\n", c.CampaignID, c.Version, c.Active, c.UpdatedAt, c.Name)
	}
	return tw.Flush()
}

// newCampaignStore returns the org's campaign definitions, validated
// against the standard catalog (campaignCatalog).
func newCampaignStore(cfg *config.Config, rdb redis.UniversalClient, store *state.Store) (*campaigns.Store, error) {
	st, err := campaigns.New(campaigns.Config{Org: cfg.OrgID, Max: cfg.Campaigns.Max, Ignored: cfg.Triggers.IgnoreFields},
		rdb, newCampaignCatalog(replicaCatalog{store.Replica()}, cfg.Access.HiddenFields))
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	return st, nil
}

// catalogReader reads the catalog of the schemas seen (view.View,
// replicaCatalog).
type catalogReader interface {
	Catalog(ctx context.Context) (*filters.Catalog, error)
}

// replicaCatalog reads the catalog from Redis, uncached.
type replicaCatalog struct{ r *replica.Replica }

func (c replicaCatalog) Catalog(ctx context.Context) (*filters.Catalog, error) {
	return view.ReadCatalog(ctx, c.r)
}

// campaignCatalog is the catalog of the schemas seen so far plus the
// standard fields of Opportunity and OpportunityContactRole (the embedded
// schemas) less access.hidden_fields: a campaign on a fresh deployment can
// name Amount before any event arrived (CONTRACT §8).
type campaignCatalog struct {
	seen     catalogReader
	standard []filters.Field
}

func newCampaignCatalog(seen catalogReader, hidden []string) *campaignCatalog {
	c := &campaignCatalog{seen: seen}
	for _, entity := range schemas.Entities {
		sch, err := decode.ParseSchema(schemas.PubSub(entity))
		if err != nil {
			continue // the embedded schemas are tested to parse
		}
		for _, f := range sch.Fields() {
			if slices.Contains(hidden, entity+"."+f.Name) || strings.Contains(f.Name, "__") {
				continue // hidden, or a custom field of the demo org (only the schemas seen know a real org's)
			}
			c.standard = append(c.standard, filters.Field{Entity: entity, Name: f.Name, Kind: f.Kind, SalesforceType: f.SalesforceType})
		}
	}
	return c
}

// Catalog returns the union; a field seen in a schema wins over the
// standard one of the same name.
func (c *campaignCatalog) Catalog(ctx context.Context) (*filters.Catalog, error) {
	seen, err := c.seen.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	fields := slices.Clone(seen.Fields())
	have := map[string]bool{}
	for _, f := range fields {
		have[f.Entity+"."+f.Name] = true
	}
	for _, f := range c.standard {
		if !have[f.Entity+"."+f.Name] {
			fields = append(fields, f)
		}
	}
	return filters.NewCatalog(fields), nil
}

// activityLog serves GET /v1/people/{id}/activity from the state store.
type activityLog struct{ store *state.Store }

func (a activityLog) PersonActivity(ctx context.Context, personID string, q api.ActivityQuery) ([]map[string]string, string, bool, error) {
	return a.store.PersonActivity(ctx, personID, state.ActivityPage{Kind: q.Type, Since: q.Since, Until: q.Until, Limit: q.Limit, Cursor: q.Cursor})
}

// withCatalog serves the API's queries with the campaign catalog, so that
// /v1/constraints, filters and campaigns know the same fields.
type withCatalog struct {
	*lazyView
	cat *campaignCatalog
}

func (w withCatalog) Catalog(ctx context.Context) (*filters.Catalog, error) {
	return w.cat.Catalog(ctx)
}

// setCampaigns builds the org's campaign definitions (filters, campaigns
// and /v1/constraints share their catalog) and turns their evaluation on in
// the apply path, with the metrics of CONTRACT §8.
func (s *service) setCampaigns() error {
	var err error
	s.defs, err = newCampaignStore(s.cfg, s.rdb, s.store)
	if err != nil {
		return err
	}
	m, err := campaigns.NewMetrics(s.reg)
	if err != nil {
		return err
	}
	log := s.log.With().Str("component", "campaigns").Logger()
	s.store.SetCampaigns(s.defs, state.CampaignOptions{
		MaxLen: s.cfg.Streams.MaxLen,
		OnLoad: func(set *campaigns.Set, bad map[string]error) {
			m.Loaded(set)
			for id, err := range bad {
				log.Warn().Str("campaign", id).Err(err).Msg("stored campaign no longer validates: not evaluated")
			}
		},
		OnWritten: func(st state.CampaignStats) { m.Written(st.Entries, st.Evaluations, st.Lags) },
	})
	return nil
}
