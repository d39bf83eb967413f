package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// CatalogEntry is the stored form of one field of the constraint catalog.
type CatalogEntry struct {
	Type           string `json:"type"` // a cdc.Kind name
	SalesforceType string `json:"salesforce_type"`
}

// CatalogField is a field of the constraint catalog as read back.
type CatalogField struct {
	Entity, Name string
	CatalogEntry
}

// Catalog reads the constraint catalog: the fields of every schema seen.
// Members that do not parse are skipped.
func (r *Replica) Catalog(ctx context.Context) ([]CatalogField, error) {
	h, err := r.rdb.HGetAll(ctx, r.k.Catalog()).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the field catalog: %w", err)
	}
	out := make([]CatalogField, 0, len(h))
	for name, text := range h {
		entity, field, ok := strings.Cut(name, ".")
		if !ok {
			continue
		}
		f := CatalogField{Entity: entity, Name: field}
		if json.Unmarshal([]byte(text), &f.CatalogEntry) != nil {
			continue
		}
		out = append(out, f)
	}
	return out, nil
}
