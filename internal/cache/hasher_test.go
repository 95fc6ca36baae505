package cache_test

// Tests of when a zip's h1: hash is computed: before the zip is stored when
// a verifier checks it, in the background after it is served when nothing
// does, and on demand when it was never stored.

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

const hashPath = "example.com/m"

// newHashCache returns a cache over st fetching from up, with verifier v
// (nil: none). Its Close is registered as a cleanup, so that the hasher's
// end is part of every test.
func newHashCache(t *testing.T, st store.Store, up *testenv.Upstream, v cache.Verifier) *cache.Modules {
	t.Helper()
	chain, err := source.ParseList(up.URL(), func(base string) source.Source {
		return source.NewUpstream(base, source.NewHTTPClient())
	})
	if err != nil {
		t.Fatal(err)
	}
	m := cache.New(cache.Config{Store: st, Source: chain, ScratchDir: t.TempDir(),
		ListTTL: time.Minute, FetchTimeout: time.Minute, Verifier: v,
		Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(m.Close)
	return m
}

func newDisk(t *testing.T) *store.Disk {
	t.Helper()
	disk, err := store.NewDisk(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return disk
}

// hashTree builds a fixture tree with versions of example.com/m and returns
// it and each version's zip h1: hash, as the go command computes it.
func hashTree(t *testing.T, versions ...string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	var mods []testenv.Module
	for _, v := range versions {
		mods = append(mods, testenv.Module{Path: hashPath, Version: v,
			Files: map[string]string{"m.go": "package m\n\nconst V = \"" + v + "\"\n"}})
	}
	testenv.BuildTree(t, dir, mods)
	up := &testenv.Upstream{Dir: dir}
	h1s := map[string]string{}
	for _, v := range versions {
		h1, err := dirhash.HashZip(up.FilePath(hashPath, v, "zip"), dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		h1s[v] = h1
	}
	return dir, h1s
}

// stored returns the stored object of path@version's ext, or nil.
func stored(t *testing.T, st store.Store, version, ext string) []byte {
	t.Helper()
	key, err := store.VersionKey(hashPath, version, ext)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Open(context.Background(), key)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fetchZip asks m for the zip of version and returns its content and File.
func fetchZip(t *testing.T, m *cache.Modules, version string) ([]byte, *protocol.File) {
	t.Helper()
	f, err := m.Zip(context.Background(), hashPath, version)
	if err != nil {
		t.Fatalf("Zip %s: %v", version, err)
	}
	defer f.Content.Close()
	data, err := io.ReadAll(f.Content)
	if err != nil {
		t.Fatal(err)
	}
	return data, f
}

// TestZipServedBeforeHashed: with nothing verifying zips, a fetched zip is
// served while its hash is still to be computed, and its .ziphash appears
// afterwards, with the hash the go command computes.
func TestZipServedBeforeHashed(t *testing.T) {
	tree, h1s := hashTree(t, "v1.0.0")
	up := testenv.NewUpstream(t, tree)
	disk := newDisk(t)
	m := newHashCache(t, disk, up, nil)
	release := m.HoldHashing()
	t.Cleanup(release) // before Close, which waits for the hasher

	data, f := fetchZip(t, m, "v1.0.0")
	want, err := os.ReadFile(up.FilePath(hashPath, "v1.0.0", "zip"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Fatal("served zip differs from the upstream's")
	}
	if h := stored(t, disk, "v1.0.0", "ziphash"); h != nil {
		t.Fatalf(".ziphash stored while the hasher was held: %q", h)
	}

	release()
	m.WaitHashed()
	if h := string(stored(t, disk, "v1.0.0", "ziphash")); h != h1s["v1.0.0"]+"\n" {
		t.Errorf(".ziphash = %q, want %q", h, h1s["v1.0.0"]+"\n")
	}
	if h1, err := f.H1(context.Background()); err != nil || h1 != h1s["v1.0.0"] {
		t.Errorf("H1 = %q, %v; want %s", h1, err, h1s["v1.0.0"])
	}
	if n := up.Count("/example.com/m/@v/v1.0.0.zip"); n != 1 {
		t.Errorf("upstream asked %d times for the zip, want 1", n)
	}
}

// TestHashQueueFull: past the queue's bound, a zip is served without
// being queued, and its hash is computed when asked for.
func TestHashQueueFull(t *testing.T) {
	// One job held by the hasher, the queue's 64 waiting, and one more.
	var versions []string
	for i := range 66 {
		versions = append(versions, fmt.Sprintf("v1.0.%d", i))
	}
	tree, h1s := hashTree(t, versions...)
	disk := newDisk(t)
	m := newHashCache(t, disk, testenv.NewUpstream(t, tree), nil)
	release := m.HoldHashing()
	t.Cleanup(release)
	for _, v := range versions {
		fetchZip(t, m, v)
	}
	release()
	m.WaitHashed()
	last := versions[len(versions)-1]
	for _, v := range versions {
		h := stored(t, disk, v, "ziphash")
		if v == last {
			if h != nil {
				t.Errorf("%s: .ziphash %q stored, want none (the queue was full)", v, h)
			}
		} else if string(h) != h1s[v]+"\n" {
			t.Errorf("%s: .ziphash = %q, want %q", v, h, h1s[v]+"\n")
		}
	}
	_, f := fetchZip(t, m, last)
	if h1, err := f.H1(context.Background()); err != nil || h1 != h1s[last] {
		t.Errorf("H1 of %s = %q, %v; want %s", last, h1, err, h1s[last])
	}
	if h := string(stored(t, disk, last, "ziphash")); h != h1s[last]+"\n" {
		t.Errorf("%s: .ziphash after H1 = %q, want %q", last, h, h1s[last]+"\n")
	}
}

// damagedZip returns a module zip of example.com/m@version whose central
// directory is sound but whose m.go does not match its CRC-32: only
// decompressing it shows the damage.
func damagedZip(t *testing.T, version string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	content := "package m\n\nconst V = \"original\"\n"
	for name, data := range map[string]string{"go.mod": "module example.com/m\n", "m.go": content} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: hashPath + "@" + version + "/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	i := bytes.Index(b, []byte("original"))
	if i < 0 {
		t.Fatal("content not found in the zip")
	}
	copy(b[i:], "tampered")
	return b
}

// TestDamagedZipDeletedByHasher: a zip whose content is damaged but whose
// structure passes is served (nothing hashes it first), then deleted when
// the hasher finds the damage, and fetched again on the next request.
func TestDamagedZipDeletedByHasher(t *testing.T) {
	tree, h1s := hashTree(t, "v1.0.0")
	up := testenv.NewUpstream(t, tree)
	bad := damagedZip(t, "v1.0.0")
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/example.com/m/@v/v1.0.0.zip" {
			w.Write(bad)
			return true
		}
		return false
	})
	disk := newDisk(t)
	m := newHashCache(t, disk, up, nil)
	release := m.HoldHashing()
	t.Cleanup(release)

	if data, _ := fetchZip(t, m, "v1.0.0"); !bytes.Equal(data, bad) {
		t.Fatal("served zip differs from the upstream's")
	}
	if stored(t, disk, "v1.0.0", "zip") == nil {
		t.Fatal("zip not stored")
	}
	release()
	m.WaitHashed()
	if z := stored(t, disk, "v1.0.0", "zip"); z != nil {
		t.Error("damaged zip still stored after hashing")
	}
	if h := stored(t, disk, "v1.0.0", "ziphash"); h != nil {
		t.Errorf(".ziphash %q stored for a damaged zip", h)
	}
	// The upstream mends its ways: the next request fetches the zip again.
	up.SetHook(nil)
	fetchZip(t, m, "v1.0.0")
	if n := up.Count("/example.com/m/@v/v1.0.0.zip"); n != 2 {
		t.Errorf("upstream asked %d times for the zip, want 2 (fetched again once deleted)", n)
	}
	m.WaitHashed()
	if h := string(stored(t, disk, "v1.0.0", "ziphash")); h != h1s["v1.0.0"]+"\n" {
		t.Errorf(".ziphash of the good zip = %q, want %q", h, h1s["v1.0.0"]+"\n")
	}
}

// plainStore is a store whose objects are not files: Open returns no
// io.ReaderAt, as an object store's would not.
type plainStore struct{ store.Store }

func (s plainStore) Open(ctx context.Context, key string) (io.ReadSeekCloser, store.Info, error) {
	rc, info, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, info, err
	}
	return struct{ io.ReadSeekCloser }{rc}, info, nil
}

// TestH1OnDemand: a stored zip without .ziphash (the process died before
// hashing it) is hashed when its H1 is asked for, from a store of files
// and from one of other objects, and the hash is stored.
func TestH1OnDemand(t *testing.T) {
	tree, h1s := hashTree(t, "v1.0.0")
	zipData, err := os.ReadFile((&testenv.Upstream{Dir: tree}).FilePath(hashPath, "v1.0.0", "zip"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		st   func(*store.Disk) store.Store
	}{
		{"files", func(d *store.Disk) store.Store { return d }},
		{"objects", func(d *store.Disk) store.Store { return plainStore{d} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := newDisk(t)
			st := tc.st(disk)
			key, _ := store.VersionKey(hashPath, "v1.0.0", "zip")
			if err := st.Put(context.Background(), key, bytes.NewReader(zipData)); err != nil {
				t.Fatal(err)
			}
			up := testenv.NewUpstream(t, tree)
			m := newHashCache(t, st, up, nil)
			_, f := fetchZip(t, m, "v1.0.0")
			if !f.Stored || up.Total() != 0 {
				t.Fatalf("zip not served from storage (stored %v, %d upstream requests)", f.Stored, up.Total())
			}
			if stored(t, st, "v1.0.0", "ziphash") != nil {
				t.Fatal(".ziphash stored before H1 was asked for")
			}
			if h1, err := f.H1(context.Background()); err != nil || h1 != h1s["v1.0.0"] {
				t.Errorf("H1 = %q, %v; want %s", h1, err, h1s["v1.0.0"])
			}
			if h := string(stored(t, st, "v1.0.0", "ziphash")); h != h1s["v1.0.0"]+"\n" {
				t.Errorf(".ziphash = %q, want %q", h, h1s["v1.0.0"]+"\n")
			}
		})
	}
}

// recordingVerifier accepts every hash, skips the paths skip matches, and
// records what it was asked.
type recordingVerifier struct {
	skip func(path string) bool // nil: no Skips method (verifierOnly)

	mu    sync.Mutex
	asked []string // "path@version h1"
}

func (v *recordingVerifier) Verify(ctx context.Context, path, version string, gomod bool, h1 string) error {
	if !gomod {
		v.mu.Lock()
		v.asked = append(v.asked, path+"@"+version+" "+h1)
		v.mu.Unlock()
	}
	return nil
}

func (v *recordingVerifier) Skips(path string) bool { return v.skip(path) }

// verifierOnly hides Skips: a verifier that checks every path.
type verifierOnly struct{ cache.Verifier }

// orderStore records, when a zip is stored, whether its .ziphash already
// was.
type orderStore struct {
	*store.Disk
	zipPut, hashFirst bool
}

func (s *orderStore) PutFile(ctx context.Context, key, name string) error {
	if strings.HasSuffix(key, ".zip") {
		_, err := s.Disk.Stat(ctx, strings.TrimSuffix(key, ".zip")+".ziphash")
		s.zipPut, s.hashFirst = true, err == nil
	}
	return s.Disk.PutFile(ctx, key, name)
}

// TestVerifiedZipHashedFirst: when a verifier checks a zip, its hash is
// computed and verified, and its .ziphash stored, before the zip is; when
// the verifier skips the path, the zip is served before it is hashed, as
// without a verifier, and the verifier is still told about it.
func TestVerifiedZipHashedFirst(t *testing.T) {
	tree, h1s := hashTree(t, "v1.0.0")
	h1 := h1s["v1.0.0"]
	for _, tc := range []struct {
		name      string
		v         func(*recordingVerifier) cache.Verifier
		skip      bool
		wantAsked string
	}{
		{"verifies", func(r *recordingVerifier) cache.Verifier { return verifierOnly{r} }, false, h1},
		{"does not skip", func(r *recordingVerifier) cache.Verifier { return r }, false, h1},
		{"skips", func(r *recordingVerifier) cache.Verifier { return r }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingVerifier{skip: func(p string) bool { return tc.skip && p == hashPath }}
			st := &orderStore{Disk: newDisk(t)}
			m := newHashCache(t, st, testenv.NewUpstream(t, tree), tc.v(rec))
			release := m.HoldHashing()
			t.Cleanup(release)
			_, f := fetchZip(t, m, "v1.0.0")
			if !st.zipPut {
				t.Fatal("zip not stored with PutFile")
			}
			if st.hashFirst == tc.skip {
				t.Errorf(".ziphash stored before the zip: %v, want %v", st.hashFirst, !tc.skip)
			}
			if want := []string{hashPath + "@v1.0.0 " + tc.wantAsked}; fmt.Sprint(rec.asked) != fmt.Sprint(want) {
				t.Errorf("verifier asked %q, want %q", rec.asked, want)
			}
			release()
			m.WaitHashed()
			if h := string(stored(t, st, "v1.0.0", "ziphash")); h != h1+"\n" {
				t.Errorf(".ziphash = %q, want %q", h, h1+"\n")
			}
			if got, err := f.H1(context.Background()); err != nil || got != h1 {
				t.Errorf("H1 = %q, %v; want %s", got, err, h1)
			}
		})
	}
}

// unreadableZips is a disk store whose zips cannot be read at offsets (an
// I/O error of the machine), while they still stream.
type unreadableZips struct{ *store.Disk }

type failingReaderAt struct{ io.ReadSeekCloser }

func (failingReaderAt) ReadAt([]byte, int64) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: "/srv/modgate/x.zip", Err: errors.New("input/output error")}
}

func (u unreadableZips) Open(ctx context.Context, key string) (io.ReadSeekCloser, store.Info, error) {
	rc, info, err := u.Disk.Open(ctx, key)
	if err != nil || !strings.HasSuffix(key, ".zip") {
		return rc, info, err
	}
	return failingReaderAt{rc}, info, nil
}

// TestH1UnreadableKeepsZip: a stored zip the machine cannot read is not
// damaged, so asking its hash fails without deleting it.
func TestH1UnreadableKeepsZip(t *testing.T) {
	tree, _ := hashTree(t, "v1.0.0")
	zipData, err := os.ReadFile((&testenv.Upstream{Dir: tree}).FilePath(hashPath, "v1.0.0", "zip"))
	if err != nil {
		t.Fatal(err)
	}
	disk := newDisk(t)
	key, _ := store.VersionKey(hashPath, "v1.0.0", "zip")
	if err := disk.Put(context.Background(), key, bytes.NewReader(zipData)); err != nil {
		t.Fatal(err)
	}
	m := newHashCache(t, unreadableZips{disk}, testenv.NewUpstream(t, tree), nil)
	_, f := fetchZip(t, m, "v1.0.0")
	if h1, err := f.H1(context.Background()); !errors.Is(err, modcheck.ErrUnreadable) {
		t.Fatalf("H1 = %q, %v; want an ErrUnreadable error", h1, err)
	}
	if stored(t, disk, "v1.0.0", "zip") == nil {
		t.Fatal("a zip that could not be read was deleted as damaged")
	}
}
