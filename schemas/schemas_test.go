package schemas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/linkedin/goavro/v2"
)

func fieldNames(t *testing.T, schema string) []string {
	t.Helper()
	var s struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		t.Fatalf("parsing schema: %v", err)
	}
	out := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		out[i] = f.Name
	}
	return out
}

func TestSchemasParse(t *testing.T) {
	for _, e := range Entities {
		for shape, s := range map[string]string{"pubsub": PubSub(e), "connector": Connector(e)} {
			t.Run(e+"/"+shape, func(t *testing.T) {
				if s == "" {
					t.Fatal("schema missing")
				}
				if _, err := goavro.NewCodec(s); err != nil {
					t.Fatalf("goavro rejects schema: %v", err)
				}
			})
		}
	}
	if PubSub("Account") != "" || Connector("Account") != "" {
		t.Error("unknown entity should have no schema")
	}
}

func TestOpportunityFieldOrder(t *testing.T) {
	want := []string{"ChangeEventHeader", "AccountId", "IsPrivate", "Name", "Description", "StageName",
		"Amount", "Probability", "ExpectedRevenue", "TotalOpportunityQuantity", "CloseDate", "Type",
		"NextStep", "LeadSource", "IsClosed", "IsWon", "ForecastCategory", "ForecastCategoryName",
		"CampaignId", "HasOpportunityLineItem", "Pricebook2Id", "OwnerId", "CreatedDate", "CreatedById",
		"LastModifiedDate", "LastModifiedById", "LastStageChangeDate", "ContactId", "ContractId",
		"LastAmountChangedHistoryId", "LastCloseDateChangedHistoryId"}
	got := fieldNames(t, PubSub("Opportunity"))
	if len(got) <= len(want) {
		t.Fatalf("got %d fields, want more than %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("field %d = %s, want %s", i, got[i], w)
		}
	}
	for _, f := range fieldNames(t, PubSub("OpportunityContactRole")) {
		if f == "IsPrimary" {
			t.Error("OpportunityContactRole must not have IsPrimary")
		}
	}
}

func TestID(t *testing.T) {
	a, b := PubSub("Opportunity"), PubSub("OpportunityContactRole")
	if ID(a) != ID(PubSub("Opportunity")) || ID(a) == ID(b) {
		t.Fatal("ID must be deterministic and distinct")
	}
	if len(ID(a)) != 22 {
		t.Errorf("ID length = %d, want 22", len(ID(a)))
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if err := WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, e := range Entities {
		b, err := os.ReadFile(filepath.Join(dir, ID(PubSub(e))+".avsc"))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != PubSub(e) {
			t.Errorf("%s: file differs from embedded schema", e)
		}
	}
}

func TestWithCustomField(t *testing.T) {
	base := PubSub("Opportunity")
	tests := []struct {
		name, field, typ, doc string
		wantErr               bool
	}{
		{"primitive", "Churn_Risk__c", "double", "Data:Percent:00N000000000001", false},
		{"json type", "Tier__c", `{"type":"string"}`, "Data:DynamicEnum:00N000000000002", false},
		{"duplicate", "Amount", "double", "Data:Currency", true},
		{"bad name", "1bad", "double", "", true},
		{"bad type", "X__c", "not a type!", "", true},
		{"bad json", "X__c", `{"type":`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := WithCustomField(base, tt.field, tt.typ, tt.doc)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if _, err := goavro.NewCodec(out); err != nil {
				t.Fatalf("result rejected by goavro: %v", err)
			}
			old, got := fieldNames(t, base), fieldNames(t, out)
			if len(got) != len(old)+1 || got[len(got)-1] != tt.field {
				t.Fatalf("field not appended: %v", got[len(old)-1:])
			}
			for i := range old {
				if old[i] != got[i] {
					t.Fatalf("field %d moved", i)
				}
			}
			if ID(out) == ID(base) {
				t.Error("evolved schema must have a new id")
			}
		})
	}
}
