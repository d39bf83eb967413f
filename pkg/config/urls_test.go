package config

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"user and password", "https://user:pw@registry.example:8081/api?x=1#f", "https://***@registry.example:8081/api?x=1#f"},
		{"user only", "http://user@host", "http://***@host"},
		{"empty userinfo", "http://@host/", "http://***@host/"},
		{"no credentials", "https://acme.my.salesforce.com", "https://acme.my.salesforce.com"},
		{"empty", "", ""},
		{"escaped password", "https://u:p%40ss%2Fw@host/p", "https://***@host/p"},
		{"'@' in the password", "https://u:p@ss@host/p", "https://***@host/p"},
		// Not valid URLs (url.Parse fails): masked up to the last '@'.
		{"'/' in the password", "https://user:pa/ss@host/p", "https://***@host/p"},
		{"'#' in the password", "https://user:12#ss@host", "https://***@host"},
		{"'?' in the password", "https://user:p?w@host/p", "https://***@host/p"},
		{"bad port and password", "http://user:pw@host:port", "http://***@host:port"},
		{"other scheme", "redis://default:pw@redis-1:6379/0", "redis://***@redis-1:6379/0"},
		{"no scheme", "user:pw@kafka-1:9092", "***@kafka-1:9092"},
		{"no scheme, user only", "oppsync@kafka-1:9092", "***@kafka-1:9092"},
		{"protocol-relative", "//user:pw@host/p", "//***@host/p"},
		// Conservative: an '@' after the host may be the end of a password.
		{"'@' in the path", "https://host/people/a@b", "https://***@b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"json log line",
			`{"level":"warn","error":"fetching schema 1: Get \"https://alice:***@127.0.0.1:1/schemas/ids/1\": dial tcp 127.0.0.1:1: connect: connection refused","url":"https://alice:s3cret@reg:8081"}`,
			`{"level":"warn","error":"fetching schema 1: Get \"https://***@127.0.0.1:1/schemas/ids/1\": dial tcp 127.0.0.1:1: connect: connection refused","url":"https://***@reg:8081"}`},
		{"console line", `12:00:00 WRN retrying url=https://alice:s3cret@reg:8081/x other=bob@example.com`,
			`12:00:00 WRN retrying url=https://***@reg:8081/x other=bob@example.com`},
		{"two URLs", `a http://u:p@h1 b 'ftp://v:q@h2/x' c`, `a http://***@h1 b 'ftp://***@h2/x' c`},
		{"no URL", `nothing to see at all`, `nothing to see at all`},
		{"URL without credentials", `GET https://host/a@b`, `GET https://***@b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURLs(tt.in); got != tt.want {
				t.Errorf("RedactURLs\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// Every key that holds URLs or addresses is masked in the printout, whichever
// struct it lives in, and no such key is left untagged.
func TestRedactedMasksURLCredentials(t *testing.T) {
	c := fullWant()
	c.SchemaRegistry.URL = "https://reg-user:reg-pw@registry.example:8081/base"
	c.Salesforce.InstanceURL = "https://sf-user:sf-pw@acme.my.salesforce.com"
	c.Salesforce.TokenURL = "https://tok-user:tok-pw@login.salesforce.com/services/oauth2/token"
	c.Salesforce.ClientID, c.Salesforce.ClientSecret = "client", "client-secret-value"
	c.Kafka.Brokers = []string{"kafka-1:9092", "k-user:k-pw@kafka-2:9092"}
	c.Redis.Addrs = []string{"rd-user:rd-pw@redis-1:6379"}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"reg-user", "reg-pw", "sf-user", "sf-pw", "tok-user", "tok-pw", "k-user", "k-pw", "rd-user", "rd-pw", "secret-value"} {
		if strings.Contains(string(out), s) {
			t.Errorf("printed config contains %q:\n%s", s, out)
		}
	}
	for _, s := range []string{"***@registry.example:8081/base", "***@acme.my.salesforce.com", "***@login.salesforce.com/services/oauth2/token",
		"kafka-1:9092", "***@kafka-2:9092", "***@redis-1:6379"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("printed config lacks %q:\n%s", s, out)
		}
	}
	if c.SchemaRegistry.URL != "https://reg-user:reg-pw@registry.example:8081/base" || c.Kafka.Brokers[1] != "k-user:k-pw@kafka-2:9092" {
		t.Error("Redacted modified the original")
	}
	for _, f := range fields {
		name := f.key[strings.LastIndexByte(f.key, '.')+1:]
		looksURL := name == "url" || strings.HasSuffix(name, "_url") || name == "addrs" || name == "brokers"
		if looksURL != f.url {
			t.Errorf("key %s: url tag %v, but its name says %v", f.key, f.url, looksURL)
		}
	}
}
