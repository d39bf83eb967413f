package synth

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

// GenConfig configures a Generator. Zero values take the defaults in brackets.
type GenConfig struct {
	Org  string // org id used in event ids [default]
	Seed uint64 // same seed, same traffic

	Opportunities int // opportunities the org grows to [50]
	Contacts      int // contacts in the org [4×Opportunities]

	Start time.Time     // commit time of the first change [2026-01-05T09:00:00Z]
	Step  time.Duration // mean time between transactions [800ms]

	// Probabilities per transaction; 0 takes the default, negative disables.
	GapRate         float64 // GAP_UPDATE of an opportunity [0.01]
	DeleteRate      float64 // opportunity DELETE [0.02]
	UndeleteRate    float64 // opportunity UNDELETE of a deleted one [0.01]
	MultiRecordRate float64 // one stage update event naming 2–3 opportunities [0.02]

	// Writer schemas whose fields the generator may set [schemas.PubSub];
	// pass the connector schemas when encoding connector-shaped events (their
	// fields are a subset, so such traffic encodes in both shapes). A schema
	// that does not parse falls back to the default.
	OpportunitySchema, ContactRoleSchema string

	// IgnoreFields for the oracle [DefaultIgnoreFields].
	IgnoreFields []string
	// NoOracle skips the ground truth (Expected and Truth stay empty), for
	// load generation where memory must not grow with the traffic.
	NoOracle bool
}

func rate(r, def float64) float64 {
	switch {
	case r < 0:
		return 0
	case r == 0:
		return def
	}
	return r
}

func (c GenConfig) withDefaults() GenConfig {
	if c.Org == "" {
		c.Org = "default"
	}
	if c.Opportunities <= 0 {
		c.Opportunities = 50
	}
	if c.Contacts <= 0 {
		c.Contacts = 4 * c.Opportunities
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	if c.Step <= 0 {
		c.Step = 800 * time.Millisecond
	}
	c.GapRate = rate(c.GapRate, 0.01)
	c.DeleteRate = rate(c.DeleteRate, 0.02)
	c.UndeleteRate = rate(c.UndeleteRate, 0.01)
	c.MultiRecordRate = rate(c.MultiRecordRate, 0.02)
	return c
}

type genOpp struct {
	id      string
	account int
	fields  map[string]cdc.Value // non-null fields
	deleted bool
	roles   []*genRole
}

type genRole struct {
	id, opp, contact string
	o                *genOpp
	fields           map[string]cdc.Value
	deleted          bool
}

// idxSet is a set with O(1) add, remove and random pick; its order depends
// only on the operations, which keeps the generator deterministic.
type idxSet[T comparable] struct {
	items []T
	pos   map[T]int
}

func (s *idxSet[T]) put(x T, in bool) {
	if s.pos == nil {
		s.pos = map[T]int{}
	}
	i, has := s.pos[x]
	switch {
	case in && !has:
		s.pos[x] = len(s.items)
		s.items = append(s.items, x)
	case !in && has:
		last := s.items[len(s.items)-1]
		s.items[i] = last
		s.pos[last] = i
		s.items = s.items[:len(s.items)-1]
		delete(s.pos, x)
	}
}

type contact struct {
	id      string
	account int
}

// Generator produces realistic change traffic for a synthetic org, in commit
// order, and keeps the ground truth through an Oracle. It is deterministic
// for a GenConfig and not safe for concurrent use.
type Generator struct {
	cfg GenConfig
	rng *rand.Rand

	oppFields, roleFields []string // data fields of the writer schemas, in order
	oppHas, roleHas       map[string]bool

	ts, commitNumber int64
	ids              map[string]uint64
	users            []string
	accounts         []string // account ids
	accountNames     []string
	contacts         []contact

	opps           []*genOpp
	roles          []*genRole
	accountContact [][]int // contact indexes by account
	contactIdx     []int   // 0..len(contacts)-1

	// Indexes that keep every pick O(1) however big the org grows.
	live, open, deleted   idxSet[*genOpp]
	liveRoleSet, delRoles idxSet[*genRole] // live roles on live opportunities; deleted roles

	queue  []Change
	oracle *Oracle
}

// NewGenerator returns a Generator for cfg.
func NewGenerator(cfg GenConfig) *Generator {
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		ids:    map[string]uint64{},
		oracle: NewOracle(cfg.Org, cfg.IgnoreFields),
		ts:     cfg.Start.UnixMilli() - 1,
	}
	g.commitNumber = 10_000_000_000 + g.rng.Int64N(1_000_000_000)
	g.oppFields, g.oppHas = schemaFields(cfg.OpportunitySchema, cdc.EntityOpportunity)
	g.roleFields, g.roleHas = schemaFields(cfg.ContactRoleSchema, cdc.EntityContactRole)
	for i := 0; i < 6; i++ {
		g.users = append(g.users, g.newID("005"))
	}
	nAccounts := max(1, cfg.Contacts/4)
	for i := 0; i < nAccounts; i++ {
		g.accounts = append(g.accounts, g.newID("001"))
		name := companyWords[i%len(companyWords)] + " " + companyKinds[(i/len(companyWords))%len(companyKinds)]
		if i >= len(companyWords)*len(companyKinds) {
			name += fmt.Sprintf(" %d", i/(len(companyWords)*len(companyKinds))+1)
		}
		g.accountNames = append(g.accountNames, name)
	}
	g.accountContact = make([][]int, nAccounts)
	for i := 0; i < cfg.Contacts; i++ {
		a := g.rng.IntN(nAccounts)
		g.contacts = append(g.contacts, contact{id: g.newID("003"), account: a})
		g.accountContact[a] = append(g.accountContact[a], i)
	}
	return g
}

func schemaFields(text, entity string) ([]string, map[string]bool) {
	ws, err := parseWriterSchema(text)
	if err != nil {
		ws, err = parseWriterSchema(schemas.PubSub(entity))
	}
	if err != nil {
		return nil, map[string]bool{}
	}
	names := ws.dataFieldNames()
	has := make(map[string]bool, len(names))
	for _, n := range names {
		has[n] = true
	}
	return names, has
}

func (g *Generator) newID(prefix string) string {
	n, ok := g.ids[prefix]
	if !ok {
		n = uint64(g.rng.IntN(62 * 62 * 62 * 62))
	}
	g.ids[prefix] = n + 1
	return SalesforceID(prefix, n)
}

// Next returns the next change in commit order and records its expected
// trigger entries.
func (g *Generator) Next() Change {
	for len(g.queue) == 0 {
		g.step()
	}
	ch := g.queue[0]
	g.queue = g.queue[1:]
	if !g.cfg.NoOracle {
		g.oracle.Apply(ch)
	}
	return ch
}

// Expected returns the trigger entries expected for every change returned
// by Next so far, in commit order.
func (g *Generator) Expected() []Expected { return g.oracle.Expected() }

// Truth returns the true org state after every change returned by Next so
// far, with the expected entries. A gap event's hidden change (a new
// LastModifiedDate) is part of the truth though no event carries it.
func (g *Generator) Truth() Truth { return g.oracle.Truth() }

// txn is one transaction being generated.
type txn struct {
	g                 *Generator
	ts, commitNumber  int64
	seq               int64
	key, user, origin string
}

func (g *Generator) begin() *txn {
	step := int64(g.rng.ExpFloat64() * float64(g.cfg.Step.Milliseconds()))
	g.ts += 1 + step
	g.commitNumber += 1 + g.rng.Int64N(40)
	t := &txn{g: g, ts: g.ts, commitNumber: g.commitNumber,
		user:   g.users[g.rng.IntN(len(g.users))],
		origin: origins[g.rng.IntN(len(origins))]}
	t.key = fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", g.rng.Uint32(), g.rng.Uint32()&0xffff,
		g.rng.Uint32()&0xffff, g.rng.Uint32()&0xffff, g.rng.Uint64()&0xffffffffffff)
	return t
}

func (t *txn) now() cdc.Value { return cdc.DateTimeFromMillis(t.ts) }

func (t *txn) emit(entity string, ct cdc.ChangeType, ids []string, opp string, fields []cdc.Field) *Change {
	t.seq++
	t.g.queue = append(t.g.queue, Change{
		Entity: entity, Type: ct, RecordIDs: ids, OpportunityID: opp,
		Version: cdc.Version{CommitTimestamp: t.ts, CommitNumber: t.commitNumber, SequenceNumber: t.seq},
		Header:  cdc.EventHeader{TransactionKey: t.key, SequenceNumber: t.seq, CommitUser: t.user, ChangeOrigin: t.origin},
		Fields:  fields,
	})
	return &t.g.queue[len(t.g.queue)-1]
}

// step generates one transaction into the queue (or nothing, when the
// chosen action finds nothing to act on).
func (g *Generator) step() {
	r := g.rng.Float64()
	c := g.cfg
	switch {
	case r < c.GapRate:
		g.gap()
		return
	case r < c.GapRate+c.DeleteRate:
		g.deleteOpp()
		return
	case r < c.GapRate+c.DeleteRate+c.UndeleteRate:
		g.undeleteOpp()
		return
	case r < c.GapRate+c.DeleteRate+c.UndeleteRate+c.MultiRecordRate:
		g.multiStage()
		return
	}
	createW := 3
	if len(g.live.items) < c.Opportunities {
		createW = 30
	}
	actions := []struct {
		w  int
		fn func() bool
	}{
		{createW, g.createOpp},
		{22, g.stageChange},
		{10, g.amountChange},
		{8, g.closeDateChange},
		{6, g.otherChange},
		{14, g.addRole},
		{4, g.removeRole},
		{5, g.roleChange},
		{3, g.roleContactChange},
		{1, g.undeleteRole},
	}
	total := 0
	for _, a := range actions {
		total += a.w
	}
	n := g.rng.IntN(total)
	for _, a := range actions {
		if n < a.w {
			if !a.fn() {
				g.createOpp()
			}
			return
		}
		n -= a.w
	}
}

// set puts v into a field map when the schema has the field (null deletes).
func set(m map[string]cdc.Value, has map[string]bool, name string, v cdc.Value) {
	if !has[name] {
		return
	}
	if v.IsNull() {
		delete(m, name)
		return
	}
	m[name] = v
}

func (g *Generator) pick(list []string) string { return list[g.rng.IntN(len(list))] }

func (g *Generator) amount() cdc.Value {
	a := float64(5000 + 500*g.rng.IntN(400))
	if g.rng.IntN(7) == 0 {
		a += 0.5
	}
	return cdc.Number(a)
}

// reindex updates the pick indexes after o or its roles changed.
func (g *Generator) reindex(o *genOpp) {
	g.live.put(o, !o.deleted)
	g.open.put(o, !o.deleted && !o.fields["IsClosed"].Bool)
	g.deleted.put(o, o.deleted)
	for _, r := range o.roles {
		g.reindexRole(r)
	}
}

func (g *Generator) reindexRole(r *genRole) {
	g.liveRoleSet.put(r, !r.deleted && !r.o.deleted)
	g.delRoles.put(r, r.deleted)
}

// pickFrom returns a random element of items satisfying ok (nil = any): a
// few random probes, then a scan from a random offset.
func pickFrom[T any](g *Generator, items []T, ok func(T) bool) (T, bool) {
	var zero T
	n := len(items)
	if n == 0 {
		return zero, false
	}
	for k := 0; k < 16; k++ {
		if x := items[g.rng.IntN(n)]; ok == nil || ok(x) {
			return x, true
		}
	}
	start := g.rng.IntN(n)
	for k := 0; k < n; k++ {
		if x := items[(start+k)%n]; ok(x) {
			return x, true
		}
	}
	return zero, false
}

func (g *Generator) pickOpen() *genOpp {
	o, _ := pickFrom(g, g.open.items, nil)
	return o
}

func (g *Generator) pickLive() *genOpp {
	o, _ := pickFrom(g, g.live.items, nil)
	return o
}

// allFields lists every non-null field of m in schema order, as changed.
func allFields(order []string, m map[string]cdc.Value) []cdc.Field {
	var out []cdc.Field
	for _, n := range order {
		if v, ok := m[n]; ok {
			out = append(out, F(n, v))
		}
	}
	return out
}

// diff lists, in schema order, the proposed fields whose value differs
// from cur (a Null proposal for a present field is a nulled field).
func diff(order []string, cur, proposed map[string]cdc.Value) []cdc.Field {
	var out []cdc.Field
	for _, n := range order {
		nv, ok := proposed[n]
		if !ok {
			continue
		}
		if old, had := cur[n]; (had && !old.Equal(nv)) || (!had && !nv.IsNull()) {
			out = append(out, F(n, nv))
		}
	}
	return out
}

// apply writes changed fields into a field map.
func apply(m map[string]cdc.Value, fields []cdc.Field) {
	for _, f := range fields {
		if f.Value.IsNull() {
			delete(m, f.Name)
		} else {
			m[f.Name] = f.Value
		}
	}
}

// update emits an UPDATE of opportunity o with the proposed values (plus
// LastModifiedDate/ById), if anything besides those really changes.
func (g *Generator) update(t *txn, o *genOpp, proposed map[string]cdc.Value) bool {
	fields := g.oppDiff(t, o, proposed)
	if fields == nil {
		return false
	}
	apply(o.fields, fields)
	g.reindex(o)
	t.emit(cdc.EntityOpportunity, cdc.Update, []string{o.id}, o.id, fields)
	return true
}

func (g *Generator) oppDiff(t *txn, o *genOpp, proposed map[string]cdc.Value) []cdc.Field {
	p := make(map[string]cdc.Value, len(proposed)+2)
	for k, v := range proposed {
		if g.oppHas[k] {
			p[k] = v
		}
	}
	fields := diff(g.oppFields, o.fields, p)
	if len(fields) == 0 {
		return nil
	}
	p["LastModifiedDate"] = t.now()
	p["LastModifiedById"] = cdc.String(t.user)
	return diff(g.oppFields, o.fields, p)
}

func (g *Generator) createOpp() bool {
	t := g.begin()
	o := &genOpp{id: g.newID("006"), account: g.rng.IntN(len(g.accounts)), fields: map[string]cdc.Value{}}
	has := g.oppHas
	m := o.fields
	stage := Stages[[]int{0, 0, 0, 1, 1, 2, 3, 4, 6}[g.rng.IntN(9)]]
	set(m, has, "AccountId", cdc.String(g.accounts[o.account]))
	set(m, has, "IsPrivate", cdc.Bool(false))
	set(m, has, "Name", cdc.String(g.accountNames[o.account]+" - "+g.pick(products)))
	if g.rng.IntN(3) == 0 {
		set(m, has, "Description", cdc.String("Inbound interest in "+g.pick(products)))
	}
	for _, f := range stage.Fields() {
		set(m, has, f.Name, f.Value)
	}
	set(m, has, "Amount", g.amount())
	set(m, has, "CloseDate", cdc.DateFromMillis(startOfDay(t.ts)+int64(14+g.rng.IntN(170))*86_400_000))
	if g.rng.IntN(5) != 0 {
		set(m, has, "Type", cdc.String(g.pick(oppTypes)))
	}
	if g.rng.IntN(4) != 0 {
		set(m, has, "LeadSource", cdc.String(g.pick(leadSources)))
	}
	if s := g.pick(nextSteps); s != "" {
		set(m, has, "NextStep", cdc.String(s))
	}
	set(m, has, "HasOpportunityLineItem", cdc.Bool(false))
	set(m, has, "OwnerId", cdc.String(g.pick(g.users)))
	set(m, has, "CreatedDate", t.now())
	set(m, has, "CreatedById", cdc.String(t.user))
	set(m, has, "LastModifiedDate", t.now())
	set(m, has, "LastModifiedById", cdc.String(t.user))
	set(m, has, "Region__c", cdc.String(g.pick(regions)))
	set(m, has, "Partner_Score__c", cdc.Number(float64(g.rng.IntN(1000))/10))
	set(m, has, "Seats__c", cdc.Number(float64(5*(1+g.rng.IntN(200)))))
	set(m, has, "Product_Lines__c", cdc.String(g.pick(productLines)))
	city := g.rng.IntN(len(cities))
	set(m, has, "Billing_Address__c.Street", cdc.String(streets[city]))
	set(m, has, "Billing_Address__c.City", cdc.String(cities[city][0]))
	set(m, has, "Billing_Address__c.Country", cdc.String(cities[city][1]))
	set(m, has, "CurrencyIsoCode", cdc.String("USD"))
	var primary *contact
	if g.rng.IntN(2) == 0 && has["ContactId"] {
		primary = g.pickContact(o)
		set(m, has, "ContactId", cdc.String(primary.id))
	}
	g.opps = append(g.opps, o)
	g.reindex(o)
	t.emit(cdc.EntityOpportunity, cdc.Create, []string{o.id}, o.id, allFields(g.oppFields, m))
	if primary != nil {
		// Created from a contact: Salesforce adds it as a blank-role OCR.
		g.createRole(t, o, primary.id, "")
	}
	return true
}

func startOfDay(ms int64) int64 { return ms - ms%86_400_000 }

// pickContact prefers a contact of the opportunity's account who holds no
// role on it yet.
func (g *Generator) pickContact(o *genOpp) *contact {
	on := map[string]bool{}
	for _, r := range o.roles {
		if !r.deleted {
			on[r.contact] = true
		}
	}
	free := func(i int) bool { return !on[g.contacts[i].id] }
	if same := g.accountContact[o.account]; len(same) > 0 && g.rng.IntN(4) != 0 {
		if i, ok := pickFrom(g, same, free); ok {
			return &g.contacts[i]
		}
	}
	if i, ok := pickFrom(g, g.allContacts(), free); ok {
		return &g.contacts[i]
	}
	// Everyone is on it already: a second role for someone.
	return &g.contacts[g.rng.IntN(len(g.contacts))]
}

func (g *Generator) allContacts() []int {
	if len(g.contactIdx) != len(g.contacts) {
		g.contactIdx = make([]int, len(g.contacts))
		for i := range g.contactIdx {
			g.contactIdx[i] = i
		}
	}
	return g.contactIdx
}

func (g *Generator) createRole(t *txn, o *genOpp, contactID, role string) {
	r := &genRole{id: g.newID("00K"), opp: o.id, o: o, contact: contactID, fields: map[string]cdc.Value{}}
	has := g.roleHas
	set(r.fields, has, "OpportunityId", cdc.String(o.id))
	set(r.fields, has, "ContactId", cdc.String(contactID))
	if role != "" {
		set(r.fields, has, "Role", cdc.String(role))
	}
	set(r.fields, has, "CreatedDate", t.now())
	set(r.fields, has, "CreatedById", cdc.String(t.user))
	set(r.fields, has, "LastModifiedDate", t.now())
	set(r.fields, has, "LastModifiedById", cdc.String(t.user))
	set(r.fields, has, "CurrencyIsoCode", cdc.String("USD"))
	o.roles = append(o.roles, r)
	g.roles = append(g.roles, r)
	g.reindexRole(r)
	t.emit(cdc.EntityContactRole, cdc.Create, []string{r.id}, o.id, allFields(g.roleFields, r.fields))
}

func (g *Generator) nextStage(cur string) Stage {
	i := stageIndex(cur)
	switch n := g.rng.IntN(10); {
	case i < 0:
		return Stages[0]
	case n == 0 && i > 0:
		return Stages[i-1] // pushed back
	case n == 1:
		return Stages[9] // lost
	case n == 2 || i >= 7:
		return Stages[8] // won
	default:
		return Stages[min(i+1+g.rng.IntN(2), 7)]
	}
}

func stageProposal(s Stage, t *txn) map[string]cdc.Value {
	p := map[string]cdc.Value{}
	for _, f := range s.Fields() {
		p[f.Name] = f.Value
	}
	p["LastStageChangeDate"] = t.now()
	return p
}

func (g *Generator) stageChange() bool {
	o := g.pickOpen()
	if o == nil {
		return false
	}
	t := g.begin()
	return g.update(t, o, stageProposal(g.nextStage(o.fields["StageName"].Str), t))
}

func (g *Generator) amountChange() bool {
	o := g.pickOpen()
	if o == nil {
		return false
	}
	t := g.begin()
	return g.update(t, o, map[string]cdc.Value{"Amount": g.amount()})
}

func (g *Generator) closeDateChange() bool {
	o := g.pickOpen()
	if o == nil {
		return false
	}
	t := g.begin()
	cur := startOfDay(t.ts)
	if d, err := time.Parse(cdc.DateLayout, o.fields["CloseDate"].Str); err == nil {
		cur = d.UnixMilli()
	}
	shift := int64(7+g.rng.IntN(40)) * 86_400_000
	if g.rng.IntN(4) == 0 {
		shift = -shift
	}
	return g.update(t, o, map[string]cdc.Value{"CloseDate": cdc.DateFromMillis(cur + shift)})
}

func (g *Generator) otherChange() bool {
	o := g.pickLive()
	if o == nil {
		return false
	}
	t := g.begin()
	p := map[string]cdc.Value{}
	switch g.rng.IntN(7) {
	case 0:
		if s := g.pick(nextSteps); s != "" {
			p["NextStep"] = cdc.String(s)
		} else {
			p["NextStep"] = cdc.Null
		}
	case 1:
		p["Type"] = cdc.String(g.pick(oppTypes))
	case 2:
		p["LeadSource"] = cdc.String(g.pick(leadSources))
	case 3:
		p["Region__c"] = cdc.String(g.pick(regions))
	case 4:
		p["Partner_Score__c"] = cdc.Number(float64(g.rng.IntN(1000)) / 10)
	case 5:
		p["OwnerId"] = cdc.String(g.pick(g.users))
	default:
		city := g.rng.IntN(len(cities))
		p["Billing_Address__c.Street"] = cdc.String(streets[city])
		p["Billing_Address__c.City"] = cdc.String(cities[city][0])
		p["Billing_Address__c.Country"] = cdc.String(cities[city][1])
	}
	return g.update(t, o, p)
}

func (g *Generator) addRole() bool {
	o := g.pickLive()
	if o == nil {
		return false
	}
	t := g.begin()
	g.createRole(t, o, g.pickContact(o).id, g.pick(Roles))
	return true
}

// pickRole picks a live role on a live opportunity; withPrimary allows the
// primary contact's roles (which the generator never removes or re-points,
// so Opportunity.ContactId stays consistent).
func (g *Generator) pickRole(withPrimary bool) *genRole {
	var ok func(*genRole) bool
	if !withPrimary {
		ok = func(r *genRole) bool { return r.o.fields["ContactId"].Str != r.contact }
	}
	r, _ := pickFrom(g, g.liveRoleSet.items, ok)
	return r
}

func (g *Generator) roleUpdate(t *txn, r *genRole, proposed map[string]cdc.Value) bool {
	fields := diff(g.roleFields, r.fields, proposed)
	if len(fields) == 0 {
		return false
	}
	proposed["LastModifiedDate"] = t.now()
	proposed["LastModifiedById"] = cdc.String(t.user)
	fields = diff(g.roleFields, r.fields, proposed)
	apply(r.fields, fields)
	t.emit(cdc.EntityContactRole, cdc.Update, []string{r.id}, r.opp, fields)
	return true
}

func (g *Generator) removeRole() bool {
	r := g.pickRole(false)
	if r == nil {
		return false
	}
	r.deleted = true
	g.reindexRole(r)
	g.begin().emit(cdc.EntityContactRole, cdc.Delete, []string{r.id}, r.opp, nil)
	return true
}

func (g *Generator) roleChange() bool {
	r := g.pickRole(true)
	if r == nil {
		return false
	}
	role := g.pick(Roles)
	v := cdc.String(role)
	if role == "" {
		v = cdc.Null
	}
	return g.roleUpdate(g.begin(), r, map[string]cdc.Value{"Role": v})
}

func (g *Generator) roleContactChange() bool {
	r := g.pickRole(false)
	if r == nil {
		return false
	}
	c := g.pickContact(r.o)
	if !g.roleUpdate(g.begin(), r, map[string]cdc.Value{"ContactId": cdc.String(c.id)}) {
		return false
	}
	r.contact = c.id
	return true
}

func (g *Generator) undeleteRole() bool {
	r, ok := pickFrom(g, g.delRoles.items, nil)
	if !ok || r.o.deleted {
		return false
	}
	t := g.begin()
	r.deleted = false
	g.reindexRole(r)
	set(r.fields, g.roleHas, "LastModifiedDate", t.now())
	set(r.fields, g.roleHas, "LastModifiedById", cdc.String(t.user))
	t.emit(cdc.EntityContactRole, cdc.Undelete, []string{r.id}, r.opp, allFields(g.roleFields, r.fields))
	return true
}

func (g *Generator) deleteOpp() {
	o := g.pickLive()
	if o == nil {
		return
	}
	o.deleted = true
	g.reindex(o)
	g.begin().emit(cdc.EntityOpportunity, cdc.Delete, []string{o.id}, o.id, nil)
}

func (g *Generator) undeleteOpp() {
	o, ok := pickFrom(g, g.deleted.items, nil)
	if !ok {
		return
	}
	t := g.begin()
	o.deleted = false
	g.reindex(o)
	set(o.fields, g.oppHas, "LastModifiedDate", t.now())
	set(o.fields, g.oppHas, "LastModifiedById", cdc.String(t.user))
	t.emit(cdc.EntityOpportunity, cdc.Undelete, []string{o.id}, o.id, allFields(g.oppFields, o.fields))
}

func (g *Generator) gap() {
	o := g.pickLive()
	if o == nil {
		return
	}
	t := g.begin()
	hidden := []cdc.Field{F("LastModifiedDate", t.now())}
	apply(o.fields, hidden)
	ch := t.emit(cdc.EntityOpportunity, cdc.GapUpdate, []string{o.id}, o.id, nil)
	ch.hidden = hidden
}

// multiStage moves 2–3 open opportunities that share a stage (and so the
// same changed fields) to the next stage in one event, like a mass update.
func (g *Generator) multiStage() {
	byStage := map[string][]*genOpp{}
	var stages []string
	for _, o := range g.open.items {
		s := o.fields["StageName"].Str
		if byStage[s] == nil {
			stages = append(stages, s)
		}
		byStage[s] = append(byStage[s], o)
	}
	var cands []string
	for _, s := range stages {
		if len(byStage[s]) >= 2 {
			cands = append(cands, s)
		}
	}
	if len(cands) == 0 {
		return
	}
	from := cands[g.rng.IntN(len(cands))]
	to := Stages[min(stageIndex(from)+1, len(Stages)-2)]
	t := g.begin()
	t.origin = origins[0] // a data-loader mass update
	proposal := stageProposal(to, t)
	// Group by the exact changed-field list: one event body must fit all.
	groups := map[string][]*genOpp{}
	var keys []string
	for _, o := range byStage[from] {
		fields := g.oppDiff(t, o, proposal)
		if fields == nil {
			continue
		}
		k := fmt.Sprint(fields)
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], o)
	}
	for _, k := range keys {
		grp := groups[k]
		if len(grp) < 2 {
			continue
		}
		g.rng.Shuffle(len(grp), func(i, j int) { grp[i], grp[j] = grp[j], grp[i] })
		grp = grp[:min(len(grp), 2+g.rng.IntN(2))]
		fields := g.oppDiff(t, grp[0], proposal)
		ids := make([]string, len(grp))
		for i, o := range grp {
			ids[i] = o.id
			apply(o.fields, fields)
			g.reindex(o)
		}
		t.emit(cdc.EntityOpportunity, cdc.Update, ids, ids[0], fields)
		return
	}
}
