package decode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// RegistryPrefix marks schema ids of the Confluent wire format.
const RegistryPrefix = "registry:"

// Registry is a Confluent-compatible Schema Registry client, a
// SchemaSource for "registry:<n>" ids. Schema ids are immutable, so
// answers are cached forever; concurrent misses for one id make one
// request. Safe for concurrent use.
type Registry struct {
	base     string
	user     string
	password string
	client   *http.Client

	mu    sync.RWMutex
	cache map[int64]string
	group singleflight.Group
}

// NewRegistry returns a client for the registry at url. timeout bounds each
// request (0 means 10s); user/password enable basic auth when user is set.
func NewRegistry(url, user, password string, timeout time.Duration) *Registry {
	if timeout <= 0 {
		timeout = DefaultRegistryTimeout
	}
	return &Registry{
		base:     strings.TrimRight(url, "/"),
		user:     user,
		password: password,
		client:   &http.Client{Timeout: timeout},
		cache:    map[int64]string{},
	}
}

// Schema implements SchemaSource. 404 or error_code 40403 is a permanent
// schema_not_found; 5xx, 429, 401/403 (credentials an operator can fix),
// timeouts and connection errors are retryable schema_registry_unavailable;
// a schemaType other than AVRO is a permanent schema_invalid.
func (r *Registry) Schema(ctx context.Context, id string) (string, error) {
	rest, ok := strings.CutPrefix(id, RegistryPrefix)
	if !ok {
		return "", notFound(id)
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n < 0 {
		return "", notFound(id)
	}
	r.mu.RLock()
	s, ok := r.cache[n]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}
	// The fetch must not die with the first caller's ctx while others wait.
	v, err, _ := r.group.Do(rest, func() (any, error) {
		s, err := r.fetch(context.WithoutCancel(ctx), n)
		if err != nil {
			return "", err
		}
		r.mu.Lock()
		r.cache[n] = s
		r.mu.Unlock()
		return s, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

type registryAnswer struct {
	Schema     string `json:"schema"`
	SchemaType string `json:"schemaType"`
	ErrorCode  int    `json:"error_code"`
}

func (r *Registry) fetch(ctx context.Context, id int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/schemas/ids/%d", r.base, id), nil)
	if err != nil {
		return "", cdc.Permanent(cdc.ReasonRegistry, "building registry request: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	if r.user != "" {
		req.SetBasicAuth(r.user, r.password)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", cdc.Transient(cdc.ReasonRegistry, fmt.Errorf("fetching schema %d: %w", id, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSchemaBytes+1))
	if err != nil {
		return "", cdc.Transient(cdc.ReasonRegistry, fmt.Errorf("reading schema %d: %w", id, err))
	}
	var ans registryAnswer
	jsonErr := json.Unmarshal(body, &ans)
	switch {
	case resp.StatusCode == http.StatusNotFound || ans.ErrorCode == 40403:
		return "", cdc.Permanent(cdc.ReasonSchemaNotFound, "schema registry has no schema id %d", id)
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden,
		resp.StatusCode == http.StatusRequestTimeout:
		return "", cdc.Transient(cdc.ReasonRegistry, fmt.Errorf("schema registry answered %d for schema id %d", resp.StatusCode, id))
	case resp.StatusCode != http.StatusOK:
		return "", cdc.Permanent(cdc.ReasonRegistry, "schema registry answered %d for schema id %d", resp.StatusCode, id)
	case len(body) > maxSchemaBytes:
		return "", cdc.Permanent(cdc.ReasonSchemaInvalid, "schema id %d is larger than %d bytes", id, maxSchemaBytes)
	case jsonErr != nil:
		return "", cdc.Permanent(cdc.ReasonSchemaInvalid, "schema registry answer for id %d is not JSON: %w", id, jsonErr)
	case ans.SchemaType != "" && !strings.EqualFold(ans.SchemaType, "AVRO"):
		return "", cdc.Permanent(cdc.ReasonSchemaInvalid, "schema id %d has type %s, not AVRO", id, ans.SchemaType)
	case ans.Schema == "":
		return "", cdc.Permanent(cdc.ReasonSchemaInvalid, "schema registry answer for id %d has no schema", id)
	}
	return ans.Schema, nil
}

// Cached returns how many schemas the client holds.
func (r *Registry) Cached() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.cache)
}
