package source

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/oppsync/oppsync/pkg/tlsconf"
)

// Start offsets a new consumer group may begin at.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// SASL mechanisms.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// Config configures the consumer (and the Writer). Keys are named as in the
// configuration file (CONTRACT §2): kafka.brokers, kafka.topics, ...
type Config struct {
	Brokers     []string `yaml:"brokers"`
	Topics      []string `yaml:"topics"`
	GroupID     string   `yaml:"group_id"`
	StartOffset string   `yaml:"start_offset"` // "earliest" | "latest": where a new group starts

	TLS  TLSConfig  `yaml:"tls"`
	SASL SASLConfig `yaml:"sasl"`

	// MaxBatch caps the messages per HandleBatch call. A batch holds only
	// messages already fetched: the source never waits to fill it.
	MaxBatch int `yaml:"max_batch"`

	SessionTimeout    time.Duration `yaml:"session_timeout"`
	RebalanceTimeout  time.Duration `yaml:"rebalance_timeout"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`

	// DrainTimeout bounds how long an in-flight HandleBatch may run after a
	// rebalance or stop before its ctx is cancelled. At most RebalanceTimeout.
	DrainTimeout time.Duration `yaml:"drain_timeout"`

	// CommitInterval is how often handled offsets are committed to the group
	// (all partitions in one request); they are also committed when a
	// generation ends. Positions stored with the state are authoritative, so
	// committing lazily loses nothing.
	CommitInterval time.Duration `yaml:"commit_interval"`
}

// TLSConfig enables TLS to the brokers (kafka.tls.*).
type TLSConfig = tlsconf.Config

// SASLConfig selects SASL authentication. An empty Mechanism disables it.
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"` // "", "plain", "scram-sha-256", "scram-sha-512"
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// Defaults.
const (
	DefaultMaxBatch          = 500
	DefaultSessionTimeout    = 30 * time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultDrainTimeout      = 10 * time.Second
	DefaultCommitInterval    = time.Second
)

// DefaultConfig returns the documented defaults (CONTRACT §2).
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{"localhost:9092"},
		Topics:            []string{"salesforce.OpportunityChangeEvent", "salesforce.OpportunityContactRoleChangeEvent"},
		GroupID:           "oppsync",
		StartOffset:       StartEarliest,
		MaxBatch:          DefaultMaxBatch,
		SessionTimeout:    DefaultSessionTimeout,
		RebalanceTimeout:  DefaultRebalanceTimeout,
		HeartbeatInterval: DefaultHeartbeatInterval,
		DrainTimeout:      DefaultDrainTimeout,
		CommitInterval:    DefaultCommitInterval,
	}
}

// WithDefaults returns c with its zero-valued tunables set to their
// defaults (not the addresses: an empty broker or topic list is a
// configuration error, not a default).
func (c Config) WithDefaults() Config {
	if c.StartOffset == "" {
		c.StartOffset = StartEarliest
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	return c
}

// Validate checks the configuration as given (New and NewWriter apply
// WithDefaults first); it changes nothing. The error names the bad key,
// e.g. "kafka.start_offset: must be earliest or latest".
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker is required")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("kafka.brokers: %q is not host:port", b)
		}
	}
	if len(c.Topics) == 0 {
		return errors.New("kafka.topics: at least one topic is required")
	}
	seen := make(map[string]bool, len(c.Topics))
	for _, t := range c.Topics {
		if strings.TrimSpace(t) == "" || strings.ContainsAny(t, " \t,") {
			return fmt.Errorf("kafka.topics: %q is not a topic name", t)
		}
		if seen[t] {
			return fmt.Errorf("kafka.topics: %q is listed twice", t)
		}
		seen[t] = true
	}
	if strings.TrimSpace(c.GroupID) == "" {
		return errors.New("kafka.group_id: must not be empty")
	}
	if c.StartOffset != StartEarliest && c.StartOffset != StartLatest {
		return errors.New("kafka.start_offset: must be earliest or latest")
	}
	if c.MaxBatch < 1 || c.MaxBatch > 100_000 {
		return fmt.Errorf("kafka.max_batch: %d is not in [1, 100000]", c.MaxBatch)
	}
	const maxTimeout = time.Duration(1<<31-1) * time.Millisecond
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"kafka.session_timeout", c.SessionTimeout},
		{"kafka.rebalance_timeout", c.RebalanceTimeout},
		{"kafka.heartbeat_interval", c.HeartbeatInterval},
		{"kafka.drain_timeout", c.DrainTimeout},
		{"kafka.commit_interval", c.CommitInterval},
	} {
		if d.v < time.Millisecond || d.v > maxTimeout {
			return fmt.Errorf("%s: %s is out of range", d.key, d.v)
		}
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("kafka.heartbeat_interval: %s must be less than kafka.session_timeout (%s)", c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.DrainTimeout > c.RebalanceTimeout {
		return fmt.Errorf("kafka.drain_timeout: %s must not exceed kafka.rebalance_timeout (%s)", c.DrainTimeout, c.RebalanceTimeout)
	}
	if err := c.TLS.Validate("kafka.tls"); err != nil {
		return err
	}
	return c.SASL.validate()
}

func (s SASLConfig) validate() error {
	switch s.Mechanism {
	case "":
		return nil
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return fmt.Errorf("kafka.sasl.mechanism: %q is not plain, scram-sha-256 or scram-sha-512", s.Mechanism)
	}
	if s.Username == "" {
		return errors.New("kafka.sasl.username: required with kafka.sasl.mechanism")
	}
	return nil
}

// build returns the SASL mechanism, nil when disabled.
func (s SASLConfig) build() (sasl.Mechanism, error) {
	switch s.Mechanism {
	case "":
		return nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if s.Mechanism == SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			return nil, fmt.Errorf("kafka.sasl: %w", err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not supported", s.Mechanism)
}

const (
	clientID    = "oppsync"
	dialTimeout = 10 * time.Second
)

// security is the TLS and SASL settings shared by the group, readers and writer.
type security struct {
	tls  *tls.Config
	sasl sasl.Mechanism
}

func (c *Config) security() (security, error) {
	t, err := c.TLS.Client("kafka.tls")
	if err != nil {
		return security{}, err
	}
	m, err := c.SASL.build()
	if err != nil {
		return security{}, err
	}
	return security{tls: t, sasl: m}, nil
}

func (s security) dialer() *kafka.Dialer {
	return &kafka.Dialer{
		ClientID:      clientID,
		Timeout:       dialTimeout,
		DualStack:     true,
		KeepAlive:     30 * time.Second,
		TLS:           s.tls,
		SASLMechanism: s.sasl,
	}
}

// NewWriter returns a kafka-go Writer for cfg.Brokers with the same TLS and
// SASL settings as the consumer. Its Topic is empty: every message names its
// topic. Keys are hashed with murmur2 (the Java client's partitioner), so one
// key always lands on one partition, the same one a Java producer would pick.
// Writes wait for all in-sync replicas. The caller closes the Writer.
func NewWriter(cfg Config) (*kafka.Writer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sec, err := cfg.security()
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Balancer:     kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   16 << 20,
		BatchTimeout: 5 * time.Millisecond,
		Transport: &kafka.Transport{
			ClientID:    clientID,
			DialTimeout: dialTimeout,
			TLS:         sec.tls,
			SASL:        sec.sasl,
		},
	}, nil
}
