package cdc

import (
	"encoding/json"
	"testing"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te`, "<a href='x'>&amp;</a>", "\x00\x01\b\f\n\r\t\x1f", "ünï 😀", "\xff\xfe", "\u2028\u2029", "São Paulo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, encoding/json = %s", s, got, want)
		}
	})
}

func TestAppendJSONMatchesJSON(t *testing.T) {
	for _, v := range []Value{Null, Number(1.5), Number(-3), Bool(true), String("a<b"), DateFromDays(3)} {
		if got := string(v.AppendJSON(nil)); got != v.JSON() {
			t.Errorf("AppendJSON(%+v) = %s, JSON() = %s", v, got, v.JSON())
		}
	}
}
