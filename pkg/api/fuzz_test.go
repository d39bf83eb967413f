package api

import (
	"bytes"
	"net/url"
	"testing"

	"github.com/oppsync/oppsync/internal/synth"
)

// FuzzHandlers sends arbitrary ids and bodies to every route of a server
// over a real replica: nothing panics, no input makes a 500, nothing is
// served without the token, and no answer carries the hidden field (Opportunity.Description is hidden in newOrg).
func FuzzHandlers(f *testing.F) {
	o := newOrg(f, synth.GenConfig{Seed: 7, Opportunities: 20, Contacts: 50})
	o.feed(200)
	o.runView()
	srv, _ := newServer(f, o.view, Config{Addr: "127.0.0.1:0", AuthToken: "tok"}, nil)
	h := srv.Handler()
	for _, s := range []struct {
		route uint8
		id    string
		body  string
	}{
		{0, "0038c000000FmhnAAC", ""},
		{1, "0068c000000iyJbAAI", ""},
		{2, "../../etc", ""},
		{3, "", `{"filters":[{"filter":"has_opportunity","constraints":[{"field":"Description","op":"is","value":"x"}]}]}`},
		{3, "", `{"filters":[{"filter":"total_opportunity_amount","op":"between","value":[1,"a"]}],"limit":-1,"cursor":"%%%"}`},
		{3, "", `{"filters":`},
		{4, "", ""},
	} {
		f.Add(s.route, s.id, s.body, true)
	}
	for _, id := range badIDs {
		for route := uint8(0); route < 3; route++ {
			f.Add(route, id, "", true)
		}
	}
	routes := []struct{ method, path string }{
		{"GET", "/v1/people/%s/opportunities"},
		{"GET", "/v1/opportunities/%s"},
		{"GET", "/people/%s"},
		{"POST", "/v1/people/query"},
		{"GET", "/v1/constraints"},
	}
	f.Fuzz(func(t *testing.T, route uint8, id, body string, auth bool) {
		rt := routes[int(route)%len(routes)]
		path := rt.path
		if bytes.Contains([]byte(path), []byte("%s")) {
			path = string(bytes.Replace([]byte(path), []byte("%s"), []byte(url.PathEscape(id)), 1))
		}
		hdr := []string{}
		if auth {
			hdr = []string{"Authorization", "Bearer tok"}
		}
		r := do(t, h, rt.method, path, body, hdr...)
		switch {
		case r.code >= 500 && r.code != 503 && r.code != 504:
			t.Fatalf("%s %s with body %q: %d %s", rt.method, path, body, r.code, r.body)
		case !auth && r.code < 300:
			// 401, or the mux's redirect of an unclean path: never data.
			t.Fatalf("%s %s without the token: %d %s", rt.method, path, r.code, r.body)
		case bytes.Contains(r.body, []byte(`"Description"`)):
			t.Fatalf("%s %s answered with the hidden field: %s", rt.method, path, r.body)
		}
	})
}
