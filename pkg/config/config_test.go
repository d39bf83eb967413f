package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"api_calls.bad.yml", `config: salesforce.max_api_calls_per_day: must be >= 0 (0: no limit), got -5`},
		{"bool.bad.yml", `config: kafka.tls.enabled: line 3: must be true or false, got "maybe"`},
		{"bridge_channel.bad.yml", `config: bridge.channels: "OpportunityChangeEvent" is not a change event channel like /data/OpportunityChangeEvent`},
		{"bridge_expired.bad.yml", `config: bridge.on_expired_replay: must be "fail", "earliest" or "latest", got "skip"`},
		{"bridge_in_flight.bad.yml", `config: bridge.max_in_flight: must be between 1 and 1000, got 0`},
		{"bridge_plaintext_ca.bad.yml", `config: bridge.tls.ca_file: must be empty when bridge.plaintext is true`},
		{"bridge_start.bad.yml", `config: bridge.start: must be "latest" or "earliest", got "now"`},
		{"bridge_endpoint.bad.yml", `config: bridge.endpoint: "https://api.pubsub.example" must have a port between 1 and 65535`},
		{"schemas_topic.bad.yml", `config: schemas.topic: "sf schemas" is not a valid topic name`},
		{"broker.bad.yml", `config: kafka.brokers: "localhost" must be host:port`},
		{"broker_credentials.bad.yml", `config: kafka.brokers: "***@kafka-2:9092" must be host:port without credentials (they have their own keys)`},
		{"campaigns_max.bad.yml", `config: campaigns.max: must be from 1 to 10000, got 0`},
		{"currency.bad.yml", `config: currency.default: must be a 3-letter uppercase ISO code, got "usd"`},
		{"duplicate.bad.yml", `config: log.level: line 3: duplicate key (first at line 2)`},
		{"duration.bad.yml", `config: triggers.pending_role_timeout: line 2: must be a duration like 30s or 1h, got "30"`},
		{"duration_negative.bad.yml", `config: activity.retention: must be a positive duration, got -1h0m0s`},
		{"group_scalar.bad.yml", `config: kafka: line 1: must be a mapping, got a scalar`},
		{"hidden_field.bad.yml", `config: access.hidden_fields: "Account.Name" must be Opportunity.<Field> or OpportunityContactRole.<Field>`},
		{"http_addr.bad.yml", `config: http.addr: "8080" must be host:port`},
		{"list_mapping.bad.yml", `config: kafka.brokers: line 3: must be a list, got a mapping`},
		{"log_format.bad.yml", `config: log.format: must be "json" or "console", got "text"`},
		{"log_level.bad.yml", `config: log.level: must be one of trace, debug, info, warn, error, got "verbose"`},
		{"maxlen.bad.yml", `config: streams.maxlen: must be positive, got 0`},
		{"maxlen_type.bad.yml", `config: streams.maxlen: line 2: must be an integer, got "lots"`},
		{"org_braces.bad.yml", `config: org_id: may contain only letters, digits, '_', '.' and '-' (it is a Redis hash tag), got "{acme}"`},
		{"org_empty.bad.yml", `config: org_id: must not be empty`},
		{"overflow_resync.bad.yml", `config: salesforce.overflow_resync: line 2: must be true or false, got "sometimes"`},
		{"rate.bad.yml", `config: currency.rates: rate of EUR must be positive, got -1.08`},
		{"redis_addr.bad.yml", `config: redis.addrs: "redis:port" must have a port between 1 and 65535`},
		{"redis_url.bad.yml", `config: redis.addrs: "redis://***@redis-1:6379" must be host:port`},
		{"redis_db.bad.yml", `config: redis.db: must be >= 0, got -1`},
		{"registry_url.bad.yml", `config: schema_registry.url: must be an http:// or https:// URL with a host`},
		{"sasl_mechanism.bad.yml", `config: kafka.sasl.mechanism: must be "plain", "scram-sha-256" or "scram-sha-512", got "gssapi"`},
		{"sasl_password.bad.yml", `config: kafka.sasl.password: required when kafka.sasl.mechanism is "plain"`},
		{"secret_both.bad.yml", `config: redis.password_file: set either redis.password or redis.password_file, not both`},
		{"start_offset.bad.yml", `config: kafka.start_offset: must be "earliest" or "latest", got "newest"`},
		{"syntax.bad.yml", `config: parsing yaml: yaml: line 1: did not find expected ',' or ']'`},
		{"tls_cert.bad.yml", `config: redis.tls.cert_file: redis.tls.cert_file and redis.tls.key_file must be set together`},
		{"top_list.bad.yml", `config: line 1: must be a mapping, got a list`},
		{"topics_empty.bad.yml", `config: kafka.topics: must name at least one topic`},
		{"two_docs.bad.yml", `config: config file must hold exactly one yaml document`},
		{"unknown_nested.bad.yml", `config: kafka.tls.ca_path: unknown key at line 5`},
		{"unknown_top.bad.yml", `config: orgid: unknown key at line 2`},
	}
	listed := map[string]bool{}
	for _, tt := range tests {
		listed[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(LoadOptions{File: filepath.Join("testdata", tt.file)})
			if err == nil {
				t.Fatalf("Load succeeded, want error %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", got, tt.want)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Errorf("error is %T, want *KeyError", err)
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("error echoes a secret: %s", err)
			}
		})
	}
	// Every fixture must be in the table, so none is silently untested.
	files, err := filepath.Glob(filepath.Join("testdata", "*.bad.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("fixture %s has no expected error in the table", f)
		}
	}
}

func fullWant() *Config {
	return &Config{
		OrgID:           "acme-prod.eu_1",
		ShutdownTimeout: 45 * time.Second,
		Salesforce: Salesforce{InstanceURL: "https://acme.my.salesforce.com", APIVersion: "62.0",
			ClientID: "oppsync-connected-app", ClientSecret: "salesforce-secret-value",
			TokenURL: "https://login.salesforce.com/services/oauth2/token", RateLimit: 5, Interval: 2 * time.Minute,
			Timeout: 10 * time.Second, OverflowResync: false, MaxAPICallsPerDay: 2500},
		Kafka: Kafka{
			Brokers:      []string{"kafka-1:9092", "kafka-2:9092"},
			Topics:       []string{"sf.OpportunityChangeEvent", "sf.OpportunityContactRoleChangeEvent"},
			GroupID:      "oppsync-prod",
			StartOffset:  "latest",
			SchemaHeader: "x-schema-id",
			MaxBatch:     250,
			TLS: TLS{Enabled: true, CAFile: "/etc/ssl/kafka/ca.pem", CertFile: "/etc/ssl/kafka/client.pem",
				KeyFile: "/etc/ssl/kafka/client.key", ServerName: "kafka.internal"},
			SASL: SASL{Mechanism: "scram-sha-512", Username: "oppsync", Password: "kafka-secret-value"},
		},
		SchemaRegistry: SchemaRegistry{URL: "https://registry.internal:8081", Username: "sr-user",
			Password: "registry-secret-value", Timeout: 5 * time.Second},
		Schemas: Schemas{Dir: "/var/lib/oppsync/schemas", Topic: "sf.schemas", Wait: 20 * time.Second},
		Bridge: Bridge{Channels: []string{"/data/OpportunityChangeEvent", "/data/Sales__chn"}, Endpoint: "pubsub.internal:7443",
			TLS: BridgeTLS{CAFile: "/etc/ssl/pubsub/ca.pem"}, MaxInFlight: 50, TopicPrefix: "sf.", SchemasTopic: "sf.schemas",
			Start: "earliest", OnExpiredReplay: "latest"},
		Redis: Redis{
			Addrs:    []string{"redis-1:6379", "redis-2:6379", "redis-3:6379"},
			Username: "oppsync", Password: "redis-secret-value", PoolSize: 64,
			DialTimeout: 2 * time.Second, ReadTimeout: time.Second, WriteTimeout: 1500 * time.Millisecond,
			TLS: TLS{Enabled: true, CAFile: "/etc/ssl/redis/ca.pem", ServerName: "redis.internal"},
		},
		Streams:  Streams{MaxLen: 50000},
		Currency: Currency{Default: "EUR", Rates: map[string]float64{"USD": 0.92, "GBP": 1.17}},
		Access:   Access{HiddenFields: []string{"Opportunity.Description", "OpportunityContactRole.Role"}},
		Triggers: Triggers{IgnoreFields: []string{"LastModifiedDate", "SystemModstamp", "LastActivityDate"},
			PendingRoleTimeout: time.Minute},
		Activity:  Activity{Retention: 720 * time.Hour},
		Campaigns: Campaigns{Max: 200},
		HTTP:      HTTP{Addr: "0.0.0.0:9090", AuthToken: "http-secret-value"},
		Log:       Log{Level: "debug", Format: "console"},
	}
}

func TestFullGood(t *testing.T) {
	got, err := Load(LoadOptions{File: filepath.Join("testdata", "full.good.yml")})
	if err != nil {
		t.Fatal(err)
	}
	want := fullWant()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(full.good.yml)\n got: %+v\nwant: %+v", got, want)
	}

	// Round trip: the rendered config loads back to the same value, secrets
	// aside (they are masked).
	out, err := got.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := load(out, LoadOptions{})
	if err != nil {
		t.Fatalf("loading rendered config: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, got.Redacted()) {
		t.Fatalf("round trip differs\n got: %+v\nwant: %+v", back, got.Redacted())
	}
}

func TestDefaults(t *testing.T) {
	got, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Fatalf("Load without layers = %+v, want Default()", got)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"org_id", got.OrgID, "default"},
		{"kafka.brokers", got.Kafka.Brokers, []string{"localhost:9092"}},
		{"kafka.topics", got.Kafka.Topics, []string{"salesforce.OpportunityChangeEvent", "salesforce.OpportunityContactRoleChangeEvent"}},
		{"kafka.group_id", got.Kafka.GroupID, "oppsync"},
		{"kafka.start_offset", got.Kafka.StartOffset, "earliest"},
		{"kafka.schema_header", got.Kafka.SchemaHeader, "sf-schema-id"},
		{"kafka.max_batch", got.Kafka.MaxBatch, 500},
		{"schema_registry.timeout", got.SchemaRegistry.Timeout, 10 * time.Second},
		{"redis.addrs", got.Redis.Addrs, []string{"localhost:6379"}},
		{"redis.dial_timeout", got.Redis.DialTimeout, 5 * time.Second},
		{"redis.read_timeout", got.Redis.ReadTimeout, 3 * time.Second},
		{"redis.write_timeout", got.Redis.WriteTimeout, 3 * time.Second},
		{"streams.maxlen", got.Streams.MaxLen, int64(1000000)},
		{"currency.default", got.Currency.Default, "USD"},
		{"triggers.ignore_fields", got.Triggers.IgnoreFields, []string{"LastModifiedDate", "LastModifiedById", "SystemModstamp"}},
		{"triggers.pending_role_timeout", got.Triggers.PendingRoleTimeout, 30 * time.Second},
		{"activity.retention", got.Activity.Retention, 8760 * time.Hour},
		{"campaigns.max", got.Campaigns.Max, 1000},
		{"http.addr", got.HTTP.Addr, ":8080"},
		{"log.level", got.Log.Level, "info"},
		{"log.format", got.Log.Format, "json"},
		{"shutdown_timeout", got.ShutdownTimeout, 30 * time.Second},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		check   func(*Config) bool
		wantErr string
	}{
		{"list", []string{"OPPSYNC_KAFKA_BROKERS=a:9092, b:9092"},
			func(c *Config) bool { return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092"}) }, ""},
		{"nested", []string{"OPPSYNC_KAFKA_TLS_SERVER_NAME=k.internal", "OPPSYNC_KAFKA_TLS_ENABLED=true"},
			func(c *Config) bool { return c.Kafka.TLS.Enabled && c.Kafka.TLS.ServerName == "k.internal" }, ""},
		{"underscore in key", []string{"OPPSYNC_KAFKA_START_OFFSET=latest"},
			func(c *Config) bool { return c.Kafka.StartOffset == "latest" }, ""},
		{"duration", []string{"OPPSYNC_TRIGGERS_PENDING_ROLE_TIMEOUT=2m"},
			func(c *Config) bool { return c.Triggers.PendingRoleTimeout == 2*time.Minute }, ""},
		{"int", []string{"OPPSYNC_STREAMS_MAXLEN=42"},
			func(c *Config) bool { return c.Streams.MaxLen == 42 }, ""},
		{"map", []string{"OPPSYNC_CURRENCY_RATES=EUR=1.08,GBP=1.27"},
			func(c *Config) bool {
				return reflect.DeepEqual(c.Currency.Rates, map[string]float64{"EUR": 1.08, "GBP": 1.27})
			}, ""},
		{"empty list clears", []string{"OPPSYNC_TRIGGERS_IGNORE_FIELDS="},
			func(c *Config) bool { return len(c.Triggers.IgnoreFields) == 0 }, ""},
		{"other variables ignored", []string{"HOME=/root", "PATH=/bin", "NOEQUALS", "OPPSYNC_TEST_REDIS_ADDR=x"},
			func(c *Config) bool { return reflect.DeepEqual(c, Default()) }, ""},
		{"unknown variable", []string{"OPPSYNC_KAFKA_BROKER=a:9092"}, nil,
			"config: OPPSYNC_KAFKA_BROKER: unknown environment variable: no config key has this name"},
		{"bad value", []string{"OPPSYNC_REDIS_DB=zero"}, nil,
			`config: redis.db: from OPPSYNC_REDIS_DB: must be an integer, got "zero"`},
		{"bad map", []string{"OPPSYNC_CURRENCY_RATES=EUR"}, nil,
			`config: currency.rates: from OPPSYNC_CURRENCY_RATES: must be CODE=RATE pairs separated by commas, got "EUR"`},
		{"validated", []string{"OPPSYNC_LOG_LEVEL=loud"}, nil,
			`config: log.level: must be one of trace, debug, info, warn, error, got "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadAndCheck(t, LoadOptions{Environ: tt.environ}, tt.wantErr, tt.check)
		})
	}
}

// loadAndCheck loads with opts and expects exactly wantErr, or (when it is
// empty) a configuration check accepts.
func loadAndCheck(t *testing.T, opts LoadOptions, wantErr string, check func(*Config) bool) {
	t.Helper()
	c, err := Load(opts)
	if wantErr != "" {
		if err == nil || err.Error() != wantErr {
			t.Fatalf("error = %v, want %s", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !check(c) {
		t.Errorf("options %+v not applied: %+v", opts, c)
	}
}

func TestEnvNamesUnique(t *testing.T) {
	seen := map[string]string{}
	for _, k := range Keys() {
		n := EnvName(k)
		if prev, dup := seen[n]; dup {
			t.Errorf("%s and %s share %s", prev, k, n)
		}
		seen[n] = k
	}
	if got := EnvName("kafka.sasl.password"); got != "OPPSYNC_KAFKA_SASL_PASSWORD" {
		t.Errorf("EnvName = %s", got)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "c.yml", "log:\n  level: debug\n  format: console\norg_id: fromfile\nkafka:\n  group_id: g-file\n")
	tests := []struct {
		name    string
		environ []string
		flags   map[string]string
		want    [4]string // log.level, log.format, org_id, kafka.group_id
	}{
		{"file only", nil, nil, [4]string{"debug", "console", "fromfile", "g-file"}},
		{"env over file", []string{"OPPSYNC_LOG_LEVEL=warn", "OPPSYNC_ORG_ID=fromenv"}, nil,
			[4]string{"warn", "console", "fromenv", "g-file"}},
		{"flag over env and file", []string{"OPPSYNC_LOG_LEVEL=warn", "OPPSYNC_ORG_ID=fromenv"},
			map[string]string{"log.level": "error", "kafka.group_id": "g-flag"},
			[4]string{"error", "console", "fromenv", "g-flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(LoadOptions{File: file, Environ: tt.environ, Flags: tt.flags})
			if err != nil {
				t.Fatal(err)
			}
			got := [4]string{c.Log.Level, c.Log.Format, c.OrgID, c.Kafka.GroupID}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		flags   map[string]string
		wantErr string
		check   func(*Config) bool
	}{
		{"list", map[string]string{"kafka.brokers": "a:9092,b:9092"}, "",
			func(c *Config) bool { return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:9092", "b:9092"}) }},
		{"unknown", map[string]string{"kafka.borkers": "a:9092"}, "config: kafka.borkers: unknown key (flag)", nil},
		{"group is not a key", map[string]string{"kafka": "x"}, "config: kafka: unknown key (flag)", nil},
		{"bad duration", map[string]string{"shutdown_timeout": "soon"},
			`config: shutdown_timeout: must be a duration like 30s or 1h, got "soon"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loadAndCheck(t, LoadOptions{Flags: tt.flags}, tt.wantErr, tt.check)
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kafkaPw := write("kafka", "  kafka-file-secret\n")
	redisPw := write("redis", "redis-file-secret\n")
	regPw := write("registry", "registry-file-secret")
	token := write("token", "token-file-secret\n\n")
	empty := write("empty", " \n")

	c, err := Load(LoadOptions{Flags: map[string]string{
		"kafka.sasl.mechanism":          "plain",
		"kafka.sasl.username":           "u",
		"kafka.sasl.password_file":      kafkaPw,
		"redis.password_file":           redisPw,
		"schema_registry.url":           "http://registry:8081",
		"schema_registry.username":      "sr",
		"schema_registry.password_file": regPw,
		"http.auth_token_file":          token,
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Kafka.SASL.Password, c.Redis.Password, c.SchemaRegistry.Password, c.HTTP.AuthToken}
	want := []string{"kafka-file-secret", "redis-file-secret", "registry-file-secret", "token-file-secret"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("secrets = %q, want %q", got, want)
	}

	errs := []struct {
		name  string
		flags map[string]string
		want  string
	}{
		{"missing file", map[string]string{"redis.password_file": filepath.Join(dir, "nope")},
			"config: redis.password_file: reading secret: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"empty file", map[string]string{"http.auth_token_file": empty},
			"config: http.auth_token_file: secret file " + empty + " is empty"},
		{"both set", map[string]string{"http.auth_token_file": token, "http.auth_token": "inline-secret-value"},
			"config: http.auth_token_file: set either http.auth_token or http.auth_token_file, not both"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(LoadOptions{Flags: tt.flags})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestRedactedMasksEverySecret(t *testing.T) {
	c := fullWant()
	// Set every secret key, whichever struct it lives in, to a recognisable value.
	v := reflectValue(c)
	values := map[string]string{}
	for _, key := range SecretKeys() {
		val := "s3cr3t-" + strings.ReplaceAll(key, ".", "-")
		v.FieldByIndex(byKey[key].index).SetString(val)
		values[key] = val
	}
	if len(values) != 5 {
		t.Fatalf("SecretKeys() = %v, want the 5 secrets", SecretKeys())
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	for key, val := range values {
		if strings.Contains(string(out), val) {
			t.Errorf("printed config contains the value of %s:\n%s", key, out)
		}
	}
	if n := strings.Count(string(out), Mask); n != len(values) {
		t.Errorf("printed config has %d masks, want %d:\n%s", n, len(values), out)
	}
	// Redacted must not alias the original.
	r := c.Redacted()
	r.Kafka.Brokers[0] = "changed:1"
	r.Currency.Rates["USD"] = 99
	if c.Kafka.Brokers[0] == "changed:1" || c.Currency.Rates["USD"] == 99 {
		t.Error("Redacted shares slices or maps with the original")
	}
	if c.HTTP.AuthToken != values["http.auth_token"] {
		t.Error("Redacted modified the original")
	}
	// An unset secret stays empty rather than showing a mask.
	if d := Default().Redacted(); d.Redis.Password != "" {
		t.Errorf("empty secret rendered as %q", d.Redis.Password)
	}
}

func TestValidateDoesNotEchoSecrets(t *testing.T) {
	c := Default()
	c.SchemaRegistry.URL = "http://user:registry-secret-value@:8081"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Validate() = %v, want an error without the URL's password", err)
	}
}

func TestValidateCases(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"ipv6 broker", func(c *Config) { c.Kafka.Brokers = []string{"[::1]:9092"} }, ""},
		{"cluster db", func(c *Config) { c.Redis.Addrs = []string{"a:1", "b:2"}; c.Redis.DB = 1 },
			"config: redis.db: must be 0 with several redis.addrs (Redis Cluster has only db 0), got 1"},
		{"duplicate topic", func(c *Config) { c.Kafka.Topics = []string{"t", "t"} }, `config: kafka.topics: "t" is listed twice`},
		{"max_batch", func(c *Config) { c.Kafka.MaxBatch = 0 }, "config: kafka.max_batch: 0 is not in [1, 100000]"},
		{"max_batch above the consumer's bound", func(c *Config) { c.Kafka.MaxBatch = 200_000 }, "config: kafka.max_batch: 200000 is not in [1, 100000]"},
		{"sasl without mechanism", func(c *Config) { c.Kafka.SASL.Username = "u" },
			"config: kafka.sasl.mechanism: must be set when kafka.sasl.username or kafka.sasl.password is"},
		{"tls disabled with files", func(c *Config) { c.Redis.TLS.CAFile = "/ca.pem" },
			"config: redis.tls.enabled: must be true when other redis.tls keys are set"},
		{"default rate", func(c *Config) { c.Currency.Rates = map[string]float64{"USD": 2} },
			"config: currency.rates: rate of the default currency USD must be 1, got 2"},
		{"rate code", func(c *Config) { c.Currency.Rates = map[string]float64{"Euro": 1.1} },
			`config: currency.rates: "Euro" is not a 3-letter uppercase ISO code`},
		{"nested hidden field", func(c *Config) { c.Access.HiddenFields = []string{"Opportunity.Account.Name"} }, ""},
		{"shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "config: shutdown_timeout: must be a positive duration, got 0s"},
		{"registry creds", func(c *Config) { c.SchemaRegistry.URL = "http://r:8081"; c.SchemaRegistry.Username = "u" },
			"config: schema_registry.username: schema_registry.username and schema_registry.password must be set together"},
		{"pool size", func(c *Config) { c.Redis.PoolSize = -1 }, "config: redis.pool_size: must be >= 0 (0 is the client default), got -1"},
		{"salesforce off", func(c *Config) { c.Salesforce.ClientID = "id" },
			"config: salesforce.instance_url: must be set when other salesforce keys are"},
		{"salesforce url", func(c *Config) { c.Salesforce.InstanceURL = "ftp://x" },
			"config: salesforce.instance_url: must be an http:// or https:// URL with a host"},
		{"salesforce secret", func(c *Config) { c.Salesforce.InstanceURL, c.Salesforce.ClientID = "https://x.my.salesforce.com", "id" },
			"config: salesforce.client_secret: required when salesforce.instance_url is set"},
		{"salesforce ok", func(c *Config) {
			c.Salesforce.InstanceURL, c.Salesforce.ClientID, c.Salesforce.ClientSecret = "https://x.my.salesforce.com", "id", "s"
		}, ""},
		{"salesforce version", func(c *Config) { c.Salesforce.APIVersion = "v61" }, `config: salesforce.api_version: must look like "61.0", got "v61"`},
		{"salesforce rate", func(c *Config) { c.Salesforce.RateLimit = 0 }, "config: salesforce.rate_limit: must be positive, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("Validate() = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestYAMLNulls(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(*Config) bool
	}{
		{"empty group keeps defaults", "kafka:\n", func(c *Config) bool { return c.Kafka.GroupID == "oppsync" }},
		{"null list clears", "triggers:\n  ignore_fields:\n", func(c *Config) bool { return len(c.Triggers.IgnoreFields) == 0 }},
		{"comma string list", "kafka:\n  brokers: a:1,b:2\n",
			func(c *Config) bool { return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:1", "b:2"}) }},
		{"anchors", "x_: &b [a:1]\n", nil},
		{"alias", "kafka:\n  brokers: &b [a:1]\nredis:\n  addrs: *b\n",
			func(c *Config) bool { return reflect.DeepEqual(c.Redis.Addrs, []string{"a:1"}) }},
		{"empty document", "# nothing\n", func(c *Config) bool { return reflect.DeepEqual(c, Default()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load([]byte(tt.yaml), LoadOptions{})
			if tt.check == nil {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}
