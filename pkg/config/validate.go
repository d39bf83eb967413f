package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	orgIDPattern    = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	topicPattern    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	fieldPattern    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$`)
)

// Validate checks every key and returns the first problem as a *KeyError, in
// key order. It does no I/O: files named by *_file keys are read by Load.
func (c *Config) Validate() error {
	for _, check := range []func() error{
		c.validateOrg, c.validateKafka, c.validateRegistry, c.validateRedis,
		c.validateMisc, c.validateHTTP, c.validateLog, c.validateSalesforce, c.validateBridge,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func keyErr(key, format string, args ...any) error {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}

func (c *Config) validateOrg() error {
	if c.OrgID == "" {
		return keyErr("org_id", "must not be empty")
	}
	if !orgIDPattern.MatchString(c.OrgID) {
		return keyErr("org_id", "may contain only letters, digits, '_', '.' and '-' (it is a Redis hash tag), got %q", c.OrgID)
	}
	return nil
}

func (c *Config) validateKafka() error {
	k := c.Kafka
	if err := hostPorts("kafka.brokers", k.Brokers); err != nil {
		return err
	}
	if len(k.Topics) == 0 {
		return keyErr("kafka.topics", "must name at least one topic")
	}
	seen := map[string]bool{}
	for _, t := range k.Topics {
		if !validTopic(t) {
			return keyErr("kafka.topics", "%q is not a valid topic name", t)
		}
		if seen[t] {
			return keyErr("kafka.topics", "%q is listed twice", t)
		}
		seen[t] = true
	}
	if strings.TrimSpace(k.GroupID) == "" {
		return keyErr("kafka.group_id", "must not be empty")
	}
	if k.StartOffset != "earliest" && k.StartOffset != "latest" {
		return keyErr("kafka.start_offset", `must be "earliest" or "latest", got %q`, k.StartOffset)
	}
	if strings.TrimSpace(k.SchemaHeader) == "" {
		return keyErr("kafka.schema_header", "must not be empty")
	}
	if err := componentErr(k.TLS.Validate("kafka.tls")); err != nil {
		return err
	}
	switch k.SASL.Mechanism {
	case "":
		if k.SASL.Username != "" || k.SASL.Password != "" {
			return keyErr("kafka.sasl.mechanism", "must be set when kafka.sasl.username or kafka.sasl.password is")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.SASL.Username == "" {
			return keyErr("kafka.sasl.username", "required when kafka.sasl.mechanism is %q", k.SASL.Mechanism)
		}
		if k.SASL.Password == "" {
			return keyErr("kafka.sasl.password", "required when kafka.sasl.mechanism is %q", k.SASL.Mechanism)
		}
	default:
		return keyErr("kafka.sasl.mechanism", `must be "plain", "scram-sha-256" or "scram-sha-512", got %q`, k.SASL.Mechanism)
	}
	// The consumer's own checks (batch size, timeouts).
	return componentErr(c.Source().Validate())
}

func (c *Config) validateRegistry() error {
	r := c.SchemaRegistry
	if r.URL == "" {
		if r.Username != "" || r.Password != "" {
			return keyErr("schema_registry.url", "must be set when schema_registry credentials are")
		}
	} else {
		u, err := url.Parse(r.URL)
		// The URL is not echoed: it may carry credentials.
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return keyErr("schema_registry.url", "must be an http:// or https:// URL with a host")
		}
		if (r.Username == "") != (r.Password == "") {
			return keyErr("schema_registry.username", "schema_registry.username and schema_registry.password must be set together")
		}
	}
	return positive("schema_registry.timeout", r.Timeout)
}

func (c *Config) validateRedis() error {
	r := c.Redis
	if err := hostPorts("redis.addrs", r.Addrs); err != nil {
		return err
	}
	if r.DB < 0 {
		return keyErr("redis.db", "must be >= 0, got %d", r.DB)
	}
	if r.DB != 0 && len(r.Addrs) > 1 {
		return keyErr("redis.db", "must be 0 with several redis.addrs (Redis Cluster has only db 0), got %d", r.DB)
	}
	if r.PoolSize < 0 {
		return keyErr("redis.pool_size", "must be >= 0 (0 is the client default), got %d", r.PoolSize)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"redis.dial_timeout", r.DialTimeout}, {"redis.read_timeout", r.ReadTimeout}, {"redis.write_timeout", r.WriteTimeout}} {
		if err := positive(d.key, d.v); err != nil {
			return err
		}
	}
	return componentErr(r.TLS.Validate("redis.tls"))
}

func (c *Config) validateMisc() error {
	if c.Streams.MaxLen <= 0 {
		return keyErr("streams.maxlen", "must be positive, got %d", c.Streams.MaxLen)
	}
	if !currencyPattern.MatchString(c.Currency.Default) {
		return keyErr("currency.default", "must be a 3-letter uppercase ISO code, got %q", c.Currency.Default)
	}
	for _, code := range sortedKeys(c.Currency.Rates) {
		rate := c.Currency.Rates[code]
		if !currencyPattern.MatchString(code) {
			return keyErr("currency.rates", "%q is not a 3-letter uppercase ISO code", code)
		}
		if !(rate > 0) {
			return keyErr("currency.rates", "rate of %s must be positive, got %v", code, rate)
		}
		if code == c.Currency.Default && rate != 1 {
			return keyErr("currency.rates", "rate of the default currency %s must be 1, got %v", code, rate)
		}
	}
	for _, f := range c.Access.HiddenFields {
		entity, field, ok := strings.Cut(f, ".")
		if !ok || (entity != "Opportunity" && entity != "OpportunityContactRole") || !fieldPattern.MatchString(field) {
			return keyErr("access.hidden_fields", "%q must be Opportunity.<Field> or OpportunityContactRole.<Field>", f)
		}
	}
	for _, f := range c.Triggers.IgnoreFields {
		if !fieldPattern.MatchString(f) {
			return keyErr("triggers.ignore_fields", "%q is not a field name", f)
		}
	}
	if err := positive("triggers.pending_role_timeout", c.Triggers.PendingRoleTimeout); err != nil {
		return err
	}
	if c.Schemas.Topic != "" && !validTopic(c.Schemas.Topic) {
		return keyErr("schemas.topic", "%q is not a valid topic name", c.Schemas.Topic)
	}
	if err := positive("schemas.wait", c.Schemas.Wait); err != nil {
		return err
	}
	if err := positive("activity.retention", c.Activity.Retention); err != nil {
		return err
	}
	if c.Campaigns.Max < 1 || c.Campaigns.Max > MaxCampaigns {
		return keyErr("campaigns.max", "must be from 1 to %d, got %d", MaxCampaigns, c.Campaigns.Max)
	}
	return positive("shutdown_timeout", c.ShutdownTimeout)
}

func (c *Config) validateHTTP() error {
	if err := hostPort(c.HTTP.Addr, true); err != nil {
		return keyErr("http.addr", "%v", err)
	}
	return nil
}

func (c *Config) validateLog() error {
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", `must be one of trace, debug, info, warn, error, got %q`, c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		return keyErr("log.format", `must be "json" or "console", got %q`, c.Log.Format)
	}
	return nil
}

// MaxCampaigns caps campaigns.max: each campaign is a label value of
// oppsync_campaign_entries_total and is evaluated for every trigger entry.
const MaxCampaigns = 10000

func positive(key string, d time.Duration) error {
	if d <= 0 {
		return keyErr(key, "must be a positive duration, got %s", d)
	}
	return nil
}

func hostPorts(key string, addrs []string) error {
	if len(addrs) == 0 {
		return keyErr(key, "must list at least one host:port")
	}
	for _, a := range addrs {
		if err := hostPort(a, false); err != nil {
			return keyErr(key, "%v", err)
		}
	}
	return nil
}

// hostPort checks "host:port" with a numeric port 1-65535; emptyHost allows
// ":8080". Its errors show addr with any credentials masked (RedactURL): a
// "redis://user:password@host:6379" is rejected without being echoed.
func hostPort(addr string, emptyHost bool) error {
	shown := RedactURL(addr)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q must be host:port", shown)
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("%q has no host", shown)
	}
	if strings.Contains(host, "@") {
		return fmt.Errorf("%q must be host:port without credentials (they have their own keys)", shown)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has an invalid host", shown)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q must have a port between 1 and 65535", shown)
	}
	return nil
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var apiVersionPattern = regexp.MustCompile(`^[0-9]+\.[0-9]$`)

func (c *Config) validateSalesforce() error {
	sf := c.Salesforce
	if !apiVersionPattern.MatchString(sf.APIVersion) {
		return keyErr("salesforce.api_version", `must look like "61.0", got %q`, sf.APIVersion)
	}
	if sf.RateLimit <= 0 {
		return keyErr("salesforce.rate_limit", "must be positive, got %d", sf.RateLimit)
	}
	if err := positive("salesforce.interval", sf.Interval); err != nil {
		return err
	}
	if err := positive("salesforce.timeout", sf.Timeout); err != nil {
		return err
	}
	if sf.MaxAPICallsPerDay < 0 {
		return keyErr("salesforce.max_api_calls_per_day", "must be >= 0 (0: no limit), got %d", sf.MaxAPICallsPerDay)
	}
	if sf.InstanceURL == "" {
		if sf.ClientID != "" || sf.ClientSecret != "" || sf.TokenURL != "" {
			return keyErr("salesforce.instance_url", "must be set when other salesforce keys are")
		}
		return nil
	}
	for _, k := range []struct{ key, val string }{{"salesforce.instance_url", sf.InstanceURL}, {"salesforce.token_url", sf.TokenURL}} {
		if k.val == "" {
			continue
		}
		u, err := url.Parse(k.val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return keyErr(k.key, "must be an http:// or https:// URL with a host")
		}
	}
	if sf.ClientID == "" {
		return keyErr("salesforce.client_id", "required when salesforce.instance_url is set")
	}
	if sf.ClientSecret == "" {
		return keyErr("salesforce.client_secret", "required when salesforce.instance_url is set")
	}
	return nil
}

func validTopic(t string) bool { return topicPattern.MatchString(t) && t != "." && t != ".." }

// channelPattern is a Pub/Sub API channel of change events: a standard
// channel (/data/OpportunityChangeEvent, /data/ChangeEvents) or a custom one
// (/data/Sales__chn). Channels become metric labels and log fields.
var channelPattern = regexp.MustCompile(`^/data/[A-Za-z][A-Za-z0-9_]{0,79}$`)

// maxBridgeInFlight bounds bridge.max_in_flight: what is in flight is held
// in memory, up to 1 MB an event.
const maxBridgeInFlight = 1000

func (c *Config) validateBridge() error {
	b := c.Bridge
	if len(b.Channels) == 0 {
		return keyErr("bridge.channels", "must name at least one channel")
	}
	seen := map[string]bool{}
	for _, ch := range b.Channels {
		if !channelPattern.MatchString(ch) {
			return keyErr("bridge.channels", "%q is not a change event channel like /data/OpportunityChangeEvent", ch)
		}
		if seen[ch] {
			return keyErr("bridge.channels", "%q is listed twice", ch)
		}
		seen[ch] = true
	}
	if err := hostPort(b.Endpoint, false); err != nil {
		return keyErr("bridge.endpoint", "%v", err)
	}
	if b.Plaintext && b.TLS.CAFile != "" {
		return keyErr("bridge.tls.ca_file", "must be empty when bridge.plaintext is true")
	}
	if b.MaxInFlight < 1 || b.MaxInFlight > maxBridgeInFlight {
		return keyErr("bridge.max_in_flight", "must be between 1 and %d, got %d", maxBridgeInFlight, b.MaxInFlight)
	}
	// The longest change event name is an entity name of up to 80 characters
	// plus "ChangeEvent": the prefix leaves room for it.
	if b.TopicPrefix != "" && (!topicPattern.MatchString(b.TopicPrefix) || len(b.TopicPrefix) > 249-91) {
		return keyErr("bridge.topic_prefix", "%q must be at most 158 letters, digits, '.', '_' or '-'", b.TopicPrefix)
	}
	if !validTopic(b.SchemasTopic) {
		return keyErr("bridge.schemas_topic", "%q is not a valid topic name", b.SchemasTopic)
	}
	if b.Start != "latest" && b.Start != "earliest" {
		return keyErr("bridge.start", `must be "latest" or "earliest", got %q`, b.Start)
	}
	switch b.OnExpiredReplay {
	case "fail", "earliest", "latest":
	default:
		return keyErr("bridge.on_expired_replay", `must be "fail", "earliest" or "latest", got %q`, b.OnExpiredReplay)
	}
	return nil
}
