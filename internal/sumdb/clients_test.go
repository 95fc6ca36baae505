package sumdb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// goClient is the go command's checksum database client: x/mod's Client,
// reaching the database at base (as the go command does through a GOPROXY
// that answered /supported), with its module cache in memory (fresh) and
// its configuration in config, which stands for GOPATH/pkg/sumdb and may be
// shared by several clients, as by several go commands on one machine.
type goClient struct {
	t    testing.TB
	base string
	key  string

	mu       sync.Mutex
	config   *goConfig
	cache    map[string][]byte
	security []string
}

// goConfig is GOPATH/pkg/sumdb: the latest tree a go command has seen.
type goConfig struct {
	mu     sync.Mutex
	latest []byte
}

func newGoClient(t testing.TB, base, vkey string, config *goConfig) *sumdb.Client {
	if config == nil {
		config = &goConfig{}
	}
	return sumdb.NewClient(&goClient{t: t, base: base, key: vkey, config: config, cache: map[string][]byte{}})
}

func (c *goClient) ReadRemote(path string) ([]byte, error) {
	return getOK(c.base + path)
}

// getOK returns the body of a 200 answer, or an error with the answer.
func getOK(url string) ([]byte, error) {
	resp, err := testClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (c *goClient) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(c.key), nil
	}
	c.config.mu.Lock()
	defer c.config.mu.Unlock()
	return append([]byte{}, c.config.latest...), nil
}

func (c *goClient) WriteConfig(file string, old, new []byte) error {
	c.config.mu.Lock()
	defer c.config.mu.Unlock()
	if string(c.config.latest) != string(old) {
		return sumdb.ErrWriteConflict
	}
	c.config.latest = new
	return nil
}

func (c *goClient) ReadCache(file string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if data, ok := c.cache[file]; ok {
		return data, nil
	}
	return nil, fmt.Errorf("%s not cached", file)
}

func (c *goClient) WriteCache(file string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[file] = data
}

func (c *goClient) Log(msg string) {}

func (c *goClient) SecurityError(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.security = append(c.security, msg)
}

// checkWithGoClient checks that a go command's client verifies each module
// (zip and go.mod hashes) of standardRecords-style records through base.
func checkWithGoClient(t *testing.T, c *sumdb.Client, mods ...string) {
	t.Helper()
	for _, m := range mods {
		for _, what := range []string{"zip", "mod"} {
			vers := "v1.0.0"
			if what == "mod" {
				vers += "/go.mod"
			}
			lines, err := c.Lookup(m, vers)
			if err != nil {
				t.Errorf("go client: %s@%s: %v", m, vers, err)
				continue
			}
			want := m + " " + vers + " " + fakeH1(m+" "+what)
			if len(lines) != 1 || lines[0] != want {
				t.Errorf("go client: %s@%s = %q, want [%q]", m, vers, lines, want)
			}
		}
	}
}

// httpTileReader reads tiles through the proxy at base, for tlog.
type httpTileReader struct{ base string }

func (r httpTileReader) Height() int { return 8 } // the go command's

func (r httpTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, tile := range tiles {
		data, err := getOK(r.base + "/" + tile.Path())
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

func (httpTileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// tamperingDB answers like a test database, except for what its tamper
// function changes: an upstream that proxies the database and corrupts it.
type tamperingDB struct {
	srv *httptest.Server

	mu     sync.Mutex
	tamper func(path string, body []byte) []byte // nil: pass through
	// from, if set, says which database answers path (another history).
	from func(path string) *testDB
	reqs testenv.RequestLog
}

func newTamperingDB(t testing.TB, db *testDB) *tamperingDB {
	td := &tamperingDB{}
	td.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		td.reqs.Add(r.URL.Path)
		td.mu.Lock()
		tamper, from := td.tamper, td.from
		td.mu.Unlock()
		src := db
		if from != nil {
			src = from(r.URL.Path)
		}
		rec := httptest.NewRecorder()
		src.handler.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if tamper != nil && rec.Code == http.StatusOK {
			body = tamper(r.URL.Path, body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(td.srv.Close)
	return td
}

func (td *tamperingDB) setTamper(f func(path string, body []byte) []byte) {
	td.mu.Lock()
	defer td.mu.Unlock()
	td.tamper = f
}

func (td *tamperingDB) setFrom(f func(path string) *testDB) {
	td.mu.Lock()
	defer td.mu.Unlock()
	td.from = f
}

// DB describes the database as reached through the tampering upstream.
func (td *tamperingDB) DB(db *testDB) DB {
	return DB{Name: testDBName, Key: db.vkey, URL: td.srv.URL}
}

// storedKeys lists what is stored under prefix.
func storedKeys(t testing.TB, st store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), prefix, func(key string) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// checkOneLine checks an error answer: text/plain, one line, and saying
// what to do (one of todo).
func checkOneLine(t *testing.T, what string, w *httptest.ResponseRecorder, todo ...string) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("%s: Content-Type %q, want text/plain", what, ct)
	}
	body := strings.TrimSuffix(w.Body.String(), "\n")
	if body == "" || strings.ContainsAny(body, "\r\n") {
		t.Errorf("%s: body %q is not one line", what, w.Body)
	}
	for _, s := range todo {
		if strings.Contains(body, s) {
			return
		}
	}
	if len(todo) > 0 {
		t.Errorf("%s: body %q says none of %q", what, body, todo)
	}
}
