package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/source"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/tlsconf"
)

// Config is the whole configuration of an oppsync process. The yaml tags are the
// key names of CONTRACT §2; see Keys for the flat list of dotted keys.
type Config struct {
	// OrgID is the Salesforce org / tenant id; it is the Redis hash tag of every key.
	OrgID          string         `yaml:"org_id"`
	Kafka          Kafka          `yaml:"kafka"`
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	Schemas        Schemas        `yaml:"schemas"`
	Redis          Redis          `yaml:"redis"`
	Streams        Streams        `yaml:"streams"`
	Currency       Currency       `yaml:"currency"`
	Access         Access         `yaml:"access"`
	Triggers       Triggers       `yaml:"triggers"`
	Activity       Activity       `yaml:"activity"`
	Campaigns      Campaigns      `yaml:"campaigns"`
	HTTP           HTTP           `yaml:"http"`
	Log            Log            `yaml:"log"`
	Salesforce     Salesforce     `yaml:"salesforce"`
	Bridge         Bridge         `yaml:"bridge"`
	// ShutdownTimeout bounds the ordered shutdown after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Kafka configures the consumer.
type Kafka struct {
	Brokers     []string `yaml:"brokers" url:"true"`
	Topics      []string `yaml:"topics"`
	GroupID     string   `yaml:"group_id"`
	StartOffset string   `yaml:"start_offset"` // "earliest" or "latest"
	// SchemaHeader marks a raw Pub/Sub payload and carries its schema id.
	SchemaHeader string `yaml:"schema_header"`
	// MaxBatch bounds how many messages are fetched and handled per batch.
	MaxBatch int  `yaml:"max_batch"`
	TLS      TLS  `yaml:"tls"`
	SASL     SASL `yaml:"sasl"`
}

// TLS configures a TLS client connection (kafka.tls.*, redis.tls.*).
type TLS = tlsconf.Config

// SASL configures Kafka authentication. An empty Mechanism disables SASL.
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // "", "plain", "scram-sha-256", "scram-sha-512"
	Username     string `yaml:"username"`
	Password     string `yaml:"password" secret:"true"`
	PasswordFile string `yaml:"password_file"`
}

// SchemaRegistry configures the Confluent-compatible registry used for
// wire-format messages. An empty URL disables it.
type SchemaRegistry struct {
	URL          string        `yaml:"url" url:"true"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password" secret:"true"`
	PasswordFile string        `yaml:"password_file"`
	Timeout      time.Duration `yaml:"timeout"`
}

// Schemas configures where the writer schemas of raw Pub/Sub payloads come
// from: a directory of <schemaId>.avsc files, and/or the compacted topic
// `oppsync bridge` publishes them to.
type Schemas struct {
	Dir string `yaml:"dir"`
	// Topic is a compacted Kafka topic of schemas (key schema id, value the
	// schema JSON), read from the start and followed live; empty: none.
	Topic string `yaml:"topic"`
	// Wait bounds how long a message whose schema id is not on Topic yet
	// waits for it before it is dead-lettered as schema_not_found.
	Wait time.Duration `yaml:"wait"`
}

// BridgeTLS configures the bridge's TLS to the Pub/Sub API.
type BridgeTLS struct {
	// CAFile replaces the system roots for the endpoint's certificate.
	CAFile string `yaml:"ca_file"`
}

// Bridge configures `oppsync bridge`: Salesforce Pub/Sub API → Kafka
// (CONTRACT §9). It authenticates with the salesforce.* OAuth settings and
// writes with the kafka.* connection settings.
type Bridge struct {
	// Channels are the Pub/Sub topics subscribed to, e.g.
	// /data/OpportunityChangeEvent.
	Channels []string `yaml:"channels"`
	// Endpoint is the Pub/Sub API's host:port.
	Endpoint string    `yaml:"endpoint"`
	TLS      BridgeTLS `yaml:"tls"`
	// Plaintext talks to Endpoint without TLS (a local proxy, a test server).
	Plaintext bool `yaml:"plaintext"`
	// MaxInFlight bounds the events requested from Salesforce and not yet
	// acknowledged by Kafka.
	MaxInFlight int `yaml:"max_in_flight"`
	// TopicPrefix + the change event name is an event's Kafka topic.
	TopicPrefix string `yaml:"topic_prefix"`
	// SchemasTopic is the compacted topic schemas are published to.
	SchemasTopic string `yaml:"schemas_topic"`
	// Start is where a deployment without a stored position starts:
	// "latest" or "earliest".
	Start string `yaml:"start"`
	// OnExpiredReplay is what to do when Salesforce no longer has the stored
	// replay id: "fail", "earliest" or "latest".
	OnExpiredReplay string `yaml:"on_expired_replay"`
}

// Redis configures the Redis client; several Addrs mean Redis Cluster.
type Redis struct {
	Addrs        []string      `yaml:"addrs" url:"true"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password" secret:"true"`
	PasswordFile string        `yaml:"password_file"`
	DB           int           `yaml:"db"`
	PoolSize     int           `yaml:"pool_size"` // 0: the go-redis default
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	TLS          TLS           `yaml:"tls"`
}

// Streams configures the trigger streams.
type Streams struct {
	// MaxLen is the length each output stream (triggers, dlq, resync) is
	// trimmed to, approximately; pkg/retention never trims past an entry a
	// consumer group of the stream has not acknowledged.
	MaxLen int64 `yaml:"maxlen"`
}

// Currency configures amount labelling and conversion.
type Currency struct {
	Default string `yaml:"default"`
	// Rates maps an ISO code to its rate to Default; nil disables conversion.
	Rates map[string]float64 `yaml:"rates"`
}

// Access lists fields the Salesforce sync user cannot read.
type Access struct {
	// HiddenFields holds "Entity.Field" entries, e.g. "Opportunity.Description".
	HiddenFields []string `yaml:"hidden_fields"`
}

// Triggers configures trigger emission.
type Triggers struct {
	IgnoreFields       []string      `yaml:"ignore_fields"`
	PendingRoleTimeout time.Duration `yaml:"pending_role_timeout"`
}

// Activity configures the activity log behind the was-added/removed/updated filters.
type Activity struct {
	Retention time.Duration `yaml:"retention"`
}

// Campaigns configures campaign definitions (CONTRACT §8).
type Campaigns struct {
	// Max bounds the campaigns of the org (a create beyond it is refused).
	Max int `yaml:"max"`
}

// HTTP configures the API, health and metrics listener.
type HTTP struct {
	Addr          string `yaml:"addr"`
	AuthToken     string `yaml:"auth_token" secret:"true"`
	AuthTokenFile string `yaml:"auth_token_file"`
}

// Log configures zerolog.
type Log struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn, error
	Format string `yaml:"format"` // json, console
}

// Salesforce configures the optional REST client that re-reads stale
// records (pkg/reconcile). An empty InstanceURL disables it: stale records
// then stay flagged for an operator.
type Salesforce struct {
	InstanceURL      string `yaml:"instance_url" url:"true"`
	APIVersion       string `yaml:"api_version"`
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret" secret:"true"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// TokenURL defaults to <instance_url>/services/oauth2/token.
	TokenURL string `yaml:"token_url" url:"true"`
	// RateLimit is the sustained number of REST requests per second.
	RateLimit int `yaml:"rate_limit"`
	// Interval is how often the service looks for stale records.
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// OverflowResync turns on the whole-entity re-read after GAP_OVERFLOW;
	// off, the entity stays marked for resync for an operator.
	OverflowResync bool `yaml:"overflow_resync"`
	// MaxAPICallsPerDay bounds the REST calls of all instances per UTC day
	// (0: no bound).
	MaxAPICallsPerDay int64 `yaml:"max_api_calls_per_day"`
}

// Default returns the configuration with every default of CONTRACT §2 applied.
// The defaults of a component's settings are the component's own.
func Default() *Config {
	src, dec, st := source.DefaultConfig(), decode.Config{}.WithDefaults(), state.DefaultConfig("default")
	return &Config{
		OrgID: "default",
		Kafka: Kafka{
			Brokers:      src.Brokers,
			Topics:       src.Topics,
			GroupID:      src.GroupID,
			StartOffset:  src.StartOffset,
			SchemaHeader: dec.SchemaHeader,
			MaxBatch:     src.MaxBatch,
		},
		SchemaRegistry: SchemaRegistry{Timeout: dec.RegistryTimeout},
		Redis: Redis{
			Addrs:        []string{"localhost:6379"},
			DialTimeout:  5 * time.Second,
			ReadTimeout:  3 * time.Second,
			WriteTimeout: 3 * time.Second,
		},
		Streams:  Streams{MaxLen: 1000000},
		Currency: Currency{Default: st.Currency},
		Triggers: Triggers{
			IgnoreFields:       []string{"LastModifiedDate", "LastModifiedById", "SystemModstamp"},
			PendingRoleTimeout: st.PendingTimeout,
		},
		Schemas:         Schemas{Wait: 10 * time.Second},
		Activity:        Activity{Retention: st.ActivityRetention},
		Campaigns:       Campaigns{Max: 1000},
		HTTP:            HTTP{Addr: ":8080"},
		Log:             Log{Level: "info", Format: "json"},
		ShutdownTimeout: 30 * time.Second,
		Salesforce: Salesforce{APIVersion: "61.0", RateLimit: 10, Interval: time.Minute, Timeout: 30 * time.Second,
			OverflowResync: true, MaxAPICallsPerDay: 10000},
		Bridge: Bridge{
			Channels:        []string{"/data/OpportunityChangeEvent", "/data/OpportunityContactRoleChangeEvent"},
			Endpoint:        "api.pubsub.salesforce.com:7443",
			MaxInFlight:     100,
			TopicPrefix:     "salesforce.",
			SchemasTopic:    "salesforce.schemas",
			Start:           "latest",
			OnExpiredReplay: "fail",
		},
	}
}

// KeyError is the error Load and Validate return: the dotted key (or, for an
// unknown environment variable, its name) and what is wrong with it. Its
// message never contains a secret value.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string {
	if e.Key == "" {
		return "config: " + e.Err.Error()
	}
	return "config: " + e.Key + ": " + e.Err.Error()
}

func (e *KeyError) Unwrap() error { return e.Err }

// Mask replaces every non-empty secret in Redacted output.
const Mask = "***"

// Redacted returns a deep copy of c with every non-empty secret replaced by
// Mask and the credentials inside every URL-valued key (tag url:"true")
// masked by RedactURL. Empty secrets stay empty so the printout shows that
// none is set.
func (c *Config) Redacted() *Config {
	r := c.clone()
	v := reflectValue(r)
	for _, f := range fields {
		fv := v.FieldByIndex(f.index)
		switch {
		case f.secret && fv.String() != "":
			fv.SetString(Mask)
		case f.url && f.typ == stringsType:
			for i := 0; i < fv.Len(); i++ {
				fv.Index(i).SetString(RedactURL(fv.Index(i).String()))
			}
		case f.url:
			fv.SetString(RedactURL(fv.String()))
		}
	}
	return r
}

// YAML renders the effective configuration, secrets masked, in the same shape
// Load reads.
func (c *Config) YAML() ([]byte, error) {
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return nil, fmt.Errorf("config: rendering yaml: %w", err)
	}
	return out, nil
}

// clone returns a deep copy: slices and maps are not shared with c.
func (c *Config) clone() *Config {
	r := *c
	r.Kafka.Brokers = cloneSlice(c.Kafka.Brokers)
	r.Kafka.Topics = cloneSlice(c.Kafka.Topics)
	r.Redis.Addrs = cloneSlice(c.Redis.Addrs)
	r.Access.HiddenFields = cloneSlice(c.Access.HiddenFields)
	r.Triggers.IgnoreFields = cloneSlice(c.Triggers.IgnoreFields)
	r.Bridge.Channels = cloneSlice(c.Bridge.Channels)
	if c.Currency.Rates != nil {
		r.Currency.Rates = make(map[string]float64, len(c.Currency.Rates))
		for k, v := range c.Currency.Rates {
			r.Currency.Rates[k] = v
		}
	}
	return &r
}

func cloneSlice(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}
