package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/campaigns"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/pkg/filters"
	"github.com/oppsync/oppsync/pkg/tail"
)

func TestCampaignsCommand(t *testing.T) {
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "cli")
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	dir := t.TempDir()
	file := filepath.Join(dir, "campaigns.yml")
	// Amount is a standard field: the catalog knows it before any event.
	if err := os.WriteFile(file, []byte(`
- campaign_id: big-deals
  name: Decision makers on big deals
  triggers:
    - trigger: added_to_opportunity
      constraints:
        - {field: Role, op: is, value: Decision Maker}
        - {field: Amount, op: gte, value: 50000}
  filters:
    - {filter: number_of_opportunities, op: gte, value: 2}
  qualification: once
- campaign_id: won
  name: Won deals
  triggers:
    - {trigger: opportunity_updated, field: StageName, constraints: [{field: new_value, op: is, value: Closed Won}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"campaign_id":"x","name":"x","triggers":[{"trigger":"added_to_opportunity","constraints":[{"field":"Amout","op":"gt","value":1}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--redis.addrs", testenv.RedisAddr(t), "--org_id", org}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := realMain(append(append([]string{"campaigns"}, args...), conn...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	steps := []struct {
		name string
		args []string
		code int
		out  string // stdout, or stderr when code != 0
	}{
		{"apply", []string{"apply", "-f", file}, 0, "big-deals: stored (version 1)\nwon: stored (version 1)\n"},
		{"apply twice is a no-op", []string{"apply", "-f", file}, 0, "big-deals: unchanged (version 1)\nwon: unchanged (version 1)\n"},
		{"invalid file stores nothing", []string{"apply", "-f", bad}, 2, `oppsync: campaigns apply: ` + bad + `: [0] (x): triggers[0].constraints[0]: unknown field "Amout"` + "\n"},
		{"list", []string{"list"}, 0, "big-deals  1        true"},
		{"list json", []string{"list", "--json"}, 0, `"campaign_id": "won"`},
		{"delete", []string{"delete", "won"}, 0, "won: deleted\n"},
		{"delete unknown", []string{"delete", "won"}, 1, `oppsync: campaigns delete: no campaign "won"` + "\n"},
		{"delete bad id", []string{"delete", "a:b"}, 2, `oppsync: campaigns delete: "a:b" is not a campaign id ([A-Za-z0-9_-]{1,64})` + "\n"},
		{"reapply continues versions", []string{"apply", "-f", file}, 0, "big-deals: unchanged (version 1)\nwon: stored (version 2)\n"},
		{"apply without file", []string{"apply"}, 2, "oppsync: campaigns apply: give -f FILE\n"},
		{"delete without id", []string{"delete"}, 2, "oppsync: campaigns delete: give the campaign ID\n"},
		{"unknown subcommand", []string{"show"}, 2, "oppsync: campaigns: want apply, list or delete"},
		{"missing file", []string{"apply", "-f", filepath.Join(dir, "none.yml")}, 2, "no such file"},
	}
	for _, st := range steps {
		code, out, errOut := run(st.args...)
		got := out
		if st.code != 0 {
			got = errOut
		}
		if code != st.code || !strings.Contains(got, st.out) {
			t.Fatalf("%s: exit %d\nstdout %q\nstderr %q\nwant %d %q", st.name, code, out, errOut, st.code, st.out)
		}
	}
	if n := rdb.HLen(t.Context(), "oppsync:{"+org+"}:campaigns").Val(); n != 2 {
		t.Fatalf("%d definitions stored", n)
	}
}

func TestCampaignsSubcommandHelp(t *testing.T) {
	for _, sub := range []string{"apply", "list", "delete"} {
		var out bytes.Buffer
		if code := realMain([]string{"campaigns", sub, "--help"}, &out, &bytes.Buffer{}); code != 0 {
			t.Fatalf("%s --help: exit %d", sub, code)
		}
		if !strings.HasPrefix(out.String(), "usage: oppsync campaigns "+sub+" ") || !strings.Contains(out.String(), "--redis.addrs") {
			t.Fatalf("%s --help:\n%s", sub, out.String())
		}
	}
}

type seenCatalog []filters.Field

func (s seenCatalog) Catalog(context.Context) (*filters.Catalog, error) {
	return filters.NewCatalog(s), nil
}

func TestCampaignCatalogKnowsStandardFields(t *testing.T) {
	seen := seenCatalog{{Entity: "Opportunity", Name: "Region__c", Kind: cdc.KindString, SalesforceType: "Picklist"},
		{Entity: "Opportunity", Name: "Amount", Kind: cdc.KindNumber, SalesforceType: "Currency (seen)"}}
	cat, err := newCampaignCatalog(seen, []string{"Opportunity.Description"}).Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"Amount": true, "StageName": true, "IsWon": true, "CloseDate": true,
		"Region__c": true, "Description": false, "Seats__c": false} {
		if _, ok := cat.Opportunity(name); ok != want {
			t.Errorf("%s known = %v, want %v", name, ok, want)
		}
	}
	if f, _ := cat.Opportunity("Amount"); f.SalesforceType != "Currency (seen)" {
		t.Errorf("a seen field does not win: %+v", f)
	}
	role := false
	for _, f := range cat.Fields() {
		role = role || f.Entity == "OpportunityContactRole" && f.Name == "Role"
	}
	if !role {
		t.Error("OpportunityContactRole.Role missing")
	}
}

func TestDemoCampaignsAreValidAndFed(t *testing.T) {
	cat, err := newCampaignCatalog(seenCatalog{}, nil).Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range demoCampaigns {
		if _, _, err := campaigns.Parse(c.id, []byte(c.body), campaigns.Options{Catalog: cat}); err != nil {
			t.Fatalf("demo campaign %s: %v", c.id, err)
		}
	}
	l := tail.Line(tail.Entry{Values: map[string]string{"campaign_id": "decision-makers", "campaign_version": "2",
		"trigger": "added_to_opportunity", "reason": "contact_role_created", "role": "Decision Maker",
		"person_id": "0038c000000oDAwAAM", "opportunity_id": "0068c0000004i7sAAA", "occurred_at": "2026-12-07T21:09:48.039Z"}})
	if !strings.Contains(l, "0038c000000oDAwAAM  0068c0000004i7sAAA  campaign decision-makers v2: contact_role_created (Decision Maker") {
		t.Fatalf("feed line %q", l)
	}
}
