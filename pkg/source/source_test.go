package source

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/oppsync/oppsync/internal/testenv"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; empty: valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero tunables are not valid as given", func(c *Config) { c.MaxBatch = 0 }, "kafka.max_batch:"},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "kafka.brokers:"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"localhost"} }, "kafka.brokers:"},
		{"no topics", func(c *Config) { c.Topics = nil }, "kafka.topics:"},
		{"empty topic", func(c *Config) { c.Topics = []string{"a", ""} }, "kafka.topics:"},
		{"duplicate topic", func(c *Config) { c.Topics = []string{"a", "a"} }, "kafka.topics:"},
		{"no group", func(c *Config) { c.GroupID = " " }, "kafka.group_id:"},
		{"bad start offset", func(c *Config) { c.StartOffset = "middle" }, "kafka.start_offset: must be earliest or latest"},
		{"latest", func(c *Config) { c.StartOffset = StartLatest }, ""},
		{"negative batch", func(c *Config) { c.MaxBatch = -1 }, "kafka.max_batch:"},
		{"huge batch", func(c *Config) { c.MaxBatch = 1_000_000 }, "kafka.max_batch:"},
		{"negative session timeout", func(c *Config) { c.SessionTimeout = -time.Second }, "kafka.session_timeout:"},
		{"heartbeat too slow", func(c *Config) { c.HeartbeatInterval = time.Minute }, "kafka.heartbeat_interval:"},
		{"drain longer than rebalance", func(c *Config) { c.DrainTimeout = time.Hour }, "kafka.drain_timeout:"},
		{"tls files without tls", func(c *Config) { c.TLS.CAFile = cert }, "kafka.tls.enabled:"},
		{"cert without key", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: cert} }, "kafka.tls.cert_file:"},
		{"tls ok", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: cert, CertFile: cert, KeyFile: key} }, ""},
		{"unknown sasl", func(c *Config) { c.SASL = SASLConfig{Mechanism: "gssapi", Username: "u"} }, "kafka.sasl.mechanism:"},
		{"sasl without user", func(c *Config) { c.SASL = SASLConfig{Mechanism: SASLPlain} }, "kafka.sasl.username:"},
		{"scram ok", func(c *Config) { c.SASL = SASLConfig{Mechanism: SASLScramSHA512, Username: "u", Password: "p"} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			before := fmt.Sprintf("%+v", c)
			err := c.Validate()
			if after := fmt.Sprintf("%+v", c); after != before {
				t.Fatalf("Validate changed the config: %s, was %s", after, before)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWithDefaultsFillsZeroTunables(t *testing.T) {
	c := DefaultConfig()
	c.MaxBatch, c.SessionTimeout, c.DrainTimeout, c.StartOffset = 0, 0, 0, ""
	d := c.WithDefaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate after WithDefaults: %v", err)
	}
	if d.MaxBatch != DefaultMaxBatch || d.SessionTimeout != DefaultSessionTimeout ||
		d.DrainTimeout != DefaultDrainTimeout || d.StartOffset != StartEarliest {
		t.Fatalf("WithDefaults = %+v", d)
	}
	if c.MaxBatch != 0 {
		t.Fatal("WithDefaults changed its receiver")
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"missing CA file", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")} }, "kafka.tls.ca_file:"},
		{"CA file without PEM", func(c *Config) {
			p := filepath.Join(dir, "empty.pem")
			if err := os.WriteFile(p, []byte("not pem"), 0o600); err != nil {
				t.Fatal(err)
			}
			c.TLS = TLSConfig{Enabled: true, CAFile: p}
		}, "kafka.tls.ca_file:"},
		{"bad key pair", func(c *Config) {
			cert, _ := writeCert(t, dir)
			c.TLS = TLSConfig{Enabled: true, CertFile: cert, KeyFile: cert}
		}, "kafka.tls.cert_file:"},
		{"bad config", func(c *Config) { c.StartOffset = "x" }, "kafka.start_offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			_, err := New(c, newRecorder(), nil, prometheus.NewRegistry(), zerolog.Nop())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := NewWriter(c); err == nil {
				t.Fatalf("NewWriter accepted the config")
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, nil, nil, zerolog.Nop()); err == nil {
		t.Error("New accepted a nil Handler")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(DefaultConfig(), newRecorder(), nil, reg, zerolog.Nop()); err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := New(DefaultConfig(), newRecorder(), nil, reg, zerolog.Nop()); err == nil {
		t.Error("New registered its metrics twice on one registry without error")
	}
}

// TestReadyAndPingWithoutBroker: with nothing listening, Run keeps retrying
// (it does not return), Ready and Ping say why.
func TestReadyAndPingWithoutBroker(t *testing.T) {
	cfg := testConfig(cluster{brokers: []string{"127.0.0.1:1"}}, "t", "g")
	src := start(t, cfg, newRecorder(), nil)
	if err := src.Ready(); err == nil {
		t.Fatal("Ready = nil before joining")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := src.Ping(ctx); err == nil {
		t.Fatal("Ping = nil with no broker")
	}
	select {
	case err := <-src.done:
		t.Fatalf("Run returned %v while the broker was down", err)
	default:
	}
	if err := src.stop(t); err != nil {
		t.Fatalf("Run returned %v after cancellation, want nil", err)
	}
}

func newKfake(t *testing.T, opts ...kfake.Opt) cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return cluster{
		brokers: c.ListenAddrs(),
		createTopic: func(t *testing.T, topic string, partitions int) {
			if err := c.CreateTopic(topic, int32(partitions), nil); err != nil {
				t.Fatalf("creating topic %s: %v", topic, err)
			}
		},
	}
}

func TestKfakeConsumeAll(t *testing.T)      { scenarioConsumeAll(t, newKfake(t), 2000) }
func TestKfakeConsumeAllAhead(t *testing.T) { scenarioConsumeAll(t, newKfake(t), 2000, true) }
func TestKfakePositions(t *testing.T)       { scenarioPositions(t, newKfake(t)) }
func TestKfakeHandover(t *testing.T)        { scenarioHandover(t, newKfake(t)) }
func TestKfakeNoCommitOnFail(t *testing.T)  { scenarioNoCommitOnFailure(t, newKfake(t)) }

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "oppsync-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestKfakeBrokerRestart: while the broker is down Run keeps retrying and
// Ready reports not-ready; when it is back the source rejoins and consumes
// what was produced meanwhile, without losing or repeating messages.
func TestKfakeBrokerRestart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	boot := func() *kfake.Cluster {
		t.Helper()
		var c *kfake.Cluster
		testenv.Eventually(t, waitLong, func() (bool, string) { // the port may linger briefly
			c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SyncWrites())
			return err == nil, fmt.Sprintf("starting kfake on port %d: %v", port, err)
		})
		return c
	}
	kc := boot()
	c := cluster{brokers: kc.ListenAddrs()}
	const topic, group = "restart", "restart-group"
	if err := kc.CreateTopic(topic, 2, nil); err != nil {
		t.Fatal(err)
	}
	produce(t, c, topic, 0, 100)
	rec := newRecorder()
	src := start(t, testConfig(c, topic, group), rec, nil)
	waitCount(t, 100, rec)
	waitCommitted(t, c, group, topic, map[int]int64{0: mustLen(rec, topic, 0), 1: mustLen(rec, topic, 1)})

	kc.Close()
	testenv.Eventually(t, waitLong, func() (bool, string) {
		return src.Ready() != nil, "Ready = nil with the broker down"
	})
	select {
	case err := <-src.done:
		t.Fatalf("Run returned %v while the broker was down", err)
	default:
	}

	kc = boot()
	t.Cleanup(kc.Close)
	produce(t, c, topic, 100, 200)
	waitCount(t, 200, rec)
	testenv.Eventually(t, waitLong, func() (bool, string) {
		err := src.Ready()
		return err == nil, fmt.Sprintf("Ready after the restart: %v", err)
	})
	checkExactlyOnce(t, []*recorder{rec}, topic, 200)
	if err := src.stop(t); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
}

func mustLen(r *recorder, topic string, p int) int64 {
	offs, _, _ := r.snapshot()
	return int64(len(offs[topicPartition{topic, p}]))
}

func TestKfakeAddPartitions(t *testing.T) { scenarioAddPartitions(t, newKfake(t)) }

// TestKfakeSASL: the group, the partition readers, Ping and the Writer all
// authenticate; wrong credentials leave the source not ready.
func TestKfakeSASL(t *testing.T) {
	tests := []struct {
		mechanism, kfakeMethod string
	}{
		{SASLPlain, "PLAIN"},
		{SASLScramSHA256, "SCRAM-SHA-256"},
		{SASLScramSHA512, "SCRAM-SHA-512"},
	}
	for _, tt := range tests {
		t.Run(tt.mechanism, func(t *testing.T) {
			kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
				kfake.Superuser(tt.kfakeMethod, "alice", "s3cret"), kfake.SeedTopics(2, "sasl"))
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			cfg := testConfig(cluster{brokers: kc.ListenAddrs()}, "sasl", "sasl-group")
			cfg.SASL = SASLConfig{Mechanism: tt.mechanism, Username: "alice", Password: "s3cret"}

			produceWith(t, cfg, "sasl", 0, 50)
			consumeAll(t, cfg, "sasl", 50)

			bad := cfg
			bad.GroupID = "sasl-bad"
			bad.SASL.Password = "wrong"
			other := start(t, bad, newRecorder(), nil)
			if err := other.Ping(context.Background()); err == nil {
				t.Error("Ping with a wrong password = nil")
			}
			testenv.Eventually(t, waitLong, func() (bool, string) {
				return other.Ready() != nil, "Ready = nil with a wrong password"
			})
		})
	}
}

// TestKfakeTLS: the group, the readers, Ping and the Writer verify the
// broker's certificate against kafka.tls.ca_file.
func TestKfakeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "tls"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	c := cluster{brokers: kc.ListenAddrs()}
	cfg := testConfig(c, "tls", "tls-group")
	cfg.TLS = TLSConfig{Enabled: true, CAFile: certFile}

	produceWith(t, cfg, "tls", 0, 50)
	consumeAll(t, cfg, "tls", 50)

	// Without the CA the broker's certificate is not trusted.
	untrusted := cfg
	untrusted.TLS = TLSConfig{Enabled: true}
	other, err := New(untrusted, newRecorder(), nil, prometheus.NewRegistry(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Ping(context.Background()); err == nil {
		t.Error("Ping trusted a self-signed broker certificate without its CA")
	}
}
