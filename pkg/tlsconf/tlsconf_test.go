package tlsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateAndClient(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // error prefix; "" = valid
	}{
		{"disabled", Config{}, ""},
		{"files without enabled", Config{CAFile: "ca.pem"}, "redis.tls.enabled: must be true when other redis.tls keys are set"},
		{"server name without enabled", Config{ServerName: "r"}, "redis.tls.enabled:"},
		{"cert without key", Config{Enabled: true, CertFile: "c.pem"}, "redis.tls.cert_file:"},
		{"missing CA file", Config{Enabled: true, CAFile: filepath.Join(dir, "none.pem")}, "redis.tls.ca_file:"},
		{"CA file without PEM", Config{Enabled: true, CAFile: notPEM}, "redis.tls.ca_file: no PEM certificate in"},
		{"missing key pair", Config{Enabled: true, CertFile: notPEM, KeyFile: notPEM}, "redis.tls.cert_file:"},
		{"system roots", Config{Enabled: true, ServerName: "redis.internal"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.cfg.Client("redis.tls")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Client: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("Client error = %v, want prefix %q", err, tc.want)
			case tc.want == "" && tc.cfg.Enabled && (c == nil || c.ServerName != tc.cfg.ServerName || c.MinVersion == 0):
				t.Fatalf("Client = %+v", c)
			case tc.want == "" && !tc.cfg.Enabled && c != nil:
				t.Fatal("Client returned a TLS config while disabled")
			}
		})
	}
}
