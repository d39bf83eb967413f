package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestRedisStatsDelta(t *testing.T) {
	before := parseRedisStats("# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.0\r\nused_cpu_sys_children:9\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=10,usec=1000,usec_per_call=100.00\r\ncmdstat_xadd:calls=5,usec=50,usec_per_call=10.00\r\n")
	after := parseRedisStats("# CPU\r\nused_cpu_sys:2.5\r\nused_cpu_user:4.0\r\nused_cpu_sys_children:20\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=30,usec=5000,usec_per_call=100.00\r\ncmdstat_xadd:calls=5,usec=50,usec_per_call=10.00\r\n" +
		"cmdstat_hset:calls=7,usec=700,usec_per_call=100.00\r\n")
	cpu, cmds := after.sub(before)
	if cpu != 3 {
		t.Errorf("cpu %v, want 3 (children excluded)", cpu)
	}
	want := []commandDelta{{"evalsha", 20, 4000}, {"hset", 7, 700}}
	if len(cmds) != len(want) {
		t.Fatalf("commands %+v, want %+v", cmds, want)
	}
	for i := range want {
		if cmds[i] != want[i] {
			t.Errorf("command %d: %+v, want %+v", i, cmds[i], want[i])
		}
	}
}

func TestSkipReply(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
	}{
		{"bulk", "$15\r\n1700000000000-0\r\n", ""},
		{"nil", "$-1\r\n", ""},
		{"error", "-NOSCRIPT No matching script\r\n", "redis: NOSCRIPT No matching script"},
		{"other", ":1\r\n", `unexpected reply ":1\r\n"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in + "$1\r\nx\r\n"))
			err := skipReply(r)
			if got := errText(err); got != tc.err {
				t.Fatalf("error %q, want %q", got, tc.err)
			}
			if err == nil { // the next reply starts where this one ended
				if err := skipReply(r); err != nil {
					t.Fatalf("next reply: %v", err)
				}
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
