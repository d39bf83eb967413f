// Package tlsconf is the one TLS client setup of oppsync: the kafka.tls.*
// and redis.tls.* keys share its Config, its checks and its loading of the
// PEM files.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Config is a TLS client setting. Empty files mean the system roots and no
// client certificate.
type Config struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`   // PEM roots; empty: the system's
	CertFile           string `yaml:"cert_file"` // client certificate (mutual TLS), with KeyFile
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ServerName         string `yaml:"server_name"` // empty: the host dialled
}

// Validate checks the settings under prefix (e.g. "kafka.tls") without
// reading the files. Its error starts with the offending key.
func (c Config) Validate(prefix string) error {
	if !c.Enabled {
		if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.InsecureSkipVerify || c.ServerName != "" {
			return fmt.Errorf("%s.enabled: must be true when other %s keys are set", prefix, prefix)
		}
		return nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("%s.cert_file: %s.cert_file and %s.key_file must be set together", prefix, prefix, prefix)
	}
	return nil
}

// Client loads the files and returns the client configuration, nil when
// TLS is disabled. Its errors start with the key of the file that failed.
func (c Config) Client(prefix string) (*tls.Config, error) {
	if err := c.Validate(prefix); err != nil || !c.Enabled {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.InsecureSkipVerify, // an explicit operator choice
		ServerName:         c.ServerName,
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: no PEM certificate in %s", prefix, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file: %w", prefix, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
