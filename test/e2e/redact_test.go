package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/oppsync/oppsync/internal/testenv"
	"github.com/oppsync/oppsync/pkg/cdc"
)

// Neither the log nor /readyz shows the credentials of a configured URL:
// with the schema registry unreachable, the pipeline logs the registry
// client's error, which quotes the URL, and /readyz reports it once the
// failures last; both show the URL as http://***@host.
func TestURLCredentialsMaskedInLogAndReadyz(t *testing.T) {
	e := newEnv(t, 1)
	user, password := randomSecret(t, "reg-user-"), randomSecret(t, "reg-pw-")
	registry := freeAddr(t) // nothing listens there
	e.extra["OPPSYNC_SCHEMA_REGISTRY_URL"] = "http://" + user + ":" + password + "@" + registry
	p := e.spawn()
	// Confluent wire format: magic byte 0, then schema id 1.
	e.publish(e.writer(), cdc.Message{Topic: e.topics[0], Key: []byte("k"), Value: []byte{0, 0, 0, 0, 1, 2, 4}})
	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		return strings.Contains(p.log(), "@"+registry+"/schemas/ids/1"), "no log line quoting the registry URL yet"
	})
	for _, s := range []string{user, password} {
		if strings.Contains(p.log(), s) {
			t.Errorf("the log holds a credential of the registry URL (%s...):\n%s", s[:8], tail(p.log(), 10))
		}
	}
	if !strings.Contains(p.log(), "***@"+registry+"/schemas/ids/1") {
		t.Errorf("the log does not show the masked URL:\n%s", tail(p.log(), 10))
	}
	var body string
	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		var code int
		code, body = readyz(p)
		return code == 503 && strings.Contains(body, "schemas/ids/1"), "readyz does not report the registry failure yet: " + body
	})
	if strings.Contains(body, user) || strings.Contains(body, password) || !strings.Contains(body, "***@"+registry) {
		t.Errorf("/readyz shows the registry URL unmasked: %s", body)
	}
}
