//go:build !unix

package source

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// refusedURL returns the URL of a server that was closed: connections to
// it are refused (unless its port is reused in the meantime).
func refusedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}
