package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oppsync/oppsync/pkg/config"
)

// `oppsync config` prints URL-valued keys with their credentials masked,
// whichever layer set them, and a rejected address is not echoed with its
// password either.
func TestConfigCommandMasksURLCredentials(t *testing.T) {
	urls := map[string]string{
		"schema_registry.url":     "https://reg-user:reg-pw@registry.example:8081/base",
		"salesforce.instance_url": "https://sf-user:sf-pw@acme.my.salesforce.com",
		"salesforce.token_url":    "https://tok-user:tok-pw@login.example/services/oauth2/token",
	}
	want := []string{
		"url: https://***@registry.example:8081/base",
		"instance_url: https://***@acme.my.salesforce.com",
		"token_url: https://***@login.example/services/oauth2/token",
	}
	secrets := []string{"reg-user", "reg-pw", "sf-user", "sf-pw", "tok-user", "tok-pw", "rd-user", "rd-pw", "client-secret-value"}
	sf := map[string]string{"salesforce.client_id": "client", "salesforce.client_secret": "client-secret-value"}

	const yamlText = `schema_registry:
  url: https://reg-user:reg-pw@registry.example:8081/base
salesforce:
  instance_url: https://sf-user:sf-pw@acme.my.salesforce.com
  token_url: "https://tok-user:tok-pw@login.example/services/oauth2/token"
`
	tests := []struct {
		name  string
		setup func(t *testing.T) []string // returns the arguments after "config"
		code  int
		want  []string
	}{
		{"yaml", func(t *testing.T) []string {
			f := filepath.Join(t.TempDir(), "oppsync.yml")
			if err := os.WriteFile(f, []byte(yamlText), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--config", f}
			for k, v := range sf {
				args = append(args, "--"+k+"="+v)
			}
			return args
		}, 0, want},
		{"env", func(t *testing.T) []string {
			for k, v := range urls {
				t.Setenv(config.EnvName(k), v)
			}
			for k, v := range sf {
				t.Setenv(config.EnvName(k), v)
			}
			return nil
		}, 0, want},
		{"flags", func(t *testing.T) []string {
			var args []string
			for k, v := range urls {
				args = append(args, "--"+k+"="+v)
			}
			for k, v := range sf {
				args = append(args, "--"+k, v)
			}
			return args
		}, 0, want},
		{"rejected redis URL", func(t *testing.T) []string {
			return []string{"--redis.addrs=redis://rd-user:rd-pw@redis-1:6379"}
		}, 2, []string{`redis.addrs: "redis://***@redis-1:6379" must be host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := realMain(append([]string{"config"}, tt.setup(t)...), &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tt.code {
				t.Fatalf("exit code %d, want %d:\n%s", code, tt.code, out)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("output contains %q:\n%s", s, out)
				}
			}
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

// A log line quoting a URL, as a component logs an HTTP client's error,
// carries no user or password, in either log format.
func TestLoggerMasksURLCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	// net/http masks the password of the URL in its errors, not the user.
	_, httpErr := http.Get("http://log-user:log-pw@" + closed + "/schemas/ids/1")
	if httpErr == nil {
		t.Fatal("GET on a closed port succeeded")
	}
	for _, format := range []string{"json", "console"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(config.Log{Level: "info", Format: format}, &buf)
			log.Warn().Err(httpErr).Str("url", "https://field-user:field-pw@registry.example/x").Msg("fetching schema")
			out := buf.String()
			for _, s := range []string{"log-user", "log-pw", "field-user", "field-pw"} {
				if strings.Contains(out, s) {
					t.Errorf("log contains %q: %s", s, out)
				}
			}
			for _, s := range []string{"***@" + closed + "/schemas/ids/1", "***@registry.example/x", "fetching schema"} {
				if !strings.Contains(out, s) {
					t.Errorf("log lacks %q: %s", s, out)
				}
			}
		})
	}
}
