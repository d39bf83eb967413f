package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of every route (CONTRACT §10),
// served as written. It is a file rather than built from the handlers'
// types because it is the contract: it is reviewed as a diff, clients are
// generated from it, and it carries what Go types do not (patterns, error
// answers, descriptions). The tests keep it true: every exchange of the
// package's tests is validated against it, and every registered route
// must be in it.
//
//go:embed openapi.json
var openAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPI)
}
