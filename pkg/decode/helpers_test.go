package decode

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
	"github.com/oppsync/oppsync/schemas"
)

const (
	commitTS  = int64(1764348041123) // 2025-11-28T16:40:41.123Z
	commitNum = int64(11712345678901)
	schemaHdr = DefaultSchemaHeader
)

var (
	oppSchema     = schemas.PubSub("Opportunity")
	ocrSchema     = schemas.PubSub("OpportunityContactRole")
	oppConnSchema = schemas.Connector("Opportunity")
	ocrConnSchema = schemas.Connector("OpportunityContactRole")
)

// enc encodes native Go values with goavro, the reference implementation.
type enc struct {
	codec  *goavro.Codec
	branch map[string]string // field ("Parent.Child" for nested) → union branch name
}

func newEnc(tb testing.TB, schema string) *enc {
	tb.Helper()
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		tb.Fatalf("goavro: %v", err)
	}
	var s struct {
		Namespace string `json:"namespace"`
		Fields    []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		tb.Fatal(err)
	}
	e := &enc{codec: codec, branch: map[string]string{}}
	for _, f := range s.Fields {
		var u []json.RawMessage
		if json.Unmarshal(f.Type, &u) != nil || len(u) != 2 {
			continue
		}
		var name string
		if json.Unmarshal(u[1], &name) == nil {
			e.branch[f.Name] = name
			continue
		}
		var obj struct {
			Type, Name, Namespace, LogicalType string
			Fields                             []struct {
				Name string
				Type []string
			}
		}
		_ = json.Unmarshal(u[1], &obj) // header records have non-union fields
		switch {
		case obj.Type == "record":
			ns := obj.Namespace
			if ns == "" {
				ns = s.Namespace
			}
			e.branch[f.Name] = ns + "." + obj.Name
			for _, c := range obj.Fields {
				if len(c.Type) == 2 {
					e.branch[f.Name+"."+c.Name] = c.Type[1]
				}
			}
		case obj.LogicalType != "":
			e.branch[f.Name] = obj.Type + "." + obj.LogicalType
		default:
			e.branch[f.Name] = obj.Type
		}
	}
	return e
}

// record wraps data values in goavro unions and encodes the record.
func (e *enc) record(tb testing.TB, fixed map[string]any, data map[string]any) []byte {
	tb.Helper()
	native := map[string]any{}
	for k, v := range fixed {
		native[k] = v
	}
	for k, v := range data {
		if v == nil {
			native[k] = nil
			continue
		}
		if m, ok := v.(map[string]any); ok {
			inner := map[string]any{}
			for ck, cv := range m {
				inner[ck] = nil
				if cv != nil {
					inner[ck] = goavro.Union(e.branch[k+"."+ck], cv)
				}
			}
			v = inner
		}
		b, ok := e.branch[k]
		if !ok {
			tb.Fatalf("test field %s is not in the schema", k)
		}
		native[k] = goavro.Union(b, v)
	}
	out, err := e.codec.BinaryFromNative(nil, native)
	if err != nil {
		tb.Fatalf("encoding: %v", err)
	}
	return out
}

func strs(ss ...string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// hdr is a Pub/Sub ChangeEventHeader.
type hdr struct {
	entity, ct      string
	ids             []string
	changed, nulled []string
	diff            []string
}

func (h hdr) native() map[string]any {
	return map[string]any{
		"entityName":      h.entity,
		"recordIds":       strs(h.ids...),
		"changeType":      h.ct,
		"changeOrigin":    "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/",
		"transactionKey":  "0002c3a1-7d4e-4f0b-9b1a-61d2a3c4e5f6",
		"sequenceNumber":  int32(3),
		"commitTimestamp": commitTS,
		"commitNumber":    commitNum,
		"commitUser":      "005000000000001AAA",
		"nulledFields":    strs(h.nulled...),
		"diffFields":      strs(h.diff...),
		"changedFields":   strs(h.changed...),
	}
}

func (h hdr) connNative() map[string]any {
	return map[string]any{
		"entityName":      h.entity,
		"recordIds":       strs(h.ids...),
		"changeType":      h.ct,
		"changeOrigin":    goavro.Union("string", "com/salesforce/api/rest/62.0"),
		"transactionKey":  "0002c3a1-7d4e-4f0b-9b1a-61d2a3c4e5f6",
		"sequenceNumber":  int32(3),
		"commitTimestamp": commitTS,
		"commitNumber":    commitNum,
		"commitUser":      "005000000000001AAA",
		"changedFields":   strs(h.changed...),
	}
}

func pubsubPayload(tb testing.TB, schema string, h hdr, data map[string]any) []byte {
	return newEnc(tb, schema).record(tb, map[string]any{"ChangeEventHeader": h.native()}, data)
}

func connectorPayload(tb testing.TB, schema string, h hdr, data map[string]any) []byte {
	id := ""
	if len(h.ids) > 0 {
		id = h.ids[0]
	}
	return newEnc(tb, schema).record(tb, map[string]any{
		"Id":                id,
		"ReplayId":          goavro.Union("string", "4711"),
		"ChangeEventHeader": goavro.Union("io.confluent.salesforce.ChangeEventHeader", h.connNative()),
		"_ObjectType":       goavro.Union("string", h.entity+"ChangeEvent"),
		"_EventType":        goavro.Union("string", "AbCdEfGhIjKlMnOpQrStUv"),
	}, data)
}

func pubsubMsg(id string, payload []byte) *cdc.Message {
	return &cdc.Message{Topic: "t", Value: payload, Headers: []cdc.Header{{Key: schemaHdr, Value: []byte(id)}}}
}

func wireMsg(id uint32, payload []byte) *cdc.Message {
	v := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(v[1:], id)
	return &cdc.Message{Topic: "t", Value: append(v, payload...)}
}

// fullOpportunity is a realistic Opportunity record.
func fullOpportunity() map[string]any {
	closeDate := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC).UnixMilli()
	return map[string]any{
		"AccountId": "001000000000001AAA", "IsPrivate": false, "Name": "Acme - 500 seats",
		"Description": "secret notes", "StageName": "Prospecting", "Amount": 125000.5,
		"Probability": 10.0, "ExpectedRevenue": nil, "TotalOpportunityQuantity": 500.0,
		"CloseDate": closeDate, "Type": "New Business", "NextStep": "Demo", "LeadSource": "Web",
		"IsClosed": false, "IsWon": false, "ForecastCategory": "Pipeline",
		"ForecastCategoryName": "Pipeline", "CampaignId": nil, "HasOpportunityLineItem": false,
		"Pricebook2Id": nil, "OwnerId": "005000000000002AAA", "CreatedDate": commitTS,
		"CreatedById": "005000000000001AAA", "LastModifiedDate": commitTS,
		"LastModifiedById": "005000000000001AAA", "LastStageChangeDate": nil,
		"ContactId": "003000000000001AAA", "ContractId": nil, "LastAmountChangedHistoryId": nil,
		"LastCloseDateChangedHistoryId": nil, "Region__c": "EMEA", "Partner_Score__c": 7.5,
		"Seats__c": int32(500), "Product_Lines__c": "Core;Analytics",
		"Billing_Address__c": map[string]any{"Street": "1 Main St", "City": "Springfield", "PostalCode": nil, "Country": "US"},
	}
}

// golden compares v rendered as JSON with testdata/golden/name.json.
func golden(t *testing.T, name string, ev *cdc.Event) {
	t.Helper()
	type field struct {
		Name    string    `json:"name"`
		Value   cdc.Value `json:"value"`
		Changed bool      `json:"changed"`
	}
	out := struct {
		Entity     string          `json:"entity"`
		ChangeType cdc.ChangeType  `json:"change_type"`
		RecordIDs  []string        `json:"record_ids"`
		Version    string          `json:"version"`
		Header     cdc.EventHeader `json:"header"`
		SchemaID   string          `json:"schema_id"`
		Fields     []field         `json:"fields"`
		Schema     []string        `json:"schema"`
	}{ev.Entity, ev.ChangeType, ev.RecordIDs, ev.Version.String(), ev.Header, ev.SchemaID, []field{}, nil}
	for _, f := range ev.Fields {
		out.Fields = append(out.Fields, field{f.Name, f.Value, f.Changed})
	}
	for _, f := range ev.Schema {
		out.Schema = append(out.Schema, f.Name+" "+f.Kind.String()+" "+f.SalesforceType)
	}
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Golden(t, name+".json", append(got, '\n'))
}
