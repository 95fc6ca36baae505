package sumdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// testDBName is the name of the in-process checksum databases.
const testDBName = "sumdb.test.example"

// testKeys returns a fresh signer key and its verifier key.
func testKeys(t testing.TB) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testDBName)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

// fakeH1 is a well-formed h1: hash derived from s.
func fakeH1(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

// records maps "path@version" to go.sum lines, as a checksum database's
// gosum function answers them.
type records map[string]string

// add records path@version with zip hash zh and go.mod hash mh.
func (r records) add(path, version, zh, mh string) {
	r[path+"@"+version] = fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, version, zh, path, version, mh)
}

// testDB is a real checksum database (x/mod's TestServer behind its HTTP
// Server) on 127.0.0.1. It counts requests and can be shut down and
// brought back on the same address.
type testDB struct {
	t       testing.TB
	vkey    string
	ops     *sumdb.TestServer
	handler http.Handler

	recsMu sync.Mutex
	recs   records
	grown  int // records added by grow

	mu   sync.Mutex
	srv  *httptest.Server
	addr string
	reqs testenv.RequestLog // request paths, in order
}

// newTestDB serves a database signed with skey whose records come from
// recs (missing records answer 404, as the go command's database does).
func newTestDB(t testing.TB, skey, vkey string, recs records) *testDB {
	t.Helper()
	db := &testDB{t: t, vkey: vkey, recs: records{}}
	for k, v := range recs {
		db.recs[k] = v
	}
	gosum := func(path, vers string) ([]byte, error) {
		db.recsMu.Lock()
		defer db.recsMu.Unlock()
		if lines, ok := db.recs[path+"@"+vers]; ok {
			return []byte(lines), nil
		}
		return nil, os.ErrNotExist // the Server answers 404 only for this
	}
	db.ops = sumdb.NewTestServer(skey, gosum)
	srv := sumdb.NewServer(db.ops)
	db.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.mu.Lock()
		db.reqs.Add(r.URL.Path)
		db.mu.Unlock()
		srv.ServeHTTP(w, r)
	})
	db.srv = httptest.NewServer(db.handler)
	db.addr = db.srv.Listener.Addr().String()
	t.Cleanup(func() {
		db.mu.Lock()
		defer db.mu.Unlock()
		if db.srv != nil {
			db.srv.Close()
		}
	})
	return db
}

// grow appends n records of new modules to the log, in process: a large
// tree without n lookups over HTTP.
func (db *testDB) grow(n int) {
	db.t.Helper()
	for range n {
		db.recsMu.Lock()
		path := fmt.Sprintf("grow.example/m%05d", db.grown)
		db.grown++
		db.recs.add(path, "v1.0.0", fakeH1(path+" zip"), fakeH1(path+" mod"))
		db.recsMu.Unlock()
		if _, err := db.ops.Lookup(context.Background(), module.Version{Path: path, Version: "v1.0.0"}); err != nil {
			db.t.Fatal(err)
		}
	}
}

// add records path@version in the database (it enters the log when first
// looked up).
func (db *testDB) add(path, version string) {
	db.recsMu.Lock()
	defer db.recsMu.Unlock()
	db.recs.add(path, version, fakeH1(path+" zip"), fakeH1(path+" mod"))
}

// size returns the number of records in the log.
func (db *testDB) size() int64 {
	return treeSize(db.t, db, db.get("/latest"))
}

// URL is the database's base URL (stable across stop and restart).
func (db *testDB) URL() string { return "http://" + db.addr }

// DB describes the database as ParseDB would.
func (db *testDB) DB() DB { return DB{Name: testDBName, Key: db.vkey, URL: db.URL()} }

// stop shuts the server down: connections to it are refused.
func (db *testDB) stop() {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.srv.Close()
	db.srv = nil
}

// restart serves again on the same address.
func (db *testDB) restart() {
	db.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port is ours, but let the kernel catch up
		if ln, err = net.Listen("tcp", db.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		db.t.Fatalf("restart test database on %s: %v", db.addr, err)
	}
	srv := httptest.NewUnstartedServer(db.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	db.mu.Lock()
	db.srv = srv
	db.mu.Unlock()
}

// count returns how many requests had a path containing substr.
func (db *testDB) count(substr string) int {
	return db.reqs.Count(substr)
}

// total returns how many requests reached the database.
func (db *testDB) total() int {
	return db.reqs.Total()
}

// requests returns the request paths so far, for failure messages.
func (db *testDB) requests() []string {
	return db.reqs.Paths()
}

// get fetches path from the database directly (not through modgate).
func (db *testDB) get(path string) []byte {
	db.t.Helper()
	resp, err := http.Get(db.URL() + path)
	if err != nil {
		db.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		db.t.Fatalf("test database GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

// testLogger collects log lines and shows them only if the test fails.
func testLogger(t testing.TB) *slog.Logger { return testenv.Logger(t, "verifier") }

var testClient = &http.Client{Timeout: 10 * time.Second}

func newDisk(t testing.TB) *store.Disk {
	t.Helper()
	d, err := store.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newTestVerifier returns a verifier over st that reaches db directly.
func newTestVerifier(t testing.TB, db *testDB, st store.Store, nosumdb string) *Verifier {
	t.Helper()
	remote := NewRemote(db.DB(), nil, testClient)
	v := NewVerifier(Config{DB: db.DB(), Store: st, Remote: remote, NoSumDB: nosumdb, Logger: testLogger(t)})
	t.Cleanup(func() { v.Close() })
	return v
}

// readKey returns a stored object, or nil if there is none.
func readKey(t testing.TB, st store.Store, key string) []byte {
	t.Helper()
	rc, _, err := st.Open(context.Background(), key)
	if err != nil {
		return nil
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// metricValue returns the value of a counter in modgate's registry, for
// the series whose labels include all of labels (0 if there is none).
func metricValue(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func verifications(t testing.TB, result string) float64 {
	return metricValue(t, "modgate_sumdb_verifications_total", map[string]string{"result": result})
}

func securityErrors(t testing.TB) float64 {
	return metricValue(t, "modgate_sumdb_security_errors_total", nil)
}

// treeSize returns the size of the tree in a stored signed tree head.
func treeSize(t testing.TB, db *testDB, signed []byte) int64 {
	t.Helper()
	return signedTree(t, db, signed).N
}

// signedTree returns the tree of a signed tree head of db, checked.
func signedTree(t testing.TB, db *testDB, signed []byte) tlog.Tree {
	t.Helper()
	v, err := note.NewVerifier(db.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		t.Fatalf("stored tree head does not verify: %v\n%s", err, signed)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		t.Fatalf("bad tree note %q: %v", n.Text, err)
	}
	return tree
}
