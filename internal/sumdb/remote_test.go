package sumdb

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/modgate/modgate/internal/testenv"
)

// proxyUpstream is a module proxy that either proxies the test database
// under /sumdb/<name>/ (supported) or does not (404 for all of /sumdb/).
type proxyUpstream struct {
	srv       *httptest.Server
	supported atomic.Bool
	broken    atomic.Bool // answer 503 to everything

	mu   sync.Mutex
	reqs testenv.RequestLog
}

func newProxyUpstream(t *testing.T, db *testDB, supported bool) *proxyUpstream {
	t.Helper()
	u := &proxyUpstream{}
	u.supported.Store(supported)
	// The same database content, served without going through db's
	// counter: requests that reach db directly are then told apart.
	inner := sumdb.NewServer(db.ops)
	prefix := "/sumdb/" + testDBName
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs.Add(r.URL.Path)
		u.mu.Unlock()
		if u.broken.Load() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || !u.supported.Load() {
			http.NotFound(w, r)
			return
		}
		if rest == "/supported" {
			w.WriteHeader(http.StatusOK)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		inner.ServeHTTP(w, r2)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *proxyUpstream) count(substr string) int {
	return u.reqs.Count(substr)
}

func TestRemoteUsesSupportingUpstream(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	no := newProxyUpstream(t, db, false)
	yes := newProxyUpstream(t, db, true)
	ctx := context.Background()

	r := NewRemote(db.DB(), []string{no.srv.URL, yes.srv.URL}, testClient)
	if got, want := r.Base(ctx), yes.srv.URL+"/sumdb/"+testDBName; got != want {
		t.Fatalf("Base = %q, want the supporting upstream %q", got, want)
	}
	v := NewVerifier(Config{DB: db.DB(), Store: newDisk(t), Remote: r, Logger: testLogger(t)})
	if err := v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Fatal(err)
	}
	verifyErr(t, v.Verify(ctx, modY, "v1.0.0", false, fakeH1("bad")), Mismatch)
	if n := db.total(); n != 0 {
		t.Errorf("%d requests went to the database directly although an upstream proxies it: %v", n, db.requests())
	}
	if n := yes.count("/lookup/"); n != 2 {
		t.Errorf("%d lookups went through the supporting upstream, want 2", n)
	}
	if n := no.count("/supported"); n != 1 {
		t.Errorf("the non-supporting upstream was probed %d times, want 1 (the probe is remembered)", n)
	}
	if n := no.count("") - no.count("/supported"); n != 0 {
		t.Errorf("the non-supporting upstream got %d database requests", n)
	}

	// When the chosen upstream fails, the choice is made again and, with
	// no upstream supporting the database any more, it is reached directly.
	yes.broken.Store(true)
	if _, err := r.Get(ctx, "/lookup/"+modZ+"@v1.0.0"); err == nil {
		t.Fatal("Get through a broken upstream succeeded")
	}
	if got := r.Base(ctx); got != db.URL() {
		t.Errorf("after the upstream broke, Base = %q, want the database's own URL %q", got, db.URL())
	}
	if err := v.Verify(ctx, modZ, "v1.0.0", false, fakeH1(modZ+" zip")); err != nil {
		t.Fatalf("after falling back to the database's URL: %v", err)
	}
	if db.count("/lookup/") == 0 {
		t.Error("no lookup reached the database directly after the fallback")
	}
}

func TestRemoteFallsBackToDBURL(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	no := newProxyUpstream(t, db, false)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close() // unreachable
	ctx := context.Background()

	r := NewRemote(db.DB(), []string{goneURL, no.srv.URL}, testClient)
	if got := r.Base(ctx); got != db.URL() {
		t.Fatalf("Base = %q, want the database's own URL %q", got, db.URL())
	}
	v := NewVerifier(Config{DB: db.DB(), Store: newDisk(t), Remote: r, Logger: testLogger(t)})
	if err := v.Verify(ctx, modX, "v1.0.0", true, fakeH1(modX+" mod")); err != nil {
		t.Fatal(err)
	}
	if n := db.count("/lookup/"); n != 1 {
		t.Errorf("%d lookups reached the database directly, want 1", n)
	}
	if n := no.count("/lookup/"); n != 0 {
		t.Errorf("%d lookups went to an upstream that answered 404 for supported", n)
	}
}

func TestRemoteGetErrors(t *testing.T) {
	var status atomic.Int32
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		w.Write([]byte(body.Load().(string)))
	}))
	defer srv.Close()
	r := NewRemote(DB{Name: testDBName, URL: srv.URL}, nil, testClient)
	ctx := context.Background()

	for _, tc := range []struct {
		status   int
		body     string
		notFound bool
		wantErr  string
	}{
		{200, "hello", false, ""},
		{404, "not found: example.com/x@v1.0.0\nmore", true, "not found: example.com/x@v1.0.0"},
		{410, "gone", true, "gone"},
		{500, "boom", false, "answered 500"},
		{200, strings.Repeat("x", maxRemoteSize+1), false, "larger than"},
	} {
		status.Store(int32(tc.status))
		body.Store(tc.body)
		data, err := r.Get(ctx, "/lookup/example.com/x@v1.0.0")
		if tc.wantErr == "" {
			if err != nil || string(data) != tc.body {
				t.Errorf("status %d: Get = %q, %v", tc.status, data, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("status %d: Get succeeded", tc.status)
			continue
		}
		if errors.Is(err, ErrNotFound) != tc.notFound {
			t.Errorf("status %d: errors.Is(err, ErrNotFound) = %v, want %v (err %v)", tc.status, !tc.notFound, tc.notFound, err)
		}
		if !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "more") {
			t.Errorf("status %d: error %q, want it to contain %q (first line of the body only)", tc.status, err, tc.wantErr)
		}
	}
}

// TestRemoteErrorsCarryNoCredentials: upstream and database URLs may hold
// user:password@ or a token, and a remote's error answer may echo them;
// none of it appears in an error, a verification error, or an answer of
// the proxy.
func TestRemoteErrorsCarryNoCredentials(t *testing.T) {
	const secret = "s3cr3t"
	_, vkey := testKeys(t)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/supported") {
			return // 200: use me for the database
		}
		user, pass, _ := r.BasicAuth()
		http.Error(w, "upstream failed for https://"+user+":"+pass+"@origin.example/x?token="+pass+"\nsecond line", http.StatusInternalServerError)
	}))
	defer echo.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	withCreds := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("user", secret)
		return u.String()
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		dbURL     string
		upstreams []string
	}{
		{"upstream echoing its credentials", "https://" + testDBName, []string{withCreds(echo.URL)}},
		{"unreachable database URL with credentials", withCreds(gone.URL), nil},
	} {
		d := DB{Name: testDBName, Key: vkey, URL: tc.dbURL}
		r := NewRemote(d, tc.upstreams, testClient)
		var texts []string
		for _, path := range []string{"/lookup/" + modX + "@v1.0.0", "/latest", "/tile/8/0/000.p/1"} {
			if _, err := r.Get(ctx, path); err == nil {
				t.Fatalf("%s: Get %s succeeded", tc.name, path)
			} else {
				texts = append(texts, err.Error())
			}
		}
		v := NewVerifier(Config{DB: d, Store: newDisk(t), Remote: r, Logger: testLogger(t)})
		defer v.Close()
		err := v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip"))
		verifyErr(t, err, Unavailable)
		texts = append(texts, err.Error())
		h := NewProxy(v, nil, time.Minute, testLogger(t)).Handler(testWriteError)
		for _, rest := range []string{"lookup/" + modY + "@v1.0.0", "latest", "tile/8/0/000.p/1"} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/sumdb/"+testDBName+"/"+rest, nil))
			if w.Code != http.StatusBadGateway {
				t.Errorf("%s: %s: %d, want 502", tc.name, rest, w.Code)
			}
			texts = append(texts, w.Body.String())
		}
		for _, s := range texts {
			if strings.Contains(s, secret) {
				t.Errorf("%s: the credentials show in %q", tc.name, s)
			}
			if strings.Contains(strings.TrimSuffix(s, "\n"), "\n") {
				t.Errorf("%s: not one line: %q", tc.name, s)
			}
		}
	}
}
