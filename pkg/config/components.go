package config

import (
	"errors"
	"strings"

	"github.com/oppsync/oppsync/pkg/decode"
	"github.com/oppsync/oppsync/pkg/replica"
	"github.com/oppsync/oppsync/pkg/retention"
	"github.com/oppsync/oppsync/pkg/source"
	"github.com/oppsync/oppsync/pkg/state"
	"github.com/oppsync/oppsync/pkg/triggers"
	"github.com/oppsync/oppsync/pkg/view"
)

// The configuration file is composed from the components' own settings:
// each component owns its Config, its defaults (DefaultConfig /
// WithDefaults) and its checks (Validate, which changes nothing); the
// methods below are the one place a file key is mapped onto a component
// setting, and Default and Validate take the components' defaults and
// checks from there instead of repeating them.

// Source is the consumer's configuration (kafka.*).
func (c *Config) Source() source.Config {
	sc := source.DefaultConfig()
	k := c.Kafka
	sc.Brokers, sc.Topics, sc.GroupID, sc.StartOffset = k.Brokers, k.Topics, k.GroupID, k.StartOffset
	sc.MaxBatch = k.MaxBatch
	sc.TLS = k.TLS
	sc.SASL = source.SASLConfig{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password}
	if c.ShutdownTimeout > 0 && sc.DrainTimeout > c.ShutdownTimeout {
		sc.DrainTimeout = c.ShutdownTimeout
	}
	return sc
}

// Store is the write path's configuration (org_id, currency.*,
// triggers.*, activity.*).
func (c *Config) Store() state.Config {
	return state.Config{
		Org:               c.OrgID,
		Currency:          c.Currency.Default,
		Rates:             c.Currency.Rates,
		IgnoreFields:      c.Triggers.IgnoreFields,
		PendingTimeout:    c.Triggers.PendingRoleTimeout,
		ActivityRetention: c.Activity.Retention,
	}
}

// View is the query view's configuration (currency.*, activity.*).
func (c *Config) View() view.Config {
	return view.Config{
		Currency:          triggers.Currency{Default: c.Currency.Default, Rates: c.Currency.Rates},
		ActivityRetention: c.Activity.Retention,
	}
}

// Decode is the decoder's configuration (kafka.schema_header, schemas.*,
// schema_registry.*, access.*).
func (c *Config) Decode() decode.Config {
	return decode.Config{
		SchemaHeader:     c.Kafka.SchemaHeader,
		SchemaDir:        c.Schemas.Dir,
		RegistryURL:      c.SchemaRegistry.URL,
		RegistryUsername: c.SchemaRegistry.Username,
		RegistryPassword: c.SchemaRegistry.Password,
		RegistryTimeout:  c.SchemaRegistry.Timeout,
		HiddenFields:     c.Access.HiddenFields,
	}
}

// Retention is the stream trimmer's configuration (streams.maxlen).
func (c *Config) Retention() retention.Config {
	return retention.Config{Streams: replica.OutputStreams(c.OrgID), MaxLen: c.Streams.MaxLen}
}

// componentErr turns a component's "key: problem" error into a *KeyError.
func componentErr(err error) error {
	if err == nil {
		return nil
	}
	key, msg, ok := strings.Cut(err.Error(), ": ")
	if !ok || strings.ContainsAny(key, " \t") {
		return &KeyError{Err: err}
	}
	return &KeyError{Key: key, Err: errors.New(msg)}
}
