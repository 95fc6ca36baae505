package sumdb

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/store"
)

// The /sumdb/ proxy serves only what it verified: tiles authenticated
// against a verified tree, latest whose signature verifies and that is
// consistent with the stored tree, and, with the database unreachable,
// everything a go command needs to verify what the verifier stored.

// tamperFixture is a verifier and a proxy over a fresh store that reach a
// test database through an upstream that can corrupt its answers.
type tamperFixture struct {
	skey string
	db   *testDB
	td   *tamperingDB
	st   *store.Disk
	v    *Verifier
	p    *Proxy
	h    http.Handler

	mu    sync.Mutex
	clock time.Time
}

const testLatestTTL = time.Minute

// newTamperFixture holds the standard records, after grow others.
func newTamperFixture(t *testing.T, grow int) *tamperFixture {
	t.Helper()
	skey, vkey := testKeys(t)
	f := &tamperFixture{skey: skey, db: newTestDB(t, skey, vkey, standardRecords()), st: newDisk(t),
		clock: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.db.grow(grow)
	f.td = newTamperingDB(t, f.db)
	log := testLogger(t)
	d := f.td.DB(f.db)
	f.v = NewVerifier(Config{DB: d, Store: f.st, Remote: NewRemote(d, nil, testClient), Logger: log})
	t.Cleanup(func() { f.v.Close() })
	f.p = NewProxy(f.v, nil, testLatestTTL, log)
	f.p.now = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.clock
	}
	f.h = f.p.Handler(testWriteError)
	return f
}

func (f *tamperFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

func (f *tamperFixture) get(rest string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/sumdb/"+testDBName+"/"+rest, nil))
	return w
}

func (f *tamperFixture) verify(t *testing.T, mod string) {
	t.Helper()
	if err := f.v.Verify(context.Background(), mod, "v1.0.0", false, fakeH1(mod+" zip")); err != nil {
		t.Fatalf("verify %s: %v", mod, err)
	}
}

// TestProxyRefusesBadHashTile: a hash tile from the upstream that does not
// match the verified tree (8192 zero bytes, one flipped bit, a short one)
// is answered 502 and never stored, so that the next client does not get
// it either; once the upstream behaves, the real tile is served and kept.
func TestProxyRefusesBadHashTile(t *testing.T) {
	f := newTamperFixture(t, 300)
	// x is record 300, in tile 0/001: checking it needs the level-1 tile
	// that authenticates tile 0/000, but not tile 0/000 itself.
	f.verify(t, modX)
	const tile = "tile/8/0/000"
	good := f.db.get("/" + tile)
	if len(good) != 8192 {
		t.Fatalf("the database's %s has %d bytes", tile, len(good))
	}
	for _, bad := range []struct {
		name   string
		change func([]byte) []byte
	}{
		{"zeros", func(b []byte) []byte { return make([]byte, len(b)) }},
		{"one bit", func(b []byte) []byte { c := bytes.Clone(b); c[100] ^= 1; return c }},
		{"short", func(b []byte) []byte { return b[:len(b)-32] }},
	} {
		f.td.setTamper(func(path string, body []byte) []byte {
			if strings.HasPrefix(path, "/tile/8/0/") {
				return bad.change(body)
			}
			return body
		})
		for i := range 2 { // the second time finds nothing kept from the first
			w := f.get(tile)
			if w.Code != http.StatusBadGateway {
				t.Fatalf("%s tile, request %d: %d %q, want 502", bad.name, i+1, w.Code, w.Body)
			}
			checkOneLine(t, bad.name+" tile", w, "try again later")
		}
		for _, k := range storedKeys(t, f.st, "sumdb/") {
			if strings.HasSuffix(k, "/8/0/000") || strings.Contains(k, "/served/") {
				t.Errorf("%s tile: stored %s", bad.name, k)
			}
		}
	}

	f.td.setTamper(nil)
	if w := f.get(tile); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), good) {
		t.Fatalf("with the upstream fixed: %d, %d bytes equal to the database's: %v", w.Code, w.Body.Len(), bytes.Equal(w.Body.Bytes(), good))
	}
	f.td.srv.Close()
	if w := f.get(tile); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), good) {
		t.Fatalf("with the upstream gone, the checked tile: %d %q", w.Code, w.Body)
	}
}

// TestProxyTileBeyondTreeMovesItForward: a tile of a newer tree than the
// verified one is served only after that tree is fetched, its signature
// verified and its consistency with the stored tree proved; bad tiles on
// the way leave the stored tree as it was.
func TestProxyTileBeyondTreeMovesItForward(t *testing.T) {
	f := newTamperFixture(t, 0)
	f.verify(t, modX) // the stored tree has one record
	latestKey := "sumdb/" + testDBName + "/latest"
	before := readKey(t, f.st, latestKey)
	f.db.grow(20)
	const tile = "tile/8/0/000.p/10"

	f.td.setTamper(func(path string, body []byte) []byte {
		if strings.HasPrefix(path, "/tile/") {
			return make([]byte, len(body))
		}
		return body
	})
	w := f.get(tile)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("with bad tiles: %d %q, want 502", w.Code, w.Body)
	}
	checkOneLine(t, "bad tiles of a newer tree", w, "try again later")
	if got := readKey(t, f.st, latestKey); !bytes.Equal(got, before) {
		t.Errorf("the stored tree moved to one whose tiles did not check:\n%s", got)
	}
	for _, k := range storedKeys(t, f.st, "sumdb/"+testDBName+"/tile/") {
		if !strings.HasSuffix(k, "/000.p/1") {
			t.Errorf("stored %s", k)
		}
	}

	f.td.setTamper(nil)
	f.advance(tileRefreshInterval) // the failure is not retried at once
	w = f.get(tile)
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), f.db.get("/"+tile)) {
		t.Fatalf("with good tiles: %d %q", w.Code, w.Body)
	}
	if n := treeSize(t, f.db, readKey(t, f.st, latestKey)); n != 21 {
		t.Errorf("stored tree has %d records, want the database's 21", n)
	}
}

// TestProxyRefusesBadDataTile: data tiles are checked record by record
// against the verified hashes.
func TestProxyRefusesBadDataTile(t *testing.T) {
	f := newTamperFixture(t, 0)
	f.verify(t, modX)
	f.verify(t, modY)
	const tile = "tile/8/data/000.p/2"
	good := f.db.get("/" + tile)
	for _, bad := range []struct {
		name   string
		change func([]byte) []byte
	}{
		{"altered hash", func(b []byte) []byte { return bytes.Replace(b, []byte("h1:"), []byte("h1:A"), 1) }},
		{"records swapped", func(b []byte) []byte {
			recs := bytes.SplitAfter(b, []byte("\n\n")) // each record, then a blank line
			return bytes.Join([][]byte{recs[1], recs[0]}, nil)
		}},
		{"one record", func(b []byte) []byte { return b[:bytes.Index(b, []byte("\n\n"))+2] }},
	} {
		f.td.setTamper(func(path string, body []byte) []byte {
			if strings.Contains(path, "/data/") {
				return bad.change(body)
			}
			return body
		})
		w := f.get(tile)
		if w.Code != http.StatusBadGateway {
			t.Errorf("%s: %d %q, want 502", bad.name, w.Code, w.Body)
		}
		checkOneLine(t, bad.name, w, "try again later")
		for _, k := range storedKeys(t, f.st, "sumdb/") {
			if strings.Contains(k, "/data/") {
				t.Errorf("%s: stored %s", bad.name, k)
			}
		}
	}
	f.td.setTamper(nil)
	if w := f.get(tile); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), good) {
		t.Fatalf("with the upstream fixed: %d %q, want %q", w.Code, w.Body, good)
	}
	f.td.srv.Close()
	if w := f.get(tile); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), good) {
		t.Fatalf("with the upstream gone, the checked data tile: %d %q", w.Code, w.Body)
	}
}

// TestProxyLatestOnlyVerified: latest is served only once its signature
// verifies with the database's key, and junk never replaces a good one.
func TestProxyLatestOnlyVerified(t *testing.T) {
	f := newTamperFixture(t, 0)
	latestKey := "sumdb/" + testDBName + "/latest"
	signedBy := func(skey string) []byte {
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := note.Sign(&note.Note{Text: treeText(t, f)}, s)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	otherKey, _, err := note.GenerateKey(rand.Reader, testDBName)
	if err != nil {
		t.Fatal(err)
	}
	junk := map[string]func() []byte{
		"garbage":   func() []byte { return []byte("<html>captive portal</html>\n") },
		"other key": func() []byte { return signedBy(otherKey) },
		"unsigned":  func() []byte { return []byte(treeText(t, f)) },
	}

	// Nothing verified yet: junk is refused.
	for name, body := range junk {
		f.td.setTamper(func(path string, b []byte) []byte {
			if path == "/latest" {
				return body()
			}
			return b
		})
		w := f.get("latest")
		if w.Code != http.StatusBadGateway {
			t.Errorf("%s latest with nothing stored: %d %q, want 502", name, w.Code, w.Body)
		}
		checkOneLine(t, name+" latest", w, "try again later")
		if got := readKey(t, f.st, latestKey); got != nil {
			t.Fatalf("%s latest was stored: %q", name, got)
		}
	}

	f.verify(t, modX)
	f.td.setTamper(nil)
	good := f.get("latest")
	if good.Code != http.StatusOK || good.Body.String() != string(f.db.get("/latest")) {
		t.Fatalf("good latest: %d %q", good.Code, good.Body)
	}

	// Later, junk again: the good one is served, and stays stored.
	f.db.get("/lookup/" + modY + "@v1.0.0") // the database moved on
	for name, body := range junk {
		f.advance(2 * testLatestTTL)
		f.td.setTamper(func(path string, b []byte) []byte {
			if path == "/latest" {
				return body()
			}
			return b
		})
		w := f.get("latest")
		if w.Code != http.StatusOK || w.Body.String() != good.Body.String() {
			t.Errorf("%s latest after a good one: %d %q, want the good one", name, w.Code, w.Body)
		}
		if got := readKey(t, f.st, latestKey); string(got) != good.Body.String() {
			t.Errorf("%s latest replaced the stored one: %q", name, got)
		}
	}
	if p := f.v.SecurityProblem(); p != "" {
		t.Errorf("junk is not a security problem: %q", p)
	}
}

// treeText is the unsigned text of the database's latest tree.
func treeText(t *testing.T, f *tamperFixture) string {
	v, err := note.NewVerifier(f.db.vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(f.db.get("/latest"), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	return n.Text
}

// TestProxyDetectsForkInLatest: a latest tree signed with the right key
// but inconsistent with the stored tree is a security error; the stored
// tree stays, and lookups are refused.
func TestProxyDetectsForkInLatest(t *testing.T) {
	f := newTamperFixture(t, 0)
	f.verify(t, modX)
	f.verify(t, modY)
	latestKey := "sumdb/" + testDBName + "/latest"
	stored := readKey(t, f.st, latestKey)

	fork := newTestDB(t, f.skey, f.db.vkey, standardRecords()) // same key, another history
	for _, m := range []string{modY, modX, modZ} {
		fork.get("/lookup/" + m + "@v1.0.0")
	}
	f.td.setFrom(func(path string) *testDB {
		if path == "/latest" || strings.HasPrefix(path, "/tile/") {
			return fork
		}
		return f.db
	})
	sec0 := securityErrors(t)
	w := f.get("latest")
	if w.Code != http.StatusOK || w.Body.String() != string(stored) {
		t.Errorf("latest from a forked database: %d %q, want the stored tree", w.Code, w.Body)
	}
	if got := readKey(t, f.st, latestKey); !bytes.Equal(got, stored) {
		t.Errorf("the stored tree was replaced by the forked one:\n%s", got)
	}
	if p := f.v.SecurityProblem(); !strings.Contains(p, "misbehavior") {
		t.Errorf("SecurityProblem() = %q, want the misbehavior report", p)
	}
	if d := securityErrors(t) - sec0; d != 1 {
		t.Errorf("modgate_sumdb_security_errors_total went up by %v, want 1", d)
	}
	w = f.get("lookup/" + modX + "@v1.0.0")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "SECURITY ERROR") {
		t.Errorf("lookup after the fork: %d %q, want 503 SECURITY ERROR", w.Code, w.Body)
	}
	checkOneLine(t, "lookup after the fork", w, "operator")
}

// TestProxyAnswersFromVerifiedStateOffline is issue #6's "offline means
// offline" at the package level: the verifier checks modules while the
// log grows (records and trees spread over tiles and levels), go commands
// use the proxy meanwhile; then the database goes away, modgate restarts,
// and go commands with fresh module caches (and with the machine's earlier
// GOPATH state) verify every module through the proxy alone.
func TestProxyAnswersFromVerifiedStateOffline(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	st := newDisk(t)
	ctx := context.Background()
	v := newTestVerifier(t, db, st, "")
	verify := func(m string) {
		t.Helper()
		if err := v.Verify(ctx, m, "v1.0.0", true, fakeH1(m+" mod")); err != nil {
			t.Fatal(err)
		}
	}
	online := NewProxy(v, nil, time.Minute, testLogger(t))
	srv := httptest.NewServer(online.Handler(testWriteError))
	defer srv.Close()
	machine := &goConfig{} // a developer machine's GOPATH/pkg/sumdb

	db.grow(200)
	verify(modX) // record 200, tree 201
	checkWithGoClient(t, newGoClient(t, srv.URL+"/sumdb/"+testDBName, vkey, machine), modX)
	db.grow(100)
	verify(modY) // record 301, tree 302
	db.grow(300)
	verify(modZ) // record 602, tree 603
	db.stop()

	// Restarted, with the database out of reach.
	f := &proxyFixture{db: db, st: st}
	f.v = newTestVerifier(t, db, st, "")
	f.p = NewProxy(f.v, nil, time.Minute, testLogger(t))
	f.h = f.p.Handler(testWriteError)
	base := f.serve(t)

	checkWithGoClient(t, newGoClient(t, base, vkey, nil), modZ, modX, modY)
	shared := &goConfig{}
	for _, m := range []string{modY, modX, modZ} { // one go command after another
		checkWithGoClient(t, newGoClient(t, base, vkey, shared), m)
	}
	checkWithGoClient(t, newGoClient(t, base, vkey, machine), modY, modZ, modX)

	// latest is the verified tree, and the tiles of that tree are served.
	msg, err := getOK(base + "/latest")
	if err != nil {
		t.Fatal(err)
	}
	tree := signedTree(t, db, msg)
	if tree.N != 603 {
		t.Fatalf("offline latest has %d records, want 603", tree.N)
	}
	if h, err := tlog.TreeHash(tree.N, tlog.TileHashReader(tree, httpTileReader{base})); err != nil || h != tree.Hash {
		t.Errorf("tiles of the served latest tree: hash %v, %v; want %v", h, err, tree.Hash)
	}
}

// TestProxyErrorsSayWhatToDo: every answer that is not a verdict is one
// text/plain line that says what to do, even when the path is hostile.
func TestProxyErrorsSayWhatToDo(t *testing.T) {
	f := newProxyFixture(t)
	for _, tc := range []struct {
		method, path string
		status       int
		todo         string
	}{
		{"POST", "/sumdb/" + testDBName + "/latest", 405, "use GET"},
		{"GET", "/sumdb/other.example/lookup/x%0Ay@v1.0.0", 404, "proxies " + testDBName},
		{"GET", "/sumdb/" + testDBName + "/nonsense%0Ainjected", 404, "the protocol has"},
		{"GET", "/sumdb/" + testDBName + "/lookup/example.com/x%0Ainjected@v1.0.0", 400, "want <escaped module path>"},
		{"GET", "/sumdb/" + testDBName + "/tile/8/0/000%0A.p/1", 400, "want tile/8/"},
		{"GET", "/sumdb/" + testDBName + "/tile/4/0/000", 404, "height 8"},
		{"GET", "/sumdb/" + testDBName + "/lookup/private.example/app@v1.0.0", 403, "set GONOSUMDB"},
	} {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != tc.status {
			t.Errorf("%s %s: %d %q, want %d", tc.method, tc.path, w.Code, w.Body, tc.status)
		}
		checkOneLine(t, tc.method+" "+tc.path, w, tc.todo)
	}

	f.db.stop()
	for _, rest := range []string{"latest", "lookup/" + modY + "@v1.0.0", "tile/8/0/000.p/5", "tile/8/data/000.p/5"} {
		w := f.get(t, rest, http.StatusBadGateway)
		checkOneLine(t, rest+" with the database down", w, "try again later")
	}
}
