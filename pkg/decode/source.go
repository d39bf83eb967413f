package decode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// SchemaSource looks up writer schema texts by id. Ids are the Salesforce
// schema id of a raw Pub/Sub payload, or "registry:<n>" for the Confluent
// wire format (schema id n); a source answers the ids it knows.
//
// Schema may block on I/O and must honour ctx; it must be safe for
// concurrent use. It returns a *cdc.Error with reason schema_not_found when
// the source does not have the id; any other error stops the lookup and is
// retryable unless it is a permanent *cdc.Error.
type SchemaSource interface {
	Schema(ctx context.Context, id string) (string, error)
}

func notFound(id string) error {
	return cdc.Permanent(cdc.ReasonSchemaNotFound, "schema %q not found", id)
}

func isNotFound(err error) bool {
	var e *cdc.Error
	return errors.As(err, &e) && e.Reason == cdc.ReasonSchemaNotFound
}

// MapSource is an in-memory SchemaSource keyed by id (for the demo and
// tests). It must not be modified after use starts.
type MapSource map[string]string

// NewMapSource returns a MapSource over a copy of m.
func NewMapSource(m map[string]string) MapSource {
	out := make(MapSource, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Schema implements SchemaSource.
func (m MapSource) Schema(_ context.Context, id string) (string, error) {
	if s, ok := m[id]; ok {
		return s, nil
	}
	return "", notFound(id)
}

// maxSchemaBytes bounds a schema file or registry answer.
const maxSchemaBytes = 8 << 20

// DirSource reads "<id>.avsc" from a directory. Ids that are not plain file
// names (path separators, a leading dot, odd characters) are not found:
// the id comes from a Kafka header and must not walk the file system.
type DirSource struct{ dir string }

// NewDirSource returns a DirSource over dir, which must be a directory.
func NewDirSource(dir string) (*DirSource, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("schema dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("schema dir %s is not a directory", dir)
	}
	return &DirSource{dir: dir}, nil
}

// maxIDLen bounds a schema id from a header.
const maxIDLen = 255

// safeID reports whether id, from a Kafka header, is a plain schema id: it
// never names a path, a registry id ("registry:<n>") or anything a log line
// would render oddly.
func safeID(id string) bool {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '=' || c == '+') {
			return false
		}
	}
	return true
}

// Schema implements SchemaSource. A missing file is schema_not_found; other
// read errors are retryable.
func (d *DirSource) Schema(ctx context.Context, id string) (string, error) {
	if !safeID(id) {
		return "", notFound(id)
	}
	f, err := os.Open(filepath.Join(d.dir, id+".avsc"))
	if errors.Is(err, os.ErrNotExist) {
		return "", notFound(id)
	}
	if err != nil {
		return "", fmt.Errorf("reading schema %q: %w", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSchemaBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading schema %q: %w", id, err)
	}
	if len(b) > maxSchemaBytes {
		return "", cdc.Permanent(cdc.ReasonSchemaInvalid, "schema %q is larger than %d bytes", id, maxSchemaBytes)
	}
	return string(b), nil
}
