package state

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// loaded is a group as read from Redis, with its revision.
type loaded struct {
	g   *triggers.Group
	rev int64
	// badRev is the stored revision when it is not a number (corrupt): the
	// next write expects it, and replaces it with rev+1.
	badRev string
	// snapshot caches the opportunity's rendered snapshot ("" = not
	// rendered since it last changed).
	snapshot string
	// owner is the last batch begun ahead that wrote it (see lane).
	owner *Applying
}

// plan is what a batch attempt read: the groups it touches and which
// opportunity each contact-role record belongs to.
type plan struct {
	groups     map[string]*loaded
	roleOpp    map[string]string
	duplicates int
	unresolved int
	// quiet drops trigger entries (imports of history); snapshots lets
	// SNAPSHOT events (resyncs) through.
	quiet, snapshots bool
	// keepStale names the records ("<entity>/<id>") of a re-read whose
	// stale marker moved since the re-read began (ApplyOptions.StaleMarks).
	keepStale map[string]bool
	// camp is what campaigns are evaluated with (nil: campaigns off).
	camp *campaignState
	// after lists the batches in flight that wrote the lane's groups the
	// plan took: its calls run after theirs (see lane).
	after []*Applying
}

// recordOpp returns the opportunity group a record of ev belongs to.
func (p *plan) recordOpp(ev *cdc.Event, recordID string) (string, bool) {
	if ev.Entity == cdc.EntityOpportunity {
		return recordID, true
	}
	if f, ok := ev.Field("OpportunityId"); ok && f.Value.Kind == cdc.KindString && f.Value.Str != "" {
		return f.Value.Str, true
	}
	id, ok := p.roleOpp[recordID]
	return id, ok && id != ""
}

// applicable reports whether the event is one the state applies per record.
func applicable(ev *cdc.Event) bool {
	if ev == nil || ev.ChangeType == cdc.Snapshot || ev.ChangeType == cdc.GapOverflow {
		return false
	}
	return ev.Entity == cdc.EntityOpportunity || ev.Entity == cdc.EntityContactRole
}

// wildcard reports record ids that name no single record (field-type
// conversions, overflow).
func wildcard(id string) bool {
	return strings.Contains(id, "*") || id == cdc.OverflowRecordID
}

// screen turns, in place, the items whose ids must not reach a key into
// dead letters (stage apply, invalid_id). The decoder rejects every id
// that is not a Salesforce id first (cdc.CheckIDs); this guard keeps any
// event, whoever made it, from writing into another record's keys
// ("<id>:roles") or outside the org's.
func screen(items []Item) {
	for i := range items {
		it := &items[i]
		if it.DeadLetter != nil || it.Event == nil {
			continue
		}
		if err := cdc.CheckKeySafeIDs(it.Event); err != nil {
			it.Event = nil
			it.DeadLetter = &DeadLetter{Stage: "apply", Reason: cdc.ReasonInvalidID, Error: err.Error()}
		}
	}
}

func (s *Store) plan(ctx context.Context, items []Item, opts ...ApplyOptions) (*plan, error) {
	return s.planAfter(ctx, items, nil, nil, opts...)
}

// planAfter plans items; with the lane (held locked), they take its groups
// (as the calls of the batches in flight will leave them) instead of
// reading Redis, learn from it which opportunity contact roles belong to,
// and leave what they read with it. before is the plan of the batch of the
// same partition still in flight (nil when there is none): campaigns
// overlay the people they read with what it writes.
func (s *Store) planAfter(ctx context.Context, items []Item, l *lane, before *plan, opts ...ApplyOptions) (*plan, error) {
	screen(items)
	p := &plan{groups: map[string]*loaded{}, roleOpp: map[string]string{}}
	var marks map[string]map[string]string
	for _, o := range opts {
		p.quiet, p.snapshots, marks = o.Quiet, true, o.StaleMarks
	}
	ok := func(ev *cdc.Event) bool {
		return applicable(ev) || p.snapshots && ev != nil && ev.ChangeType == cdc.Snapshot && knownEntity(ev.Entity)
	}
	var lookups []string
	taught := map[string]bool{}
	for _, it := range items {
		if it.DeadLetter != nil || !ok(it.Event) || it.Event.Entity != cdc.EntityContactRole {
			continue
		}
		opp := ""
		if f, ok := it.Event.Field("OpportunityId"); ok && f.Value.Kind == cdc.KindString {
			opp = f.Value.Str
		}
		for _, id := range it.Event.RecordIDs {
			switch {
			case wildcard(id) || taught[id]:
			case opp != "":
				// The batch itself says where the role belongs, for its later changes.
				p.roleOpp[id] = opp
				taught[id] = true
				if l != nil {
					l.learn(id, opp)
				}
			case l != nil && l.roleOpp[id] != "":
				p.roleOpp[id] = l.roleOpp[id]
				taught[id] = true
			default:
				lookups = append(lookups, id)
				taught[id] = true
			}
		}
	}
	if len(lookups) > 0 {
		vals, err := s.rdb.HMGet(ctx, s.k.RoleOpp(), lookups...).Result()
		if err != nil {
			return nil, fmt.Errorf("reading contact role owners: %w", err)
		}
		for i, v := range vals {
			if str, ok := v.(string); ok {
				p.roleOpp[lookups[i]] = str
				if l != nil {
					l.learn(lookups[i], str)
				}
			}
		}
	}
	if err := s.recordSchemas(ctx, items); err != nil {
		return nil, err
	}
	// A group is the batch's own unless only an event naming several
	// records touches it under another message key: a multi-opportunity
	// event is keyed by one of them, so the others' messages go to other
	// partitions, maybe to another instance, and the lane's copy of such a
	// group may be stale (see lane.take).
	want, own := map[string]bool{}, map[string]bool{}
	for _, it := range items {
		if it.DeadLetter != nil || !ok(it.Event) {
			continue
		}
		ev := it.Event
		for _, id := range ev.RecordIDs {
			if wildcard(id) {
				continue
			}
			if opp, found := p.recordOpp(ev, id); found {
				want[opp] = true
				if len(ev.RecordIDs) == 1 || it.Msg == nil || string(it.Msg.Key) == opp {
					own[opp] = true
				}
			}
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		mine := own[id]
		if l != nil {
			if g, ok := l.take(s, p, id, mine); ok {
				p.groups[id] = g
				continue
			}
		} else if g, ok := s.cache.get(id); ok {
			if mine {
				p.groups[id] = g
				continue
			}
		}
		ids = append(ids, id)
	}
	groups, err := s.loadGroups(ctx, ids)
	if err != nil {
		return nil, err
	}
	for id, g := range groups {
		p.groups[id] = g
		if l != nil {
			l.keep(id, g)
		}
	}
	// Read after the groups: a gap applied in between moved the group's
	// revision too, so the script refuses what this plan builds.
	if err := s.planStaleMarks(ctx, p, items, marks); err != nil {
		return nil, err
	}
	if err := s.planCampaigns(ctx, p, items, before); err != nil {
		return nil, err
	}
	return p, nil
}

// planStaleMarks compares the stale markers a re-read began from with the
// current ones and notes the records whose marker moved.
func (s *Store) planStaleMarks(ctx context.Context, p *plan, items []Item, marks map[string]map[string]string) error {
	if len(marks) == 0 {
		return nil
	}
	ids := map[string][]string{}
	for _, it := range items {
		if it.Event == nil {
			continue
		}
		for _, id := range it.Event.RecordIDs {
			if _, ok := marks[it.Event.Entity][id]; ok {
				ids[it.Event.Entity] = append(ids[it.Event.Entity], id)
			}
		}
	}
	for entity, list := range ids {
		now, err := s.StaleMarks(ctx, entity, list)
		if err != nil {
			return err
		}
		for _, id := range list {
			if now[id] != marks[entity][id] {
				if p.keepStale == nil {
					p.keepStale = map[string]bool{}
				}
				p.keepStale[entity+"/"+id] = true
			}
		}
	}
	return nil
}

// loadGroups reads opportunity groups in one round trip.
func (s *Store) loadGroups(ctx context.Context, ids []string) (map[string]*loaded, error) {
	stored, err := s.r.LoadGroups(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*loaded, len(stored))
	for id, st := range stored {
		out[id] = &loaded{g: st.Group, rev: st.Rev, badRev: st.BadRev}
	}
	return out, nil
}

// expectations remembers, per partition, the position this process last
// read or wrote, to detect a Redis that lost writes.
type expectations struct {
	mu sync.Mutex
	m  map[string]string
}

func newExpectations() expectations { return expectations{m: map[string]string{}} }

func (e *expectations) get(field string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.m[field]
	return v, ok
}

func (e *expectations) set(field, v string) {
	e.mu.Lock()
	e.m[field] = v
	e.mu.Unlock()
}

// seenSet remembers the schema ids whose fields are in the catalog.
type seenSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func newSeenSet() seenSet { return seenSet{m: map[string]bool{}} }

func (s *seenSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *seenSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[id] {
		return false
	}
	s.m[id] = true
	return true
}

// recordSchemas adds the fields of writer schemas not seen before by this
// process to the constraint catalog. It is idempotent metadata, so it is
// written outside the apply scripts.
func (s *Store) recordSchemas(ctx context.Context, items []Item) error {
	var fresh []*cdc.Event
	seen := map[string]bool{}
	for _, it := range items {
		ev := it.Event
		if ev == nil || !knownEntity(ev.Entity) || ev.SchemaID == "" || len(ev.Schema) == 0 || seen[ev.SchemaID] || s.schemas.has(ev.SchemaID) {
			continue
		}
		seen[ev.SchemaID] = true
		fresh = append(fresh, ev)
	}
	if len(fresh) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, ev := range fresh {
		args := make([]any, 0, 2*len(ev.Schema))
		for _, f := range ev.Schema {
			b, _ := json.Marshal(replica.CatalogEntry{Type: f.Kind.String(), SalesforceType: f.SalesforceType})
			args = append(args, ev.Entity+"."+f.Name, string(b))
		}
		pipe.HSet(ctx, s.k.Catalog(), args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing the field catalog: %w", err)
	}
	for _, ev := range fresh {
		s.schemas.add(ev.SchemaID)
	}
	return nil
}
