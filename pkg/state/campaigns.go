package state

// Campaigns in the apply path (CONTRACT §8, DESIGN.md "Campaigns: where they
// run"). For each trigger entry a change produces, every active campaign's
// trigger constraints are evaluated on the entry; a campaign with person
// filters then evaluates them on the person as the change leaves them: the
// person's opportunities read before the script call (Redis, overlaid with
// the groups of the batch as this change leaves them) and activity (Redis
// plus the entries the batch wrote so far, this change's included). The
// campaign entries go into the SAME script call as the trigger entries, so
// they are written exactly once with the state, whatever happens; the
// script decides qualification (once / every) against the campaign's marks
// and guards on the org's campaigns revision, so a definition changed since
// it was loaded refuses the call and the batch is recomputed with the new
// definitions (a version applies exactly to the entries written after it).
//
// A batch begun ahead (Begin) reads the people while the batch before it
// may still be running in Redis: it overlays that batch's groups and
// activity (planned, as it will leave them) on what it reads, and drops
// duplicates by event id, so it sees the batch before whole whether or not
// its calls ran yet. A batch before that did not collect them (campaigns
// with person filters appeared in between) is waited for instead.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// CampaignSource returns the active campaigns and the revision they were
// read at (campaigns.Store). It blocks, honours ctx and is safe for
// concurrent use; bad lists stored definitions that no longer validate.
type CampaignSource interface {
	Active(ctx context.Context) (set *campaigns.Set, bad map[string]error, err error)
}

// CampaignStats is what one applied script call wrote for campaigns.
type CampaignStats struct {
	// Entries counts the campaign entries written, by campaign id.
	Entries map[string]int
	// Evaluations counts the (campaign, trigger entry) pairs evaluated.
	Evaluations int
	// Lags are, per entry written, its write time minus the trigger's
	// occurred_at.
	Lags []time.Duration
}

// CampaignOptions connect the apply path to campaigns.
type CampaignOptions struct {
	// MaxLen is the approximate MAXLEN of each campaign stream
	// (streams.maxlen) [1,000,000].
	MaxLen int64
	// OnLoad is told of every set of active campaigns loaded (and of the
	// definitions that no longer validate). It must not block.
	OnLoad func(set *campaigns.Set, bad map[string]error)
	// OnWritten is told of each applied call that evaluated campaigns. It
	// must not block.
	OnWritten func(CampaignStats)
}

// SetCampaigns turns campaign evaluation on. Call it before the first
// batch; without it the apply path writes no campaign entries and does not
// guard on the campaigns revision.
func (s *Store) SetCampaigns(src CampaignSource, opts CampaignOptions) {
	if opts.MaxLen <= 0 {
		opts.MaxLen = 1_000_000
	}
	s.camps = &campaignCache{src: src, hooks: opts, k: campaigns.NewKeys(s.cfg.Org)}
}

// campaignCache holds the active campaigns between batches; a call the
// script refused for a moved campaigns revision drops it.
type campaignCache struct {
	src   CampaignSource
	hooks CampaignOptions
	k     campaigns.Keys

	mu  sync.Mutex
	set *campaigns.Set // nil: load before use
}

func (c *campaignCache) current(ctx context.Context) (*campaigns.Set, error) {
	c.mu.Lock()
	set := c.set
	c.mu.Unlock()
	if set != nil {
		return set, nil
	}
	set, bad, err := c.src.Active(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading campaigns: %w", err)
	}
	if c.hooks.OnLoad != nil {
		c.hooks.OnLoad(set, bad)
	}
	c.mu.Lock()
	c.set = set
	c.mu.Unlock()
	return set, nil
}

func (c *campaignCache) drop() {
	c.mu.Lock()
	c.set = nil
	c.mu.Unlock()
}

// needsPeople reports a set with a campaign that has person filters.
func needsPeople(set *campaigns.Set) bool {
	for _, c := range set.Campaigns {
		if c.Filters != nil {
			return true
		}
	}
	return false
}

// aheadAllowed reports whether a batch may be begun ahead of before (the
// plan of the batch still in flight, nil when none is): not when the
// campaigns cannot be read (the batch is then applied, and fails, at its
// Wait), nor when campaigns read people and before did not collect what it
// writes for them.
func (s *Store) aheadAllowed(ctx context.Context, before *plan) bool {
	if s.camps == nil {
		return true
	}
	set, err := s.camps.current(ctx)
	if err != nil {
		return false
	}
	return before == nil || !needsPeople(set) || before.camp != nil && before.camp.people != nil
}

// campaignState is what one plan (or one release) evaluates campaigns
// with.
type campaignState struct {
	set *campaigns.Set
	// groups are the plan's groups as the batch leaves them so far; extra
	// are the other groups of the people, as read before the batch.
	groups, extra map[string]*loaded
	// people are the candidates' opportunity ids and activity read before
	// the batch; acts the activity the batch wrote since.
	people map[string]*personRead
	acts   map[string][]loggedActivity
	// prev is the batch still in flight before this one (begun ahead), nil
	// when there is none: its groups and activity overlay what was read.
	prev *campaignState
	// held lists, per person, the groups of this batch and of prev where
	// they may hold a role (see planCampaigns).
	held map[string][]string
}

type personRead struct {
	opps []string
	acts []loggedActivity
}

// loggedActivity is an activity entry with its trigger's event id.
type loggedActivity struct {
	id string
	a  filters.Activity
}

// planCampaigns loads the active campaigns for a plan and, when one has
// person filters, reads the state of every person the batch may write an
// entry for: those holding or having held a role on its groups, and the
// contacts its contact-role events name.
func (s *Store) planCampaigns(ctx context.Context, p *plan, items []Item, before *plan) error {
	if s.camps == nil {
		return nil
	}
	set, err := s.camps.current(ctx)
	if err != nil {
		return err
	}
	cs := &campaignState{set: set, groups: p.groups}
	if before != nil && before.camp != nil {
		cs.prev = before.camp
		cs.prev.prev = nil // built and durable before this batch began: no chain of states
	}
	p.camp = cs
	if !needsPeople(set) {
		return nil
	}
	// cs.held indexes, per person, every group of the batch (and of the
	// batch in flight before it) where they hold or may come to hold a
	// role: those with a role of theirs in any state, and those a
	// contact-role event of the batch gives them.
	cs.held = map[string][]string{}
	hold := func(person, oppID string) {
		if person == "" || !cdc.KeySafeID(person) {
			return
		}
		for _, g := range cs.held[person] {
			if g == oppID {
				return
			}
		}
		cs.held[person] = append(cs.held[person], oppID)
	}
	people := map[string]bool{}
	since := int64(math.MaxInt64)
	for _, it := range items {
		ev := it.Event
		if ev == nil {
			continue
		}
		since = min(since, ev.Version.CommitTimestamp)
		f, ok := ev.Field("ContactId")
		if !ok || f.Value.Kind != cdc.KindString || !cdc.KeySafeID(f.Value.Str) {
			continue
		}
		people[f.Value.Str] = true
		if ev.Entity == cdc.EntityContactRole {
			for _, id := range ev.RecordIDs {
				if opp, found := p.recordOpp(ev, id); found {
					hold(f.Value.Str, opp)
				}
			}
		}
	}
	index := func(groups map[string]*loaded) {
		for oppID, l := range groups {
			for _, r := range l.g.Roles {
				hold(r.ContactID, oppID)
			}
		}
	}
	index(p.groups)
	if cs.prev != nil {
		index(cs.prev.groups)
	}
	for person := range cs.held {
		people[person] = true
	}
	if cs.prev != nil && cs.prev.people == nil {
		return errors.New("campaigns: the batch before did not collect its people")
	}
	if since == math.MaxInt64 {
		since = s.cfg.Now().UnixMilli()
	}
	return s.readPeople(ctx, cs, people, since)
}

// releaseCampaigns is planCampaigns for ReleaseExpired's groups.
func (s *Store) releaseCampaigns(ctx context.Context, groups map[string]*loaded) (*campaignState, error) {
	if s.camps == nil {
		return nil, nil
	}
	p := &plan{groups: groups}
	if err := s.planCampaigns(ctx, p, nil, nil); err != nil {
		return nil, err
	}
	return p.camp, nil
}

// readPeople reads the candidates' opportunity links and, when a filter
// reads activity, their activity from the earliest instant any window of
// an entry at or after since can reach; then the groups they hold that the
// plan does not.
func (s *Store) readPeople(ctx context.Context, cs *campaignState, people map[string]bool, since int64) error {
	cs.people = make(map[string]*personRead, len(people))
	cs.acts = map[string][]loggedActivity{}
	cs.extra = map[string]*loaded{}
	if len(people) == 0 {
		return nil
	}
	from, readActs := int64(math.MaxInt64), false
	for _, c := range cs.set.Campaigns {
		if c.Filters == nil || !c.Filters.NeedsActivity() {
			continue
		}
		readActs = true
		if lo, _, ok := c.Filters.At(time.UnixMilli(since)).ActivityWindow(); ok {
			from = min(from, lo)
		}
	}
	lo := "-inf"
	if from != math.MaxInt64 && from > math.MinInt64 {
		lo = strconv.FormatInt(from, 10)
	}
	pipe := s.rdb.Pipeline()
	ids := make([]string, 0, len(people))
	links := make([]*redis.StringSliceCmd, 0, len(people))
	acts := make([]*redis.StringSliceCmd, 0, len(people))
	for p := range people {
		ids = append(ids, p)
		links = append(links, pipe.HKeys(ctx, s.k.Person(p)))
		if readActs {
			acts = append(acts, pipe.ZRangeByScore(ctx, s.k.Activity(p), &redis.ZRangeBy{Min: lo, Max: "+inf"}))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("reading campaign people: %w", err)
	}
	want := map[string]bool{}
	for i, p := range ids {
		pr := &personRead{opps: links[i].Val()}
		for _, o := range pr.opps {
			want[o] = true
		}
		if readActs {
			for _, text := range acts[i].Val() {
				raw, err := replica.DecodeActivity(text)
				if err != nil {
					continue // an entry this version cannot read matches nothing
				}
				a := filters.Activity{Kind: raw.Kind, OpportunityID: raw.Opp, RoleID: raw.RoleID, Role: raw.Role,
					IsPrimary: raw.IsPrimary, Field: raw.Field, At: raw.At, Old: raw.Old, New: raw.New}
				pr.acts = append(pr.acts, loggedActivity{id: raw.EventID, a: a})
				want[a.OpportunityID] = true // for constraints on its fields
			}
		}
		cs.people[p] = pr
	}
	var load []string
	for id := range want {
		if cs.group(id) == nil && cdc.KeySafeID(id) {
			load = append(load, id)
		}
	}
	extra, err := s.loadGroups(ctx, load)
	if err != nil {
		return err
	}
	cs.extra = extra
	return nil
}

// campaignTx is what a script call carries for campaigns.
type campaignTx struct {
	k      campaigns.Keys
	rev    string // the campaigns revision the call expects
	cache  *campaignCache
	evals  int
	queued []queuedEntry // the Q commands, in order
}

type queuedEntry struct {
	campaign string
	at       int64 // the trigger's occurred_at (ms)
}

// writtenTrigger is one trigger entry of a change: the entry, its common
// field set and its own fields (for the campaign entries that copy it).
type writtenTrigger struct {
	tr     triggers.Trigger
	common string
	own    []any // "*", then field, value pairs
}

// writeCampaigns evaluates the active campaigns for the trigger entries of
// one change (after the change: its own activity included) and queues the
// campaign entries in t.
func (s *Store) writeCampaigns(t *tx, l *loaded, written []writtenTrigger) {
	cs := t.cs
	if s.camps == nil || cs == nil || len(written) == 0 {
		return
	}
	ct := t.camp
	if ct == nil {
		ct = &campaignTx{k: s.camps.k, rev: strconv.FormatInt(cs.set.Rev, 10), cache: s.camps}
		t.camp = ct
	}
	if cs.people != nil {
		for _, w := range written {
			cs.acts[w.tr.PersonID] = append(cs.acts[w.tr.PersonID], loggedActivity{id: w.tr.EventID, a: activityOf(w.tr)})
		}
	}
	if len(cs.set.Campaigns) == 0 {
		return
	}
	var snap *filters.Opportunity
	if l.g.Opp.Known {
		snap = filters.FromGroup(l.g, s.cur)
	}
	people := map[string]*filters.Person{}
	for _, w := range written {
		tr := w.tr
		e := entryOf(tr, snap)
		for _, c := range cs.set.Campaigns {
			ct.evals++
			if !matchesTrigger(c, e) {
				continue
			}
			if c.Filters != nil {
				p := people[tr.PersonID]
				if p == nil {
					p = s.campaignPerson(cs, tr.PersonID)
					people[tr.PersonID] = p
				}
				if !c.Filters.At(time.UnixMilli(e.At)).Match(p) {
					continue
				}
			}
			t.campaignEntry(ct, c, w)
		}
	}
}

func matchesTrigger(c *campaigns.Campaign, e *filters.Entry) bool {
	for _, t := range c.Triggers {
		if t.Match(e) {
			return true
		}
	}
	return false
}

// entryOf is a trigger entry as trigger constraints see it.
func entryOf(tr triggers.Trigger, snap *filters.Opportunity) *filters.Entry {
	e := &filters.Entry{Kind: tr.Kind, At: tr.Source.Version.CommitTimestamp}
	if !tr.NoSnapshot {
		e.Opportunity = snap
	}
	if tr.Kind == cdc.TriggerUpdated {
		e.Field, e.Old, e.New = tr.Field, tr.Old, tr.New
		for _, r := range tr.Roles {
			e.Roles = append(e.Roles, filters.Role{ID: r.ContactRoleID, ContactID: tr.PersonID, Role: r.Role, IsPrimary: r.IsPrimary})
		}
		return e
	}
	e.Reason = tr.Reason
	e.Role = &filters.Role{ID: tr.ContactRoleID, ContactID: tr.PersonID, Role: tr.Role, IsPrimary: tr.IsPrimary}
	return e
}

// activityOf is the activity log entry of a trigger, as the filters read
// it back.
func activityOf(tr triggers.Trigger) filters.Activity {
	return filters.Activity{Kind: tr.Kind, OpportunityID: tr.OpportunityID, RoleID: tr.ContactRoleID, Role: tr.Role,
		IsPrimary: tr.IsPrimary, Field: tr.Field, Old: tr.Old, New: tr.New, At: tr.Source.Version.CommitTimestamp}
}

// group returns a group as this change leaves it: the batch's, else the
// batch in flight before it's, else as read (nil when not read).
func (cs *campaignState) group(oppID string) *loaded {
	if l, ok := cs.groups[oppID]; ok {
		return l
	}
	if cs.prev != nil {
		if l, ok := cs.prev.groups[oppID]; ok {
			return l
		}
	}
	return cs.extra[oppID]
}

// campaignPerson is the person as the change leaves them: the
// non-deleted opportunities they hold a live role on and their activity,
// from what was read before the batch overlaid with the batch in flight
// before it and with this batch so far.
func (s *Store) campaignPerson(cs *campaignState, id string) *filters.Person {
	p := &filters.Person{ID: id}
	seen := map[string]bool{}
	add := func(oppID string) {
		if seen[oppID] {
			return
		}
		seen[oppID] = true
		l := cs.group(oppID)
		if l == nil {
			return
		}
		o := filters.FromGroup(l.g, s.cur)
		if (o.Known && o.Deleted) || len(filters.PersonRoles(o, id)) == 0 {
			return
		}
		p.Opportunities = append(p.Opportunities, o)
	}
	logged := map[string]bool{}
	log := func(acts []loggedActivity) {
		for _, la := range acts {
			if !logged[la.id] {
				logged[la.id] = true
				p.Activity = append(p.Activity, la.a)
			}
		}
	}
	if read := cs.people[id]; read != nil {
		for _, oppID := range read.opps {
			add(oppID)
		}
		log(read.acts)
	}
	for _, oppID := range cs.held[id] {
		add(oppID)
	}
	if cs.prev != nil {
		log(cs.prev.acts[id])
	}
	log(cs.acts[id])
	p.Lookup = func(oppID string) (*filters.Opportunity, bool) {
		if l := cs.group(oppID); l != nil {
			return filters.FromGroup(l.g, s.cur), true
		}
		return nil, false
	}
	return p
}

// Qualification rules as the script reads them.
const (
	qualEveryTime = "e"
	qualOnce      = "o"
	qualEvery     = "w"
)

// campaignEntry queues one campaign entry: the script writes it unless the
// qualification rule keeps the person out (see applyScript's "Q").
func (t *tx) campaignEntry(ct *campaignTx, c *campaigns.Campaign, w writtenTrigger) {
	tr := w.tr
	rule, window := qualEveryTime, int64(0)
	switch c.Qualification.Rule {
	case campaigns.Once:
		rule = qualOnce
	case campaigns.Every:
		rule, window = qualEvery, c.Qualification.Window.Milliseconds()
	}
	at := tr.Source.Version.CommitTimestamp
	fields := []any{
		"campaign_id", c.ID,
		"event_id", c.ID + ":" + tr.EventID,
		"campaign_version", strconv.FormatInt(c.Version, 10),
		"person_id", tr.PersonID,
		"trigger", tr.Kind,
		"trigger_event_id", tr.EventID,
		"opportunity_id", tr.OpportunityID,
		"occurred_at", cdc.FormatMillis(at),
	}
	// The trigger entry's own fields after trigger, event_id and person_id.
	fields = append(fields, w.own[7:]...)
	head := []any{t.key(ct.k.Marks(c.ID)), t.key(ct.k.Qualified()), c.ID, rule, window, tr.PersonID, at,
		ct.cache.hooks.MaxLen, w.common}
	t.entries = append(t.entries, "Q", t.key(ct.k.Stream(c.ID)), len(head)+len(fields))
	t.entries = append(t.entries, head...)
	t.entries = append(t.entries, fields...)
	ct.queued = append(ct.queued, queuedEntry{campaign: c.ID, at: at})
}

// campaignReplies reads what the script reports for a call's campaign
// entries and tells the hooks; a call refused for a moved campaigns
// revision drops the cached campaigns.
func campaignReplies(txs []*tx, cmds []*redis.Cmd, now time.Time) {
	for i, c := range cmds {
		t := txs[i]
		if t.camp == nil || c.Err() != nil {
			continue
		}
		v := c.Val()
		if n, ok := v.(int64); ok {
			if n == scriptCampaignsMoved {
				t.camp.cache.drop()
			}
			if n != scriptApplied {
				continue
			}
		}
		hook := t.camp.cache.hooks.OnWritten
		if hook == nil {
			continue
		}
		st := CampaignStats{Evaluations: t.camp.evals, Entries: map[string]int{}}
		flags, _ := v.([]any)
		for j, q := range t.camp.queued {
			if j+1 < len(flags) {
				if f, _ := flags[j+1].(int64); f == 1 {
					st.Entries[q.campaign]++
					st.Lags = append(st.Lags, now.Sub(time.UnixMilli(q.at)))
				}
			}
		}
		hook(st)
	}
}
