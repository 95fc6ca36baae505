package sumdb

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/store"
)

// testWriteError is a one-line text/plain error writer like goproxy's.
func testWriteError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, "modgate: "+msg)
}

type proxyFixture struct {
	st      store.Store
	db      *testDB
	v       *Verifier
	p       *Proxy
	h       http.Handler
	mu      sync.Mutex
	clock   time.Time
	ttl     time.Duration
	private string
}

func newProxyFixture(t *testing.T) *proxyFixture {
	t.Helper()
	skey, vkey := testKeys(t)
	recs := standardRecords()
	recs.add("corp.example.com/secret", "v1.0.0", fakeH1("s zip"), fakeH1("s mod"))
	recs.add("private.example/app", "v1.0.0", fakeH1("p zip"), fakeH1("p mod"))
	f := &proxyFixture{db: newTestDB(t, skey, vkey, recs), ttl: time.Minute,
		clock: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newDisk(t)
	f.st = st
	remote := NewRemote(f.db.DB(), nil, testClient)
	log := testLogger(t)
	f.v = NewVerifier(Config{DB: f.db.DB(), Store: st, Remote: remote, NoSumDB: "corp.example.com", Logger: log})
	t.Cleanup(func() { f.v.Close() })
	f.private = "private.example/"
	private := func(path string) bool { return strings.HasPrefix(path, f.private) }
	f.p = NewProxy(f.v, private, f.ttl, log)
	f.p.now = f.now
	f.h = f.p.Handler(testWriteError)
	return f
}

// serve serves the proxy over HTTP and returns the database's base URL
// through it, as the go command uses it after /supported answered 200.
func (f *proxyFixture) serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(f.h)
	t.Cleanup(srv.Close)
	return srv.URL + "/sumdb/" + testDBName
}

func (f *proxyFixture) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

func (f *proxyFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

func (f *proxyFixture) do(method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func (f *proxyFixture) get(t *testing.T, rest string, wantStatus int) *httptest.ResponseRecorder {
	t.Helper()
	w := f.do(http.MethodGet, "/sumdb/"+testDBName+"/"+rest)
	if w.Code != wantStatus {
		t.Fatalf("GET %s: %d %q, want %d", rest, w.Code, w.Body, wantStatus)
	}
	return w
}

func TestProxySupported(t *testing.T) {
	f := newProxyFixture(t)
	f.get(t, "supported", http.StatusOK)
	if n := f.db.total(); n != 0 {
		t.Errorf("supported asked the database %d times", n)
	}
	if w := f.do(http.MethodGet, "/sumdb/other.example/supported"); w.Code != http.StatusNotFound {
		t.Errorf("another database's supported: %d, want 404 (the go command then goes direct)", w.Code)
	}
	f.get(t, "bogus", http.StatusNotFound)
	if w := f.do(http.MethodPost, "/sumdb/"+testDBName+"/latest"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST latest: %d, want 405", w.Code)
	}
}

func TestProxyLookup(t *testing.T) {
	f := newProxyFixture(t)
	const rest = "lookup/" + modX + "@v1.0.0"

	w := f.get(t, rest, http.StatusOK)
	body := w.Body.Bytes()
	if !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("lookup Cache-Control = %q", w.Header().Get("Cache-Control"))
	}
	id, text, _, err := tlog.ParseRecord(body)
	if err != nil {
		t.Fatalf("lookup answer is not a signed record: %v\n%s", err, body)
	}
	if id != 0 || !strings.Contains(string(text), modX+" v1.0.0 "+fakeH1(modX+" zip")) {
		t.Errorf("lookup record #%d = %q", id, text)
	}
	if n := f.db.count("/lookup/"); n != 1 {
		t.Fatalf("%d lookups reached the database, want 1", n)
	}

	// Served again from storage (also by a fresh proxy over the same store).
	w2 := f.get(t, rest, http.StatusOK)
	if !bytes.Equal(w2.Body.Bytes(), body) {
		t.Errorf("second answer differs:\n%s\nvs\n%s", w2.Body, body)
	}
	if n := f.db.count("/lookup/"); n != 1 {
		t.Errorf("the second lookup reached the database (%d lookups)", n)
	}
	// It is what the database itself answers.
	if direct := f.db.get("/" + rest); !bytes.Equal(direct, body) {
		t.Errorf("proxied lookup differs from the database's:\n%s\nvs\n%s", body, direct)
	}

	// HEAD has the headers and no body.
	if w := f.do(http.MethodHead, "/sumdb/"+testDBName+"/"+rest); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD lookup: %d with %d body bytes", w.Code, w.Body.Len())
	}

	// Not in the database: 404, so the go command reports it as such.
	w = f.get(t, "lookup/example.com/unknown@v1.0.0", http.StatusNotFound)
	if !strings.Contains(w.Body.String(), "example.com/unknown@v1.0.0") {
		t.Errorf("not-found answer %q does not name the module", w.Body)
	}

	// The database is down: uncached lookups fail with 502, cached ones
	// are still served.
	f.db.stop()
	f.get(t, "lookup/"+modY+"@v1.0.0", http.StatusBadGateway)
	if w := f.get(t, rest, http.StatusOK); !bytes.Equal(w.Body.Bytes(), body) {
		t.Error("cached lookup changed while the database is down")
	}
}

func TestProxyPrivateLookupsNeverLeave(t *testing.T) {
	f := newProxyFixture(t)
	for _, rest := range []string{
		"lookup/corp.example.com/secret@v1.0.0",  // --nosumdb
		"lookup/corp.example.com/a/b@v1.2.3",     // --nosumdb, nested
		"lookup/private.example/app@v1.0.0",      // the private func
		"lookup/private.example/app/v2@v2.0.0",   // the private func
		"lookup/corp.example.com/secret@v1.0.0",  // again
		"lookup/private.example/app@v1.0.0",      // again
		"lookup/corp.example.com/!secret@v1.0.0", // escaped upper case
	} {
		w := f.get(t, rest, http.StatusForbidden)
		if !strings.Contains(w.Body.String(), "GONOSUMDB") {
			t.Errorf("%s: 403 body %q does not tell the client to set GONOSUMDB", rest, w.Body)
		}
	}
	if n := f.db.total(); n != 0 {
		t.Errorf("private lookups reached the database: %v", f.db.requests())
	}
	// A public lookup still works.
	f.get(t, "lookup/"+modX+"@v1.0.0", http.StatusOK)
	if n := f.db.count("corp.example.com") + f.db.count("private.example"); n != 0 {
		t.Errorf("private paths reached the database: %v", f.db.requests())
	}
}

func TestProxyTile(t *testing.T) {
	f := newProxyFixture(t)
	f.get(t, "lookup/"+modX+"@v1.0.0", http.StatusOK) // the tree has one record

	// The hash tile the lookup was checked with is stored: served without
	// asking the database, and it is the database's.
	const tile = "tile/8/0/000.p/1"
	before := f.db.total()
	w := f.get(t, tile, http.StatusOK)
	if n := f.db.total() - before; n != 0 {
		t.Errorf("%s: %d requests reached the database, want 0 (the verifier stored it)", tile, n)
	}
	if !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("%s: Cache-Control = %q", tile, w.Header().Get("Cache-Control"))
	}
	if direct := f.db.get("/" + tile); !bytes.Equal(direct, w.Body.Bytes()) {
		t.Errorf("%s: proxied tile differs from the database's", tile)
	}

	// A data tile is fetched once, checked against the stored hashes, and
	// kept.
	const data = "tile/8/data/000.p/1"
	before = f.db.count("/" + data)
	w = f.get(t, data, http.StatusOK)
	w2 := f.get(t, data, http.StatusOK)
	if n := f.db.count("/"+data) - before; n != 1 {
		t.Errorf("%s: %d requests reached the database, want 1", data, n)
	}
	if !bytes.Equal(w.Body.Bytes(), w2.Body.Bytes()) {
		t.Errorf("%s: second answer differs", data)
	}
	if direct := f.db.get("/" + data); !bytes.Equal(direct, w.Body.Bytes()) {
		t.Errorf("%s: proxied data tile %q differs from the database's %q", data, w.Body, direct)
	}
}

func TestProxyLatest(t *testing.T) {
	f := newProxyFixture(t)
	// Nothing cached and the database down: 502.
	f.db.stop()
	w := f.get(t, "latest", http.StatusBadGateway)
	if !strings.Contains(w.Body.String(), "try again later") {
		t.Errorf("502 body %q", w.Body)
	}
	f.db.restart()

	first := f.get(t, "latest", http.StatusOK).Body.String()
	if n := f.db.count("/latest"); n != 1 {
		t.Fatalf("%d latest requests reached the database, want 1", n)
	}
	if want := string(f.db.get("/latest")); first != want {
		t.Errorf("latest = %q, want the database's %q", first, want)
	}
	before := f.db.count("/latest")

	// Within the TTL: from the cache, even though the tree grew.
	f.db.get("/lookup/" + modY + "@v1.0.0")
	f.advance(f.ttl / 2)
	if got := f.get(t, "latest", http.StatusOK).Body.String(); got != first {
		t.Errorf("within the TTL latest changed to %q", got)
	}
	if n := f.db.count("/latest") - before; n != 0 {
		t.Errorf("within the TTL latest reached the database %d times", n)
	}

	// After the TTL: fetched again, and the new tree is served.
	f.advance(f.ttl)
	second := f.get(t, "latest", http.StatusOK).Body.String()
	if n := f.db.count("/latest") - before; n != 1 {
		t.Errorf("after the TTL latest reached the database %d times, want 1", n)
	}
	if second == first {
		t.Error("after the TTL latest still serves the old tree")
	}
	if n0, n1 := treeSize(t, f.db, []byte(first)), treeSize(t, f.db, []byte(second)); n1 != n0+1 {
		t.Errorf("new latest has %d records, want %d (one more than the first)", n1, n0+1)
	}

	// The database goes down: the last tree is served, stale.
	f.db.stop()
	f.advance(10 * f.ttl)
	if got := f.get(t, "latest", http.StatusOK).Body.String(); got != second {
		t.Errorf("with the database down latest = %q, want the stale %q", got, second)
	}
}

func TestProxyBadPaths(t *testing.T) {
	f := newProxyFixture(t)
	for _, rest := range []string{
		"lookup/example.com/x",
		"lookup/example.com/x@",
		"lookup/example.com/x@latest",
		"lookup/example.com/x@v1.0",
		"lookup/example.com/x@master",
		"lookup/Example.com/x@v1.0.0",
		"lookup/@v1.0.0",
		"lookup/example.com/x@v1.0.0@v1.0.0",
		"tile/",
		"tile/8/0/abc",
		"tile/x/y/z",
		"tile/8/0/000.p/0",
		"tile/8/-2/000",
	} {
		w := f.get(t, rest, http.StatusBadRequest)
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type %q", rest, ct)
		}
	}
	if n := f.db.total(); n != 0 {
		t.Errorf("bad paths reached the database: %v", f.db.requests())
	}
}
