package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func fmtSscan(s string, n *int) (int, error) { return fmt.Sscan(s, n) }
func itoa(n int) string                      { return strconv.Itoa(n) }
func ftoa(f float64) string                  { return strconv.FormatFloat(f, 'f', -1, 64) }

func httptestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
