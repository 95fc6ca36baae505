// Package sumdbtest runs real checksum databases for tests: x/mod's test
// server, signed with a key made for the test, behind x/mod's HTTP server
// on 127.0.0.1, with records computed from fixture modules the way the
// go command computes go.sum lines.
package sumdbtest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"

	"github.com/modgate/modgate/internal/testenv"
)

// DB is a checksum database served over HTTP, counting requests.
type DB struct {
	Name string // the database's name, as in its key
	Key  string // its verifier key ("name+hash+keydata")
	URL  string // its base URL

	srv  *httptest.Server
	reqs testenv.RequestLog
}

// GoSum answers a lookup: the go.sum lines of path@vers, or an error that
// is os.ErrNotExist for a version the database does not know (404).
type GoSum func(path, vers string) ([]byte, error)

// New starts a database named name, with a fresh key, whose records are
// what gosum answers. It is stopped when the test ends.
func New(t testing.TB, name string, gosum GoSum) *DB {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigned(t, skey, vkey, gosum)
}

// NewSigned starts a database signed with the given key pair (from
// note.GenerateKey), so that two databases can share a key: a fork of
// one log, as a client sees it. It is stopped when the test ends.
func NewSigned(t testing.TB, skey, vkey string, gosum GoSum) *DB {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	db := &DB{Name: v.Name(), Key: vkey}
	h := sumdb.NewServer(sumdb.NewTestServer(skey, gosum))
	db.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.reqs.Add(r.URL.Path)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(db.srv.Close)
	db.URL = db.srv.URL
	return db
}

// Spec is the database in GOSUMDB syntax: its key and its URL.
func (db *DB) Spec() string { return db.Key + " " + db.URL }

// Close takes the database off the network: connections are refused.
func (db *DB) Close() { db.srv.Close() }

// Count returns how many requests had a path containing substr.
func (db *DB) Count(substr string) int { return db.reqs.Count(substr) }

// Total returns how many requests reached the database.
func (db *DB) Total() int { return db.reqs.Total() }

// Requests returns the request paths so far, for failure messages.
func (db *DB) Requests() []string { return db.reqs.Paths() }

// FixtureGoSum computes the go.sum lines of the fixture modules up serves,
// as the go command would: the h1: of the zip and of the go.mod. Versions
// without a zip there are unknown to the database.
func FixtureGoSum(up *testenv.Upstream) GoSum {
	return func(path, vers string) ([]byte, error) {
		zipFile := up.FilePath(path, vers, "zip")
		if _, err := os.Stat(zipFile); err != nil {
			return nil, os.ErrNotExist
		}
		zh, err := dirhash.HashZip(zipFile, dirhash.Hash1)
		if err != nil {
			return nil, err
		}
		gomod, err := os.ReadFile(up.FilePath(path, vers, "mod"))
		if err != nil {
			return nil, err
		}
		mh, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(gomod)), nil
		})
		if err != nil {
			return nil, err
		}
		return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", path, vers, zh, path, vers, mh), nil
	}
}
