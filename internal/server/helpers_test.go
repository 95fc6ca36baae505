package server_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/testenv"
)

// testConfig is modgate's default configuration over a fresh data dir,
// listening on a free port of 127.0.0.1, fetching from upstream, with
// verification off and no upstream rate limit.
func testConfig(t testing.TB, upstream string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Upstream = upstream
	cfg.SumDB = "off"
	cfg.UpstreamRate = 0
	return cfg
}

// newServer builds the server of cfg and closes it when the test ends.
func newServer(t testing.TB, cfg *config.Config, opts ...server.Option) *server.Server {
	t.Helper()
	opts = append([]server.Option{server.WithLogger(testLogger(t))}, opts...)
	s, err := server.New(t.Context(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// testLogger collects log lines and shows them only if the test fails.
func testLogger(t testing.TB) *slog.Logger { return testenv.Logger(t, "modgate") }

// fixture builds a GOPROXY tree holding mods (one version each, v1.0.0,
// with a file saying what) and serves it.
func fixture(t testing.TB, what string, paths ...string) *testenv.Upstream {
	t.Helper()
	var mods []testenv.Module
	for _, p := range paths {
		mods = append(mods, testenv.Module{Path: p, Version: "v1.0.0",
			Files: map[string]string{"m.go": "package m\n\n// " + what + "\n"}})
	}
	dir := t.TempDir()
	testenv.BuildTree(t, dir, mods)
	return testenv.NewUpstream(t, dir)
}

// goSum returns the go.sum lines of path@v1.0.0 as up serves it.
func goSum(t testing.TB, up *testenv.Upstream, path string) string {
	t.Helper()
	zh, err := dirhash.HashZip(up.FilePath(path, "v1.0.0", "zip"), dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(up.FilePath(path, "v1.0.0", "mod"))
	if err != nil {
		t.Fatal(err)
	}
	mh, err := modcheck.HashGoMod(gomod)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s v1.0.0 %s\n%s v1.0.0/go.mod %s\n", path, zh, path, mh)
}

// testDBName is the name of the in-process checksum database.
const testDBName = "sumdb.test.example"

// checksumDB is a real checksum database (x/mod's TestServer behind its
// HTTP server) on 127.0.0.1, whose records are go.sum lines by
// "path@version"; it counts requests.
type checksumDB struct {
	// SumDB is the database in GOSUMDB syntax, for --sumdb.
	SumDB string
	URL   string
	reqs  testenv.RequestLog
}

func newChecksumDB(t testing.TB, records map[string]string) *checksumDB {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testDBName)
	if err != nil {
		t.Fatal(err)
	}
	db := &checksumDB{}
	inner := sumdb.NewServer(sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		if lines, ok := records[path+"@"+vers]; ok {
			return []byte(lines), nil
		}
		return nil, os.ErrNotExist // the only error its server answers 404 for
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.reqs.Add(r.URL.Path)
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	db.URL = srv.URL
	db.SumDB = vkey + " " + srv.URL
	return db
}

// serve serves s on a listener of its own (Listen, Serve) and returns its
// base URL.
func serve(t testing.TB, s *server.Server) string {
	t.Helper()
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln) // until the test's Close
	return "http://" + ln.Addr().String()
}

type response struct {
	status int
	header http.Header
	body   string
}

// get sends a GET for target to h.
func get(h http.Handler, target string) response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

// fetch GETs url over the network.
func fetch(t testing.TB, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}
