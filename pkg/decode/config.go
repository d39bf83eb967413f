package decode

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config configures a Decoder. The zero value plus defaults decodes raw
// Pub/Sub payloads whose schemas come from extra sources only.
type Config struct {
	// SchemaHeader is the Kafka header that marks a raw Pub/Sub payload and
	// carries its Salesforce schema id. Default "sf-schema-id".
	SchemaHeader string
	// SchemaDir holds "<schemaId>.avsc" files for raw Pub/Sub payloads.
	SchemaDir string
	// RegistryURL is a Confluent-compatible Schema Registry for wire-format
	// messages; empty means wire-format schemas come from extra sources only
	// (looked up as "registry:<id>").
	RegistryURL      string
	RegistryUsername string
	RegistryPassword string
	// RegistryTimeout bounds one registry request. Default 10s.
	RegistryTimeout time.Duration
	// HiddenFields are "Entity.Field" names the sync user cannot read; they
	// are removed from events and schemas. "Entity.Parent" hides every
	// "Parent.Child" of a nested field.
	HiddenFields []string
	// MaxMessageBytes rejects larger values as too_large. Default 1 MiB plus
	// 64 KiB of framing slack (Salesforce caps events at 1 MB).
	MaxMessageBytes int
}

// Defaults of Config.
const (
	DefaultSchemaHeader    = "sf-schema-id"
	DefaultRegistryTimeout = 10 * time.Second
	DefaultMaxMessageBytes = 1<<20 + 64<<10
)

// WithDefaults returns c with unset fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.SchemaHeader == "" {
		c.SchemaHeader = DefaultSchemaHeader
	}
	if c.RegistryTimeout == 0 {
		c.RegistryTimeout = DefaultRegistryTimeout
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return c
}

// Validate reports the first bad setting, naming it.
func (c Config) Validate() error {
	if strings.TrimSpace(c.SchemaHeader) == "" {
		return errors.New("decode: schema_header must not be empty")
	}
	if c.RegistryTimeout < 0 {
		return errors.New("decode: schema_registry timeout must not be negative")
	}
	if c.MaxMessageBytes < 0 {
		return errors.New("decode: max message bytes must not be negative")
	}
	if c.RegistryURL != "" {
		u, err := url.Parse(c.RegistryURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("decode: schema_registry.url %q is not an http(s) URL", c.RegistryURL)
		}
	}
	if (c.RegistryUsername != "" || c.RegistryPassword != "") && c.RegistryURL == "" {
		return errors.New("decode: schema_registry.username/password set without schema_registry.url")
	}
	for _, h := range c.HiddenFields {
		ent, field, ok := strings.Cut(h, ".")
		if !ok || ent == "" || field == "" {
			return fmt.Errorf("decode: access.hidden_fields entry %q is not Entity.Field", h)
		}
	}
	return nil
}
