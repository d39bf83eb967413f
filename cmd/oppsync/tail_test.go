package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/replica"
)

// oppsync tail follows the named streams of the org, prints each entry and
// acknowledges it; --count stops it.
func TestTailCommand(t *testing.T) {
	rdb := testenv.NewRedis(t)
	org := testenv.UniqueName(t, "tail")
	t.Cleanup(func() { testenv.DropOrg(rdb, org) })
	ctx := context.Background()
	keys := replica.OutputStreams(org)
	for _, e := range []struct {
		key    string
		values []any
	}{
		{keys["added_to_opportunity"], []any{"trigger", "added_to_opportunity", "event_id", "e1", "person_id", "0038c000000R5JtAAK"}},
		{keys["dlq"], []any{"topic", "t", "partition", "0", "offset", "7", "stage", "decode", "reason", "too_large", "error", "x", "at", "2026-11-28T16:40:42Z"}},
		{keys["opportunity_updated"], []any{"trigger", "opportunity_updated", "event_id", "e2"}}, // not followed
		{keys["added_to_opportunity"], []any{"trigger", "added_to_opportunity", "event_id", "e3", "person_id", "0038c000000R5JtAAK"}},
	} {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.key, Values: e.values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	code := realMain([]string{"tail", "--org_id", org, "--redis.addrs", testenv.RedisAddr(t), "--stream", "added,dlq",
		"--group", "g", "--consumer", "c1", "--format", "json", "--count", "3"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct {
			Stream string            `json:"stream"`
			Fields map[string]string `json:"fields"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, e.Stream[strings.LastIndex(e.Stream, ":")+1:]+"/"+e.Fields["event_id"]+e.Fields["reason"])
	}
	if want := "added_to_opportunity/e1,added_to_opportunity/e3,dlq/too_large"; strings.Join(got, ",") != want {
		t.Errorf("printed %v, want %s", got, want)
	}
	for _, k := range []string{keys["added_to_opportunity"], keys["dlq"]} {
		if p, err := rdb.XPending(ctx, k, "g").Result(); err != nil || p.Count != 0 {
			t.Errorf("%s: pending %+v, %v", k, p, err)
		}
	}
}
