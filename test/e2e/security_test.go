package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
)

// secureWorld is a Kafka broker with a SASL_SSL (SCRAM-SHA-512) listener and
// a Redis that speaks only TLS and admits only ACL users, both private to
// the test and using a throwaway CA (test/certs.sh).
type secureWorld struct {
	certs         string // test/certs.sh output
	plainBrokers  []string
	saslBrokers   string
	kafkaUser     string
	kafkaPassword string
	redisAddr     string
	redisUser     string
	redisPassword string
	admin         *redis.Client // an ACL admin over TLS, for the test itself
}

func randomSecret(t *testing.T, prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

func newSecureWorld(t *testing.T) *secureWorld {
	t.Helper()
	testenv.KafkaBrokers(t) // skip like every other e2e test without services
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not found: cannot generate the test certificates")
	}
	w := &secureWorld{
		certs:         t.TempDir(),
		kafkaUser:     "oppsync-svc",
		kafkaPassword: randomSecret(t, "kpw-"),
		redisUser:     "oppsync",
		redisPassword: randomSecret(t, "rpw-"),
	}
	runScript(t, nil, "certs.sh", w.certs)

	// Kafka: a second broker (the shared one stays PLAINTEXT-only) in a
	// temporary folder, with the SCRAM user created at format time.
	kenv := []string{"KAFKA_RUN_DIR=" + t.TempDir(), "KAFKA_SASL_SSL_CERTS=" + w.certs,
		"KAFKA_SCRAM_USER=" + w.kafkaUser, "KAFKA_SCRAM_PASSWORD=" + w.kafkaPassword}
	// Registered first: a start that times out still stops the broker.
	t.Cleanup(func() { runScript(t, kenv, "kafka.sh", "stop") })
	runScript(t, kenv, "kafka.sh", "start")
	out := runScript(t, kenv, "kafka.sh", "env")
	w.plainBrokers = []string{exportedVar(out, testenv.EnvKafkaBrokers)}
	w.saslBrokers = exportedVar(out, "OPPSYNC_TEST_KAFKA_SASL_SSL_BROKERS")
	if w.plainBrokers[0] == "" || w.saslBrokers == "" {
		t.Fatalf("kafka.sh env printed no listeners:\n%s", out)
	}

	// Redis: TLS only (port 0 disables plain TCP), then ACL users.
	w.redisAddr = freeAddr(t)
	_, port, _ := strings.Cut(w.redisAddr, ":")
	dir := t.TempDir()
	srv := exec.Command("redis-server", "--port", "0", "--tls-port", port, "--bind", "127.0.0.1",
		"--tls-cert-file", filepath.Join(w.certs, "server.crt"), "--tls-key-file", filepath.Join(w.certs, "server.key"),
		"--tls-ca-cert-file", filepath.Join(w.certs, "ca.crt"), "--tls-auth-clients", "no",
		"--dir", dir, "--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := srv.Start(); err != nil {
		t.Fatalf("starting redis-server with TLS: %v", err)
	}
	srvDone := make(chan struct{})
	go func() { _ = srv.Wait(); close(srvDone) }()
	t.Cleanup(func() { _ = srv.Process.Kill(); <-srvDone })
	tlsCfg := w.tlsConfig(t)
	boot := redis.NewClient(&redis.Options{Addr: w.redisAddr, TLSConfig: tlsCfg})
	defer boot.Close()
	ctx := context.Background()
	testenv.Eventually(t, 20*time.Second, func() (bool, string) {
		select {
		case <-srvDone:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server exited (does this build support TLS?):\n%s", log)
		default:
		}
		err := boot.Ping(ctx).Err()
		return err == nil, "PING over TLS: " + errString(err)
	})
	adminPassword := randomSecret(t, "apw-")
	for _, args := range [][]any{
		{"ACL", "SETUSER", "admin", "on", ">" + adminPassword, "~*", "&*", "+@all"},
		// What oppsync needs: its own keys (every key starts with oppsync:)
		// and the commands of the apply scripts, no administration.
		{"ACL", "SETUSER", w.redisUser, "on", ">" + w.redisPassword, "~oppsync:*", "&*", "+@all", "-@admin"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if err := boot.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args[:3], err)
		}
	}
	w.admin = redis.NewClient(&redis.Options{Addr: w.redisAddr, TLSConfig: tlsCfg, Username: "admin", Password: adminPassword})
	t.Cleanup(func() { _ = w.admin.Close() })
	if err := w.admin.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING as the ACL admin: %v", err)
	}
	return w
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (w *secureWorld) tlsConfig(t *testing.T) *tls.Config {
	pem, err := os.ReadFile(filepath.Join(w.certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func writeSecret(t *testing.T, name, secret string) string {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secureEnv points oppsync at the SASL_SSL listener and the TLS Redis; the
// Kafka password comes from a file, the Redis password from the environment.
func (w *secureWorld) secureEnv(t *testing.T, e *env, kafkaPassword, redisPassword string) {
	e.extra["OPPSYNC_KAFKA_BROKERS"] = w.saslBrokers
	e.extra["OPPSYNC_KAFKA_TLS_ENABLED"] = "true"
	e.extra["OPPSYNC_KAFKA_TLS_CA_FILE"] = filepath.Join(w.certs, "ca.crt")
	e.extra["OPPSYNC_KAFKA_SASL_MECHANISM"] = "scram-sha-512"
	e.extra["OPPSYNC_KAFKA_SASL_USERNAME"] = w.kafkaUser
	e.extra["OPPSYNC_KAFKA_SASL_PASSWORD_FILE"] = writeSecret(t, "kafka-password", kafkaPassword)
	e.extra["OPPSYNC_REDIS_USERNAME"] = w.redisUser
	e.extra["OPPSYNC_REDIS_PASSWORD"] = redisPassword
	e.extra["OPPSYNC_REDIS_TLS_ENABLED"] = "true"
	e.extra["OPPSYNC_REDIS_TLS_CA_FILE"] = filepath.Join(w.certs, "ca.crt")
}

// Kafka over SASL_SSL with SCRAM-SHA-512 and Redis over TLS with an ACL
// user: events flow exactly once; the secrets (from files and the
// environment) appear neither in the log, at debug level, nor in `oppsync
// config`; a wrong Kafka or Redis password leaves the instance not ready
// with a log line saying why.
func TestSecurityKafkaSASLSSLRedisACLTLS(t *testing.T) {
	w := newSecureWorld(t)
	org := testenv.UniqueName(t, "org")
	e := newEnvOn(t, w.plainBrokers, w.redisAddr, w.admin, org, 1, defaultPartitions)
	w.secureEnv(t, e, w.kafkaPassword, w.redisPassword)
	token := randomSecret(t, "tok-")
	registryPassword := randomSecret(t, "srpw-")
	e.extra["OPPSYNC_HTTP_AUTH_TOKEN"] = token
	e.extra["OPPSYNC_SCHEMA_REGISTRY_URL"] = httptestServer(t, synth.NewRegistry())
	e.extra["OPPSYNC_SCHEMA_REGISTRY_USERNAME"] = "sr-user"
	e.extra["OPPSYNC_SCHEMA_REGISTRY_PASSWORD_FILE"] = writeSecret(t, "sr-password", registryPassword)
	e.extra["OPPSYNC_LOG_LEVEL"] = "debug"
	secrets := []string{w.kafkaPassword, w.redisPassword, token, registryPassword}

	chs, want := e.generated(800, 41, 60)
	e.publish(e.writer(), e.encode(e.encoder(), chs...)...)
	p := e.start()
	e.waitConsumedAndCompare(want, 2*time.Minute)
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	for _, s := range secrets {
		if strings.Contains(p.log(), s) {
			t.Errorf("a secret (%s...) appears in the log", s[:4])
		}
	}

	cmd := exec.Command(oppsyncBinary(t), "config")
	cmd.Env = e.environ(freeAddr(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("oppsync config: %v\n%s", err, out)
	}
	for _, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("a secret (%s...) appears in `oppsync config`", s[:4])
		}
	}
	for _, s := range []string{w.kafkaUser, w.redisUser, "scram-sha-512"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("`oppsync config` lacks %q:\n%s", s, out)
		}
	}

	t.Run("wrong kafka password", func(t *testing.T) {
		bad := randomSecret(t, "bad-")
		e.t = t
		w.secureEnv(t, e, bad, w.redisPassword)
		p := e.spawn()
		waitNotReady(t, p, []string{"SASL", "Authentication failed"}, bad)
	})
	t.Run("wrong redis password", func(t *testing.T) {
		bad := randomSecret(t, "bad-")
		e.t = t
		w.secureEnv(t, e, w.kafkaPassword, bad)
		p := e.spawn()
		waitNotReady(t, p, []string{"WRONGPASS"}, bad)
	})
}

// waitNotReady waits until p's log names the failure (all of words) while
// /readyz does not answer 200, then checks it stays running and never logs
// the secret.
func waitNotReady(t *testing.T, p *proc, words []string, secret string) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		if !p.alive() {
			t.Fatalf("oppsync exited instead of retrying:\n%s", tail(p.log(), 20))
		}
		log := p.log()
		for _, w := range words {
			if !strings.Contains(log, w) {
				return false, "log does not say " + w + " yet:\n" + tail(log, 10)
			}
		}
		return true, ""
	})
	code, body := readyz(p)
	if code == 200 {
		t.Fatalf("/readyz = 200 %s with a wrong password", body)
	}
	t.Logf("/readyz = %d %s", code, body)
	if strings.Contains(p.log(), secret) {
		t.Error("the wrong password appears in the log")
	}
	if code, _ := p.stop(30 * time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
}
