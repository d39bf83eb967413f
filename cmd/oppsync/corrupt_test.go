package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/oppsync/oppsync/pkg/replica"
)

func TestCorruptReporter(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	report := corruptReporter(reg, zerolog.New(&logs))
	report(replica.Corrupt{Kind: replica.CorruptRole, OpportunityID: "0068c000000iyJbAAI", Name: "f:Name"})
	report(replica.Corrupt{Kind: replica.CorruptField, OpportunityID: "006\r\nforged log line", Name: strings.Repeat("x", 200)})
	for _, kind := range []string{replica.CorruptRole, replica.CorruptField} {
		if got := corruptCount(t, reg, kind); got != 1 {
			t.Errorf("corrupt_records_total{kind=%q} = %v, want 1", kind, got)
		}
	}
	out := logs.String()
	for _, want := range []string{`"level":"warn"`, `"opportunity_id":"0068c000000iyJbAAI"`, `"name":"f:Name"`, `"invalid_opportunity_id_length":20`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "forged") || strings.Contains(out, "xxxx") {
		t.Errorf("log carries an invalid id or a long name:\n%s", out)
	}
}

func corruptCount(t *testing.T, reg *prometheus.Registry, kind string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if f.GetName() == "oppsync_corrupt_records_total" && m.GetLabel()[0].GetValue() == kind {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no oppsync_corrupt_records_total{kind=%q}", kind)
	return 0
}
