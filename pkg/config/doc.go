// Package config owns oppsync's configuration: the Config struct (one field per
// key of CONTRACT §2 plus a few additions), its defaults, loading from a YAML
// file, the environment and flags, validation, and the redacted printout used
// by `oppsync config`.
//
// Invariants:
//   - Layers apply in a fixed order: Default(), then the YAML file, then
//     OPPSYNC_* environment variables, then flags; a later layer wins.
//   - Every key `a.b_c` has exactly one environment variable `OPPSYNC_A_B_C`.
//     Lists are comma-separated; maps (currency.rates) are `K=V,K=V`.
//   - Unknown keys are errors in every layer: a YAML key names its full dotted
//     path and line, an environment variable names itself. Variables starting
//     with OPPSYNC_TEST_ are reserved for test harnesses and ignored.
//   - Every error Load or Validate returns is a *KeyError naming the key; no
//     error message and no output of Redacted/YAML contains a secret value
//     (kafka.sasl.password, schema_registry.password, redis.password,
//     http.auth_token). URL-valued keys (tag url:"true": schema_registry.url,
//     salesforce.instance_url, salesforce.token_url, kafka.brokers,
//     redis.addrs) are printed and echoed with the credentials inside them
//     masked (RedactURL); RedactURLs does the same for any text, such as a
//     log line.
//   - A `<secret>_file` key reads that secret from a file (whitespace-trimmed);
//     setting both the secret and its file is an error.
//
// The package does no I/O other than reading the config file and secret files,
// and emits no metrics.
package config
