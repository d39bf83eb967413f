package synth

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/schemas"
)

func TestSalesforceID(t *testing.T) {
	if got := idChecksum("001A0000006Vm9r"); got != "IAC" {
		t.Errorf("checksum of 001A0000006Vm9r = %s, want IAC", got)
	}
	seen := map[string]bool{}
	for n := uint64(0); n < 1000; n++ {
		id := SalesforceID("006", n*7919)
		if len(id) != 18 || !strings.HasPrefix(id, "006") || id[15:] != idChecksum(id[:15]) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func take(g *Generator, n int) []Change {
	out := make([]Change, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func TestGeneratorDeterministic(t *testing.T) {
	cfg := GenConfig{Seed: 42, Opportunities: 20}
	a, b := NewGenerator(cfg), NewGenerator(cfg)
	ca, cb := take(a, 500), take(b, 500)
	if !reflect.DeepEqual(ca, cb) {
		t.Fatal("same seed, different changes")
	}
	if !reflect.DeepEqual(a.Expected(), b.Expected()) || !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Fatal("same seed, different oracle")
	}
	cfg.Seed = 43
	if reflect.DeepEqual(ca, take(NewGenerator(cfg), 500)) {
		t.Fatal("different seeds, same changes")
	}
}

// TestGeneratorInvariants replays generated traffic into an independent
// field store and checks what every change claims.
func TestGeneratorInvariants(t *testing.T) {
	g := NewGenerator(GenConfig{Seed: 7, Opportunities: 40, Contacts: 60, GapRate: 0.03, DeleteRate: 0.03, UndeleteRate: 0.02, MultiRecordRate: 0.05})
	state := map[string]map[string]cdc.Value{}
	var last cdc.Version
	counts := map[string]int{}
	for i := 0; i < 5000; i++ {
		ch := g.Next()
		if !ch.Version.Newer(last) {
			t.Fatalf("change %d: version %v not newer than %v", i, ch.Version, last)
		}
		if ch.Header.SequenceNumber != ch.Version.SequenceNumber || ch.Header.SequenceNumber < 1 {
			t.Fatalf("change %d: sequence number %d / %d", i, ch.Header.SequenceNumber, ch.Version.SequenceNumber)
		}
		if ch.Version.SequenceNumber == 1 && ch.Version.CommitTimestamp == last.CommitTimestamp {
			t.Fatalf("change %d: a new transaction at the same commit time", i)
		}
		last = ch.Version
		counts[ch.Entity+" "+string(ch.Type)]++
		if len(ch.RecordIDs) > 1 {
			counts["multi"]++
		}
		if ch.Key() == "" || !strings.HasPrefix(ch.Key(), "006") {
			t.Fatalf("change %d: key %q is not an opportunity id", i, ch.Key())
		}
		for _, id := range ch.RecordIDs {
			want := map[string]string{cdc.EntityOpportunity: "006", cdc.EntityContactRole: "00K"}[ch.Entity]
			if len(id) != 18 || !strings.HasPrefix(id, want) {
				t.Fatalf("change %d: record id %q", i, id)
			}
		}
		switch ch.Type {
		case cdc.Create, cdc.Undelete:
			for _, id := range ch.RecordIDs {
				state[id] = map[string]cdc.Value{}
				apply(state[id], ch.Fields)
			}
		case cdc.Update:
			if _, ok := ch.Field("LastModifiedDate"); !ok {
				t.Fatalf("change %d: UPDATE without LastModifiedDate", i)
			}
			real := 0
			for _, f := range ch.Fields {
				if f.Name != "LastModifiedDate" && f.Name != "LastModifiedById" {
					real++
				}
				if f.Name == "ExpectedRevenue" {
					t.Fatalf("change %d: ExpectedRevenue set", i)
				}
				for _, id := range ch.RecordIDs {
					if old, had := state[id][f.Name]; (had && old.Equal(f.Value)) || (!had && f.Value.IsNull()) {
						t.Fatalf("change %d: %s of %s does not really change (%v)", i, f.Name, id, f.Value)
					}
				}
			}
			if real == 0 {
				t.Fatalf("change %d: UPDATE changing nothing but LastModified*", i)
			}
			for _, id := range ch.RecordIDs {
				apply(state[id], ch.Fields)
			}
		case cdc.Delete, cdc.GapUpdate:
			if len(ch.Fields) != 0 {
				t.Fatalf("change %d: %s with fields", i, ch.Type)
			}
		}
	}
	for _, k := range []string{"Opportunity CREATE", "Opportunity UPDATE", "Opportunity DELETE", "Opportunity UNDELETE", "Opportunity GAP_UPDATE",
		"OpportunityContactRole CREATE", "OpportunityContactRole UPDATE", "OpportunityContactRole DELETE", "OpportunityContactRole UNDELETE", "multi"} {
		if counts[k] == 0 {
			t.Errorf("no %s in 5000 changes: %v", k, counts)
		}
	}
	ids := map[string]bool{}
	triggers := map[string]int{}
	for _, e := range g.Expected() {
		if ids[e.EventID] {
			t.Fatalf("duplicate event id %s", e.EventID)
		}
		ids[e.EventID] = true
		triggers[e.Trigger+" "+e.Reason]++
	}
	for _, k := range []string{"added_to_opportunity contact_role_created", "added_to_opportunity contact_changed", "added_to_opportunity opportunity_undeleted",
		"removed_from_opportunity contact_role_deleted", "removed_from_opportunity opportunity_deleted", "opportunity_updated "} {
		if triggers[k] == 0 {
			t.Errorf("no %q entries: %v", k, triggers)
		}
	}
}

// TestGeneratorTruthMatchesOrg checks that the oracle, which sees only the
// changes, ends up with the state the generator planned.
func TestGeneratorTruthMatchesOrg(t *testing.T) {
	g := NewGenerator(GenConfig{Seed: 3, Opportunities: 30})
	for i := 0; i < 3000 || len(g.queue) > 0; i++ {
		g.Next()
	}
	tr := g.Truth()
	if len(tr.Opportunities) != len(g.opps) || len(tr.ContactRoles) != len(g.roles) {
		t.Fatalf("truth has %d opportunities and %d roles, the org %d and %d", len(tr.Opportunities), len(tr.ContactRoles), len(g.opps), len(g.roles))
	}
	for _, o := range g.opps {
		to, ok := tr.Opportunity(o.id)
		if !ok || to.Deleted != o.deleted || !reflect.DeepEqual(to.Fields, o.fields) {
			t.Fatalf("opportunity %s: truth %+v, org %+v (deleted %v)", o.id, to, o.fields, o.deleted)
		}
	}
	primaries := 0
	for _, r := range tr.ContactRoles {
		var gr *genRole
		for _, x := range g.roles {
			if x.id == r.ID {
				gr = x
			}
		}
		if gr == nil || gr.contact != r.ContactID || gr.opp != r.OpportunityID || gr.deleted != r.Deleted || gr.fields["Role"].Str != r.Role {
			t.Fatalf("role %+v does not match the org's %+v", r, gr)
		}
		if r.Primary {
			primaries++
		}
	}
	if primaries == 0 {
		t.Error("no primary contact roles")
	}
}

// TestGeneratedTrafficRoundTrip encodes generated traffic in every framing
// and shape and checks pkg/decode reads back what the generator meant.
func TestGeneratedTrafficRoundTrip(t *testing.T) {
	reg := NewRegistry()
	for _, shape := range []Shape{ShapePubSub, ShapeConnector} {
		for _, framing := range []Framing{FramingPubSub, FramingConfluent} {
			t.Run(framing.String()+"/"+shape.String(), func(t *testing.T) {
				cfg := GenConfig{Seed: 11, Opportunities: 15, MultiRecordRate: 0.05}
				enc, err := NewEncoder(EncoderConfig{Framing: framing, Shape: shape, Registry: reg})
				if err != nil {
					t.Fatal(err)
				}
				cfg.OpportunitySchema = enc.Schema(cdc.EntityOpportunity)
				cfg.ContactRoleSchema = enc.Schema(cdc.EntityContactRole)
				g := NewGenerator(cfg)
				src := decode.MapSource{}
				for id, s := range enc.Schemas() {
					src[id] = s
				}
				for _, e := range schemas.Entities {
					text := schemas.PubSub(e)
					if shape == ShapeConnector {
						text = schemas.Connector(e)
					}
					src[decode.RegistryPrefix+strconv.Itoa(reg.Register(text))] = text
				}
				dec, err := decode.New(decode.Config{}, src)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 1500; i++ {
					ch := g.Next()
					msg, err := enc.Encode(context.Background(), ch)
					if err != nil {
						t.Fatalf("change %d: %v", i, err)
					}
					ev, err := dec.Decode(context.Background(), &msg)
					if err != nil {
						t.Fatalf("change %d (%s %s): %v", i, ch.Entity, ch.Type, err)
					}
					want, got := changed(ch.Fields), changed(ev.Fields)
					if ch.Type != cdc.Update {
						want, got = nonNullChanged(ch.Fields), nonNullChanged(ev.Fields)
					}
					if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(ev.RecordIDs, ch.RecordIDs) || ev.Version != ch.Version {
						t.Fatalf("change %d (%s %s) decoded as\n%+v\nwant\n%+v", i, ch.Entity, ch.Type, got, want)
					}
				}
			})
		}
	}
}

func BenchmarkGeneratorNext(b *testing.B) {
	g := NewGenerator(GenConfig{Seed: 1, Opportunities: 2000})
	for i := 0; i < 100000; i++ {
		g.Next()
	}
	b.ReportAllocs()
	for b.Loop() {
		g.Next()
	}
}
