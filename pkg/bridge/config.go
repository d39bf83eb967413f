package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Start presets and expired-replay policies (bridge.start, bridge.on_expired_replay).
const (
	StartLatest   = "latest"
	StartEarliest = "earliest"
	ExpiredFail   = "fail"
)

// Config configures a Bridge. Keys are those of CONTRACT §9 (bridge.*) and
// the salesforce.* OAuth settings.
type Config struct {
	Channels        []string
	MaxInFlight     int    // [100]
	TopicPrefix     string // may be empty
	SchemasTopic    string // [salesforce.schemas]
	Start           string // StartLatest [default] or StartEarliest
	OnExpiredReplay string // ExpiredFail [default], StartEarliest or StartLatest

	// InstanceURL, ClientID, ClientSecret and TokenURL
	// [<InstanceURL>/services/oauth2/token] are the OAuth client credentials.
	InstanceURL, ClientID, ClientSecret, TokenURL string

	// MinBackoff [200ms] and MaxBackoff [30s] bound the wait between
	// reconnects and write retries.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout ends a subscription that delivered nothing, not even a
	// keepalive, for this long [5m; Salesforce sends one within 270 s].
	IdleTimeout time.Duration
	// WriteTimeout bounds one Kafka write of a batch [30s].
	WriteTimeout time.Duration
	// Now is the wall clock [time.Now].
	Now func() time.Time
}

// maxPerRequest is Salesforce's bound on FetchRequest.num_requested.
const maxPerRequest = 100

// withDefaults fills unset fields.
func (c Config) withDefaults() Config {
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 100
	}
	if c.SchemasTopic == "" {
		c.SchemasTopic = "salesforce.schemas"
	}
	if c.Start == "" {
		c.Start = StartLatest
	}
	if c.OnExpiredReplay == "" {
		c.OnExpiredReplay = ExpiredFail
	}
	if c.TokenURL == "" && c.InstanceURL != "" {
		c.TokenURL = c.InstanceURL + "/services/oauth2/token"
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate checks what pkg/config does not (it validates the keys); the
// errors name the key.
func (c Config) validate() error {
	if len(c.Channels) == 0 {
		return errors.New("bridge.channels: at least one channel is required")
	}
	if c.MaxInFlight < 1 {
		return fmt.Errorf("bridge.max_in_flight: must be positive, got %d", c.MaxInFlight)
	}
	if c.Start != StartLatest && c.Start != StartEarliest {
		return fmt.Errorf("bridge.start: must be latest or earliest, got %q", c.Start)
	}
	switch c.OnExpiredReplay {
	case ExpiredFail, StartEarliest, StartLatest:
	default:
		return fmt.Errorf("bridge.on_expired_replay: must be fail, earliest or latest, got %q", c.OnExpiredReplay)
	}
	if c.InstanceURL == "" {
		return errors.New("salesforce.instance_url: required by oppsync bridge (with salesforce.client_id and salesforce.client_secret)")
	}
	if _, err := url.Parse(c.InstanceURL); err != nil {
		return errors.New("salesforce.instance_url: not a URL")
	}
	if c.ClientID == "" {
		return errors.New("salesforce.client_id: required by oppsync bridge")
	}
	if c.ClientSecret == "" {
		return errors.New("salesforce.client_secret: required by oppsync bridge")
	}
	return nil
}
