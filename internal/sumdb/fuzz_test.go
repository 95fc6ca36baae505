package sumdb

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/store"
)

// FuzzProxyPath drives the /sumdb/ handler with arbitrary paths against an
// in-process database that is up and answers: whatever the path, the
// proxy must not panic, must not answer 5xx (nothing is wrong upstream;
// only the path can be), and must answer errors as one text/plain line.
//
//	go test -run '^$' -fuzz FuzzProxyPath -fuzztime 60s ./internal/sumdb/
func FuzzProxyPath(f *testing.F) {
	for _, seed := range []string{
		"supported", "latest",
		"lookup/example.com/x@v1.0.0", "lookup/example.com/!x@v1.0.0", "lookup/golang.org/x/text@v0.3.0",
		"lookup/example.com/x@v1.0.0-20200101000000-0123456789ab", "lookup/corp.example.com/secret@v1.0.0",
		"lookup/private.example/app@v1.0.0", "lookup/example.com/x@v1.0.0/go.mod", "lookup/@", "lookup/",
		"tile/8/0/000.p/1", "tile/8/0/000", "tile/8/1/000.p/1", "tile/8/data/000.p/1", "tile/8/data/000",
		"tile/8/0/x001/234.p/5", "tile/8/0/x999/x999/x999/x999/x999/x999/x999/999", "tile/3/0/000",
		"tile/8/-1/000", "tile/8/0/000.p/0", "tile/8/0/000.p/256", "tile/30/63/000.p/1", "tile/8/63/000",
		"tile/", "", "/", "%", "tile/8/0/000.p/1\n", "lookup/a\x00b@v1.0.0",
	} {
		f.Add(seed)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, testDBName)
	if err != nil {
		f.Fatal(err)
	}
	recs := standardRecords()
	recs.add("corp.example.com/secret", "v1.0.0", fakeH1("s zip"), fakeH1("s mod"))
	db := newTestDB(f, skey, vkey, recs)
	st, err := store.NewDisk(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	v := NewVerifier(Config{DB: db.DB(), Store: st, Remote: NewRemote(db.DB(), nil, testClient), NoSumDB: "corp.example.com"})
	f.Cleanup(func() { v.Close() })
	for _, m := range []string{modX, modY} { // a tree with something in it
		if err := v.Verify(context.Background(), m, "v1.0.0", false, fakeH1(m+" zip")); err != nil {
			f.Fatal(err)
		}
	}
	private := func(p string) bool { return strings.HasPrefix(p, "private.example/") }
	h := NewProxy(v, private, time.Minute, nil).Handler(testWriteError)

	f.Fuzz(func(t *testing.T, rest string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		// The decoded path, as net/http hands it to the handler; any
		// bytes, since a client can percent-encode anything.
		r.URL = &url.URL{Path: "/sumdb/" + testDBName + "/" + rest}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%q: %d %q", rest, w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("%q: %d with Content-Type %q", rest, w.Code, ct)
			}
			if body := strings.TrimSuffix(w.Body.String(), "\n"); strings.ContainsAny(body, "\r\n") {
				t.Fatalf("%q: %d with a body of more than one line: %q", rest, w.Code, w.Body)
			}
		}
	})
}

// FuzzParseDB: ParseDB never panics, refuses with one line, and what it
// accepts is a usable database whose description parses back the same.
//
//	go test -run '^$' -fuzz FuzzParseDB -fuzztime 60s ./internal/sumdb/
func FuzzParseDB(f *testing.F) {
	_, vkey, err := note.GenerateKey(rand.Reader, testDBName)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		DefaultName, " " + DefaultName + " ", DefaultName + " https://mirror.example/sumdb/" + DefaultName,
		vkey, vkey + " http://127.0.0.1:9/db/", vkey + " https://user:pw@mirror.example/",
		"", "off", "a b c", "sum.example.com", testDBName + "+deadbeef+AQ", vkey + " ftp://x", vkey + " //x",
		vkey + " http://", knownKeys[DefaultName] + " https://[::1]:8443/x?y=z#f",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		db, err := ParseDB(spec)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("ParseDB(%q) error is not one line: %q", spec, err)
			}
			return
		}
		v, err := note.NewVerifier(db.Key)
		if err != nil || v.Name() != db.Name {
			t.Fatalf("ParseDB(%q) = %+v: the key does not verify for that name (%v)", spec, db, err)
		}
		if err := checkDBName(db.Name); err != nil {
			t.Fatalf("ParseDB(%q) accepted name %q: %v", spec, db.Name, err)
		}
		u, err := url.Parse(db.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("ParseDB(%q) = %+v: URL is not an http(s) URL with a host", spec, db)
		}
		again, err := ParseDB(db.Key + " " + db.URL)
		if err != nil || again != db {
			t.Fatalf("ParseDB(%q) = %+v, but its own description parses as %+v, %v", spec, db, again, err)
		}
	})
}
