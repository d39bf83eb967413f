package state

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/triggers"
)

// build turns a batch into script calls (see tx) chained by the partition
// position: each call expects the position the previous one left and
// stores the position after the last message it completed. Messages that
// write nothing only move the position of the call they fall in.
//
// With a position, a call that has completed no message yet takes more
// changes even when full: a call after it would expect the same position
// as it, so if it were refused (a group moved) the next call could still
// apply and store a position past the changes it did not write. A message
// with more changes than a call takes is therefore split at most once,
// after a call that completed a message before it.
func (s *Store) build(p *plan, field, expect string, items []Item) []*tx {
	var txs []*tx
	var cur *tx
	now := s.cfg.Now()
	open := func() *tx {
		if cur == nil || cur.full(s.txChanges) && (field == "" || cur.posNew != "") {
			cur = newTx(s.k, field, expect)
			cur.cs = p.camp
			txs = append(txs, cur)
		}
		return cur
	}
	done := func(next string) {
		if field != "" && next != "" {
			open().posNew = next
			expect = next
		}
	}
	for _, it := range items {
		if testHookBuild != nil {
			testHookBuild(it)
		}
		next := ""
		if it.Msg != nil {
			next = strconv.FormatInt(it.Msg.Offset+1, 10)
		}
		switch {
		case it.DeadLetter != nil:
			t := open()
			s.deadLetter(t, it)
			t.counts.add(BatchResult{DeadLetters: map[string]int{it.DeadLetter.Stage: 1}})
			done(next)
			continue
		case it.Event != nil && it.Event.ChangeType == cdc.GapOverflow && knownEntity(it.Event.Entity):
			t := open()
			s.resync(t, it.Event)
			t.counts.add(BatchResult{Resync: map[string]int{it.Event.Entity: 1}})
			done(next)
			continue
		case !applicable(it.Event) && !(p.snapshots && it.Event != nil && it.Event.ChangeType == cdc.Snapshot && knownEntity(it.Event.Entity)):
			done(next)
			continue
		}
		ev := it.Event
		resynced := false
		for _, id := range ev.RecordIDs {
			if wildcard(id) {
				// A wildcard names no record we can mark: ask for an entity resync.
				if !resynced {
					t := open()
					s.resync(t, ev)
					t.counts.add(BatchResult{Resync: map[string]int{ev.Entity: 1}})
					resynced = true
				}
				continue
			}
			oppID, ok := p.recordOpp(ev, id)
			if !ok {
				p.unresolved++
				continue
			}
			l := p.groups[oppID]
			// Only a role change moves who holds roles on the opportunity.
			var before, after map[string]int
			if ev.Entity != cdc.EntityOpportunity {
				before = holdersOf(l.g)
			}
			pr := priorOf(l.g)
			if ev.Entity == cdc.EntityContactRole && l.g.Roles[id] == nil {
				pr.newRole = id
			}
			res := triggers.Apply(s.tcfg, l.g, triggers.Change{Event: ev, RecordID: id, NowMillis: now.UnixMilli(),
				KeepStale: p.keepStale[ev.Entity+"/"+id]})
			if res.Duplicate {
				p.duplicates++
				continue
			}
			if p.quiet {
				res.Triggers = nil
			}
			t := open()
			t.guard(oppID, l)
			l.rev++
			t.changes++
			c := BatchResult{Applied: 1}
			if ev.Entity != cdc.EntityOpportunity {
				after = holdersOf(l.g)
			} else {
				l.snapshot = ""
			}
			s.writeChange(t, l, ev, id, pr, res, before, after)
			if res.Stale && !resynced {
				s.resync(t, ev)
				c.Resync = map[string]int{ev.Entity: 1}
				resynced = true
			}
			if len(res.Triggers) > 0 {
				c.Triggers = map[string]int{}
				for _, tr := range res.Triggers {
					c.Triggers[tr.Kind]++
				}
			}
			t.counts.add(c)
		}
		done(next)
	}
	return txs
}

func knownEntity(e string) bool {
	return e == cdc.EntityOpportunity || e == cdc.EntityContactRole
}

// holdersOf counts, per person, the non-deleted contact roles they hold on
// the group's opportunity.
func holdersOf(g *triggers.Group) map[string]int {
	out := map[string]int{}
	for _, r := range g.Roles {
		if r.Deleted || r.ContactID == "" {
			continue
		}
		out[r.ContactID]++
	}
	return out
}

// writeChange adds the writes of one applied record change to t.
func (s *Store) writeChange(t *tx, l *loaded, ev *cdc.Event, recordID string, pr prior, res triggers.Result,
	before, after map[string]int) {
	g := l.g
	o := &g.Opp
	oppKey := s.k.Opp(o.ID)

	// The opportunity hash: metadata (cheap), then the written fields. A
	// contact-role change never alters the opportunity's own fields or
	// flags, so they are only written for opportunity changes.
	if ev.Entity == cdc.EntityOpportunity || len(res.Fields) > 0 {
		t.hset(oppKey, replica.HKnown, replica.Flag(o.Known), replica.HDeleted, replica.Flag(o.Deleted), replica.HStale, replica.Flag(o.Stale),
			replica.HVersion, o.Version.String(), replica.HLife, o.Life.String())
		for _, f := range res.Fields {
			v, ok := o.Fields[f]
			if !ok {
				v = cdc.Null
			}
			t.hset(oppKey, "f:"+f, replica.EncodeField(o.FieldVersions[f], v))
		}
	}
	if ev.Entity == cdc.EntityOpportunity && o.Known && !pr.known {
		t.sadd(s.k.Opps(), o.ID)
	}
	if ev.Entity == cdc.EntityOpportunity && pr.stale && !o.Stale {
		t.srem(s.k.Stale(cdc.EntityOpportunity), o.ID)
		t.hdel(s.k.StaleGaps(cdc.EntityOpportunity), o.ID)
	}
	if res.Stale {
		t.sadd(s.k.Stale(ev.Entity), recordID)
		t.hset(s.k.StaleGaps(ev.Entity), recordID, ev.Version.String())
	}

	s.writeRoles(t, g, res.Roles, ev.Entity, pr)
	s.writeHolders(t, o.ID, before, after, ev.Version.CommitTimestamp)
	s.writeTriggers(t, l, res.Triggers)
	// Readers of the replica (the API's in-memory view) tail the changes
	// stream, one entry per call naming the groups it wrote.
	t.note(o.ID)
}

// prior is what a change needs to know of the group before it, to skip
// index writes that cannot change anything.
type prior struct {
	known, stale bool
	pending      map[string]bool // roles pending before
	staleRoles   map[string]bool // roles stale before
	newRole      string          // a role the group did not have
}

func priorOf(g *triggers.Group) prior {
	p := prior{known: g.Opp.Known, stale: g.Opp.Stale}
	for id, r := range g.Roles {
		if r.Pending {
			if p.pending == nil {
				p.pending = map[string]bool{}
			}
			p.pending[id] = true
		}
		if r.Stale {
			if p.staleRoles == nil {
				p.staleRoles = map[string]bool{}
			}
			p.staleRoles[id] = true
		}
	}
	return p
}

// writeRoles writes the contact roles a change touched, and their place in
// the pending and stale indexes; a role new to the group also gets its
// role → opportunity mapping, which never changes afterwards.
func (s *Store) writeRoles(t *tx, g *triggers.Group, ids []string, entity string, pr prior) {
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		r := g.Roles[id]
		t.hset(s.k.Roles(g.Opp.ID), id, replica.EncodeRole(r))
		if id == pr.newRole {
			t.hset(s.k.RoleOpp(), id, g.Opp.ID)
		}
		member := g.Opp.ID + "|" + id
		if r.Pending {
			t.zadd(s.k.Pending(), r.Deadline, member)
		} else if pr.pending[id] {
			t.zrem(s.k.Pending(), member)
		}
		if entity == cdc.EntityContactRole && !r.Stale && pr.staleRoles[id] {
			t.srem(s.k.Stale(cdc.EntityContactRole), id)
			t.hdel(s.k.StaleGaps(cdc.EntityContactRole), id)
		}
	}
}

// writeHolders writes the change in who holds roles on the opportunity:
// each person's opportunity → role count hash, and the people index for a
// person new to it.
func (s *Store) writeHolders(t *tx, oppID string, before, after map[string]int, ts int64) {
	people := make([]string, 0, len(after))
	for p := range after {
		people = append(people, p)
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			people = append(people, p)
		}
	}
	sort.Strings(people)
	for _, p := range people {
		b, a := before[p], after[p]
		if a != b {
			if a > 0 {
				t.hset(s.k.Person(p), oppID, strconv.Itoa(a))
			} else {
				t.hdel(s.k.Person(p), oppID)
			}
		}
		if _, had := before[p]; !had {
			t.zaddGT(s.k.People(), ts, p)
		}
	}
}

// writeTriggers appends trigger entries and the activity they record.
func (s *Store) writeTriggers(t *tx, l *loaded, trs []triggers.Trigger) {
	if len(trs) == 0 {
		return
	}
	g := l.g
	snapshot := "null"
	if g.Opp.Known {
		// Rendered once per state of the opportunity: the changes of its
		// contact roles share it.
		if l.snapshot == "" {
			l.snapshot = snapshotJSON(s.cur.Snapshot(&g.Opp))
		}
		snapshot = l.snapshot
	}
	type commonKey struct {
		entity, record string
		version        cdc.Version
		noSnapshot     bool
	}
	commons := map[commonKey]string{} // source+snapshot → common set id
	type personActivity struct {
		members     []any // score, member pairs
		first, last int64
	}
	acts := map[string]*personActivity{}
	var order []string
	var written []writtenTrigger // for campaigns
	for _, tr := range trs {
		snap := snapshot
		if tr.NoSnapshot {
			snap = "null"
		}
		src := tr.Source
		ckey := commonKey{src.Entity, src.RecordID, src.Version, tr.NoSnapshot}
		cid, ok := commons[ckey]
		if !ok {
			cid = t.common(
				"org_id", s.cfg.Org,
				"opportunity_id", tr.OpportunityID,
				"occurred_at", cdc.FormatMillis(src.Version.CommitTimestamp),
				"transaction_key", src.Header.TransactionKey,
				"sequence_number", src.Header.SequenceNumber,
				"commit_user", src.Header.CommitUser,
				"change_origin", src.Header.ChangeOrigin,
				"currency", s.cfg.Currency,
				"opportunity", snap)
			commons[ckey] = cid
		}
		fields := []any{"*",
			"trigger", tr.Kind,
			"event_id", tr.EventID,
			"person_id", tr.PersonID,
		}
		if tr.Kind == cdc.TriggerUpdated {
			fields = append(fields, "field", tr.Field, "old_value", tr.Old.JSON(), "new_value", tr.New.JSON(), "roles", rolesJSON(tr.Roles))
		} else {
			fields = append(fields, "contact_role_id", tr.ContactRoleID, "role", tr.Role,
				"is_primary", strconv.FormatBool(tr.IsPrimary), "reason", tr.Reason)
		}
		t.trigger(s.k.Trigger(tr.Kind), cid, fields...)
		if s.camps != nil {
			written = append(written, writtenTrigger{tr: tr, common: cid, own: fields})
		}
		at := src.Version.CommitTimestamp
		pa := acts[tr.PersonID]
		if pa == nil {
			pa = &personActivity{}
			acts[tr.PersonID] = pa
			order = append(order, tr.PersonID)
		}
		if len(pa.members) == 0 || at < pa.first {
			pa.first = at
		}
		pa.members = append(pa.members, at, replica.ActivityJSON(tr, at))
		pa.last = max(pa.last, at)
	}
	// One variadic ZADD per person; activity older than the retention is
	// pruned in the background (PruneActivity), not on this hot path.
	for _, p := range order {
		pa := acts[p]
		t.zaddNew(s.k.Activity(p), pa.members...)
		t.wroteActivity(p, pa.first)
		t.zaddGT(s.k.People(), pa.last, p)
	}
	s.writeCampaigns(t, l, written)
}

// rolesJSON renders the roles of an updated entry.
func rolesJSON(roles []triggers.RoleRef) string {
	b := make([]byte, 0, 96*len(roles)+2)
	b = append(b, '[')
	for i, r := range roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"contact_role_id":`...)
		b = cdc.AppendJSONString(b, r.ContactRoleID)
		b = append(b, `,"role":`...)
		b = cdc.AppendJSONString(b, r.Role)
		b = append(b, `,"is_primary":`...)
		b = strconv.AppendBool(b, r.IsPrimary)
		b = append(b, '}')
	}
	return string(append(b, ']'))
}

// resync appends a resync notice for a gap event.
func (s *Store) resync(t *tx, ev *cdc.Event) {
	ids, _ := json.Marshal(ev.RecordIDs)
	t.xadd(s.k.Stream(replica.StreamResync), "*",
		"entity", ev.Entity,
		"record_ids", string(ids),
		"change_type", string(ev.ChangeType),
		"commit_timestamp", cdc.FormatMillis(ev.Version.CommitTimestamp),
		"transaction_key", ev.Header.TransactionKey)
}

// deadLetter appends a dead-letter entry with the original bytes.
func (s *Store) deadLetter(t *tx, it Item) {
	m := it.Msg
	if m == nil { // an event that did not come from Kafka (ApplyEvents)
		m = &cdc.Message{}
	}
	headers := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		headers[h.Key] = base64.StdEncoding.EncodeToString(h.Value)
	}
	hj, _ := json.Marshal(headers)
	t.xadd(s.k.Stream(replica.StreamDLQ), "*",
		"topic", m.Topic,
		"partition", m.Partition,
		"offset", m.Offset,
		"key", base64.StdEncoding.EncodeToString(m.Key),
		"value", base64.StdEncoding.EncodeToString(m.Value),
		"headers", string(hj),
		"stage", it.DeadLetter.Stage,
		"reason", it.DeadLetter.Reason,
		"error", it.DeadLetter.Error,
		"at", s.cfg.Now().UTC().Format(time.RFC3339))
}

// snapshotJSON renders a snapshot as a JSON object with sorted keys, as
// encoding/json would, without reflection.
func snapshotJSON(m map[string]cdc.Value) string {
	names := make([]string, 0, len(m))
	size := 2
	for k, v := range m {
		names = append(names, k)
		size += len(k) + len(v.Str) + 24
	}
	sort.Strings(names)
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = cdc.AppendJSONString(b, k)
		b = append(b, ':')
		b = m[k].AppendJSON(b)
	}
	return string(append(b, '}'))
}
