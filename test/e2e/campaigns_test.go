package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// e2eCampaigns are campaigns whose entries a reference can compute from the
// trigger entries alone (their snapshot and fields): trigger constraints,
// a person filter every person satisfies, and "once".
const e2eCampaigns = `
- campaign_id: big-dm
  name: Decision makers added to deals of 50,000 or more
  triggers:
    - trigger: added_to_opportunity
      constraints: [{field: Role, op: is, value: Decision Maker}, {field: Amount, op: gte, value: 50000}]
- campaign_id: won
  name: Closed Won
  triggers:
    - {trigger: opportunity_updated, field: StageName, constraints: [{field: new_value, op: is, value: Closed Won}]}
- campaign_id: deleted-roles
  name: Roles deleted
  triggers:
    - {trigger: removed_from_opportunity, constraints: [{field: reason, op: is, value: contact_role_deleted}]}
- campaign_id: amount-changes
  name: Amount changes of people with any opportunity history
  triggers:
    - {trigger: opportunity_updated, constraints: [{field: field, op: is, value: Amount}]}
  filters:
    - {filter: number_of_opportunities, op: gte, value: 0}
- campaign_id: first-add
  name: First add of each person
  triggers:
    - {trigger: added_to_opportunity}
  qualification: once
`

// reference returns, per campaign, the trigger event ids the campaign must
// have an entry for (for "first-add": one per person, any of theirs).
func reference(t *testing.T, trs []entry) (exact map[string]map[string]bool, once map[string]map[string]bool) {
	exact = map[string]map[string]bool{"big-dm": {}, "won": {}, "deleted-roles": {}, "amount-changes": {}}
	once = map[string]map[string]bool{} // person → their added event ids
	for _, e := range trs {
		var snap map[string]any
		_ = json.Unmarshal([]byte(e["opportunity"]), &snap)
		amount, _ := snap["Amount"].(float64)
		id := e["event_id"]
		switch e["trigger"] {
		case cdc.TriggerAdded:
			if strings.EqualFold(e["role"], "Decision Maker") && amount >= 50000 {
				exact["big-dm"][id] = true
			}
			if once[e["person_id"]] == nil {
				once[e["person_id"]] = map[string]bool{}
			}
			once[e["person_id"]][id] = true
		case cdc.TriggerUpdated:
			if e["field"] == "StageName" && strings.EqualFold(e["new_value"], `"Closed Won"`) {
				exact["won"][id] = true
			}
			if e["field"] == "Amount" {
				exact["amount-changes"][id] = true
			}
		case cdc.TriggerRemoved:
			if e["reason"] == "contact_role_deleted" {
				exact["deleted-roles"][id] = true
			}
		}
	}
	return exact, once
}

// Campaigns defined with the CLI, two instances, SIGKILLs while consuming:
// every campaign entry the reference expects is there exactly once, and
// nothing else; each carries its trigger entry's fields.
func TestCampaignsKill9TwoInstancesExactlyOnce(t *testing.T) {
	e := newEnv(t, 1)
	file := filepath.Join(t.TempDir(), "campaigns.yml")
	if err := os.WriteFile(file, []byte(e2eCampaigns), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stored", "unchanged"} {
		code, out, errOut := runCommand(t, e.org, nil, "campaigns", "apply", "-f", file)
		if code != 0 || strings.Count(out, ": "+want+" (version 1)") != 5 {
			t.Fatalf("campaigns apply: exit %d\n%s%s", code, out, errOut)
		}
	}
	chs, want := e.generated(3000, 21, 150)
	msgs := e.encode(e.encoder(), chs...)
	w := e.writer()
	e.publish(w, msgs[:800]...)
	rng := rand.New(rand.NewPCG(3, 4))
	a, b := e.start(), e.start()
	published := 800
	for round := 0; round < 3; round++ {
		next := min(published+600, len(msgs))
		e.publish(w, msgs[published:next]...)
		published = next
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond) // a random kill point, not a wait for a condition
		if round%2 == 0 {
			a.kill9()
			a = e.start()
		} else {
			b.kill9()
			b = e.start()
		}
	}
	e.publish(w, msgs[published:]...)
	e.waitTriggers(len(want), 3*time.Minute)
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		return e.consumedAll(len(chs)), "positions not at the end yet"
	})
	trs := e.triggers()
	compare(t, trs, want)
	byTrigger := map[string]entry{}
	for _, tr := range trs {
		byTrigger[tr["event_id"]] = tr
	}
	exact, once := reference(t, trs)
	var problems []string
	for id, wantIDs := range exact {
		got := map[string]int{}
		for _, c := range e.stream("campaign:" + id) {
			got[c["trigger_event_id"]]++
			tr := byTrigger[c["trigger_event_id"]]
			if c["campaign_id"] != id || c["event_id"] != id+":"+c["trigger_event_id"] || c["campaign_version"] != "1" ||
				c["person_id"] != tr["person_id"] || c["opportunity"] != tr["opportunity"] || c["occurred_at"] != tr["occurred_at"] {
				problems = append(problems, fmt.Sprintf("%s: entry %v for trigger %v", id, c, tr))
			}
		}
		for tid := range wantIDs {
			if got[tid] != 1 {
				problems = append(problems, fmt.Sprintf("%s: %d entries for trigger %s", id, got[tid], tid))
			}
		}
		for tid := range got {
			if !wantIDs[tid] {
				problems = append(problems, fmt.Sprintf("%s: unexpected entry for trigger %s %v", id, tid, byTrigger[tid]))
			}
		}
		if len(wantIDs) < 5 {
			problems = append(problems, fmt.Sprintf("%s: only %d expected entries: the workload does not exercise it", id, len(wantIDs)))
		}
	}
	perPerson := map[string][]string{}
	for _, c := range e.stream("campaign:first-add") {
		perPerson[c["person_id"]] = append(perPerson[c["person_id"]], c["trigger_event_id"])
	}
	for p, ids := range once {
		if len(perPerson[p]) != 1 || !ids[perPerson[p][0]] {
			problems = append(problems, fmt.Sprintf("first-add: person %s has entries %v", p, perPerson[p]))
		}
	}
	if len(perPerson) != len(once) {
		problems = append(problems, fmt.Sprintf("first-add: %d people entered, %d were added", len(perPerson), len(once)))
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Fatalf("%d problems, first ones:\n%s", len(problems), strings.Join(problems[:min(20, len(problems))], "\n"))
	}
	code, out, _ := runCommand(t, e.org, nil, "campaigns", "list")
	if code != 0 || !strings.Contains(out, "first-add") {
		t.Fatalf("campaigns list: %d %s", code, out)
	}
	a.stop(30 * time.Second)
	b.stop(30 * time.Second)
}
