// Package storetest is a compliance suite for store.Store implementations.
// Every backend must pass Run:
//
//	func TestCompliance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newBackend(t) })
//	}
//
// Run tests the Store methods, then each optional capability (SizedPutter,
// ConditionalPutter, InfoLister, FilePutter) the store implements, saying
// in the test log which ones it does not, and then the fallback of each
// capability's helper (store.PutSized, store.PutIf, store.ListInfo,
// store.PutFile) over the store's plain methods.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/store"
)

// LargeSize is the size of the object written by the "Large" subtest
// (a smaller one with -short).
const LargeSize = 64 << 20

// A test is one subtest of the suite.
type test struct {
	name string
	fn   func(*testing.T, store.Store)
}

// Run runs the compliance suite. newStore must return a new, empty store
// for each call; it is called once per subtest, and once more per
// capability to see whether the store has it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	runTests(t, newStore, []test{
		{"Roundtrip", testRoundtrip},
		{"Empty", testEmpty},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"DeleteMissing", testDeleteMissing},
		{"InvalidKeys", testInvalidKeys},
		{"List", testList},
		{"ListStops", testListStops},
		{"Large", testLarge},
		{"FailingReader", testFailingReader},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ReadDuringOverwrite", testReadDuringOverwrite},
		{"Ping", testPing},
		{"CancelledPut", testCancelledPut},
	})

	// The capability tests go through the helpers, which call the store's
	// implementation when it has one. Under "Fallback" the same tests run
	// with the store's capabilities hidden: the helpers then fall back to
	// the plain methods, whose semantics must be the same.
	for _, c := range capabilities {
		t.Run(c.name, func(t *testing.T) {
			if s := newStore(t); !c.has(s) {
				t.Logf("%T does not implement store.%s: nothing of its own to test; Fallback/%s tests the helper over its plain methods", s, c.name, c.name)
				return
			}
			runTests(t, newStore, c.all())
		})
	}
	t.Run("Fallback", func(t *testing.T) {
		plain := func(t *testing.T) store.Store { return plainStore{newStore(t)} }
		for _, c := range capabilities {
			t.Run(c.name, func(t *testing.T) {
				runTests(t, plain, c.fallbackTests())
			})
		}
	})
}

func runTests(t *testing.T, newStore func(t *testing.T) store.Store, tests []test) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// plainStore hides every optional capability of the store it holds: only
// the Store methods are promoted.
type plainStore struct{ store.Store }

// put stores content under key or fails the test.
func put(t *testing.T, s store.Store, key string, content []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(content)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// get returns the content and info of key or fails the test.
func get(t *testing.T, s store.Store, key string) ([]byte, store.Info) {
	t.Helper()
	rc, info, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b, info
}

// wantNotExist fails the test unless key is absent for both Open and Stat.
func wantNotExist(t *testing.T, s store.Store, key string) {
	t.Helper()
	rc, _, err := s.Open(t.Context(), key)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Open(%q) error = %v, want ErrNotExist", key, err)
	}
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat(%q) error = %v, want ErrNotExist", key, err)
	}
}

// listAll returns every key with the prefix.
func listAll(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(t.Context(), prefix, func(key string) error {
		keys = append(keys, key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testRoundtrip(t *testing.T, s store.Store) {
	const key = "mod/example.com/!foo/@v/v1.0.0.zip"
	content := []byte("hello, modgate\n")
	put(t, s, key, content)

	rc, info, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, content) {
		t.Errorf("content = %q, want %q", got, content)
	}
	if info.Size != int64(len(content)) {
		t.Errorf("Open Size = %d, want %d", info.Size, len(content))
	}
	if info.ETag == "" {
		t.Error("Open ETag is empty")
	}
	if info.ModTime.IsZero() {
		t.Error("Open ModTime is zero")
	}

	// The content is seekable (http.ServeContent needs it).
	if n, err := rc.Seek(0, io.SeekEnd); err != nil || n != int64(len(content)) {
		t.Errorf("Seek(0, End) = %d, %v; want %d", n, err, len(content))
	}
	if _, err := rc.Seek(7, io.SeekStart); err != nil {
		t.Fatalf("Seek(7, Start): %v", err)
	}
	if rest, err := io.ReadAll(rc); err != nil || !bytes.Equal(rest, content[7:]) {
		t.Errorf("after Seek(7): %q, %v; want %q", rest, err, content[7:])
	}

	st, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Size != info.Size || st.ETag != info.ETag {
		t.Errorf("Stat = {%d %s}, Open = {%d %s}; want equal", st.Size, st.ETag, info.Size, info.ETag)
	}
}

func testEmpty(t *testing.T, s store.Store) {
	put(t, s, "empty", nil)
	got, info := get(t, s, "empty")
	if len(got) != 0 || info.Size != 0 {
		t.Errorf("empty object: content %q, Size %d", got, info.Size)
	}
	if info.ETag == "" {
		t.Error("ETag of empty object is empty")
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	const key = "meta/example.com/foo/list"
	put(t, s, key, []byte("v1.0.0\n"))
	_, info1 := get(t, s, key)
	seen := map[string]bool{info1.ETag: true}
	// Same size, different content, written immediately: a validator built
	// from size and a coarse mtime would not change.
	for _, content := range []string{"v1.0.1\n", "v1.0.2\n", "v1.0.3\n"} {
		put(t, s, key, []byte(content))
		got, info := get(t, s, key)
		if string(got) != content {
			t.Fatalf("after overwrite: content %q, want %q", got, content)
		}
		if info.Size != int64(len(content)) {
			t.Errorf("after overwrite: Size %d, want %d", info.Size, len(content))
		}
		if seen[info.ETag] {
			t.Errorf("after overwrite with %q: ETag %s was already used", content, info.ETag)
		}
		seen[info.ETag] = true
	}
	put(t, s, key, []byte("longer content than before\n"))
	if got, _ := get(t, s, key); string(got) != "longer content than before\n" {
		t.Errorf("after longer overwrite: %q", got)
	}
	put(t, s, key, []byte("x"))
	if got, _ := get(t, s, key); string(got) != "x" {
		t.Errorf("after shorter overwrite: %q (stale tail?)", got)
	}
}

func testMissing(t *testing.T, s store.Store) {
	wantNotExist(t, s, "no/such/key")
	put(t, s, "dir/sub/obj", []byte("x"))
	// A prefix of a stored key is not an object.
	wantNotExist(t, s, "dir")
	wantNotExist(t, s, "dir/sub")
	// Nor is a key "below" an object.
	wantNotExist(t, s, "dir/sub/obj/below")
	wantNotExist(t, s, "dir/sub/ob")
}

func testDelete(t *testing.T, s store.Store) {
	put(t, s, "a/b", []byte("x"))
	put(t, s, "a/c", []byte("y"))
	if err := s.Delete(t.Context(), "a/b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotExist(t, s, "a/b")
	if got, _ := get(t, s, "a/c"); string(got) != "y" {
		t.Errorf("sibling after Delete: %q", got)
	}
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{"a/c"}) {
		t.Errorf("List after Delete = %q, want [a/c]", keys)
	}
	// A deleted key can be written again.
	put(t, s, "a/b", []byte("z"))
	if got, _ := get(t, s, "a/b"); string(got) != "z" {
		t.Errorf("after re-Put: %q", got)
	}
}

func testDeleteMissing(t *testing.T, s store.Store) {
	if err := s.Delete(t.Context(), "no/such/key"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
	put(t, s, "x/y", []byte("1"))
	if err := s.Delete(t.Context(), "x/y/z"); err != nil {
		t.Errorf("Delete(below an object) = %v, want nil", err)
	}
	if err := s.Delete(t.Context(), "x"); err != nil {
		t.Errorf("Delete(prefix of an object) = %v, want nil", err)
	}
	if got, _ := get(t, s, "x/y"); string(got) != "1" {
		t.Errorf("x/y after deleting x: %q", got)
	}
}

// InvalidKeys must be rejected with ErrInvalidKey by every method.
var InvalidKeys = []string{
	"", "/abs", "a/../b", "a//b", "./a", "a\\b", "..", ".", "a/", "a/.", "../a", "a/..", "a\x00b",
}

func testInvalidKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, key := range InvalidKeys {
		if err := s.Put(ctx, key, bytes.NewReader([]byte("x"))); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		rc, _, err := s.Open(ctx, key)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Open(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if keys := listAll(t, s, ""); len(keys) != 0 {
		t.Errorf("store not empty after invalid Puts: %q", keys)
	}
	// A prefix that climbs out may be rejected, but must not list anything.
	for _, prefix := range []string{"../", "/", "a\\", "./"} {
		var keys []string
		err := s.List(ctx, prefix, func(k string) error { keys = append(keys, k); return nil })
		if err != nil && !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want nil or ErrInvalidKey", prefix, err)
		}
		if len(keys) != 0 {
			t.Errorf("List(%q) listed %q", prefix, keys)
		}
	}
}

// listKeys are chosen so that a naive directory walk (visiting directory
// "foo" before file or directory "foo-bar" or "foo.txt") returns them out
// of lexical order: '!', '-' and '.' sort before '/'.
var listKeys = []string{
	"mod/example.com/foo/@v/v1.0.0.info",
	"mod/example.com/foo/@v/v1.0.0.mod",
	"mod/example.com/foo/@v/v1.0.0.zip",
	"mod/example.com/foo/@v/v1.10.0.info",
	"mod/example.com/foo/@v/v1.2.0.info",
	"mod/example.com/foo/bar/@v/v0.1.0.mod",
	"mod/example.com/foo-bar/@v/v2.0.0.mod",
	"mod/example.com/foo.txt",
	"mod/example.com/foo!x/@v/v1.0.0.mod",
	"mod/example.com/fo/@v/v1.0.0.mod",
	"mod/example.com/f",
	"mod/example.org/foo/@v/v1.0.0.mod",
	"meta/example.com/foo/list",
	"meta/example.com/foo/query/0123abcd",
	"top",
	"top-level",
}

func testList(t *testing.T, s store.Store) {
	for _, k := range listKeys {
		put(t, s, k, []byte(k))
	}
	want := func(prefix string) []string {
		var w []string
		for _, k := range listKeys {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				w = append(w, k)
			}
		}
		slices.Sort(w)
		return w
	}
	for _, prefix := range []string{
		"",
		"mod/",
		"mod",
		"m",
		"mod/example.com/",
		"mod/example.com/fo",
		"mod/example.com/foo",
		"mod/example.com/foo/",
		"mod/example.com/foo/@v/",
		"mod/example.com/foo/@v/v1.0.0",
		"mod/example.com/foo/@v/v1.0.0.zip", // a whole key
		"mod/example.com/foo-",
		"meta/example.com/foo/",
		"top",
		"nothing",
		"nothing/here/",
		"mod/example.com/foo.txt/", // below an object
		"mod/example.net/",
	} {
		got := listAll(t, s, prefix)
		if w := want(prefix); !slices.Equal(got, w) {
			t.Errorf("List(%q):\n got %q\nwant %q", prefix, got, w)
		}
	}
}

func testListStops(t *testing.T, s store.Store) {
	for _, k := range []string{"l/a", "l/b", "l/c", "l/d"} {
		put(t, s, k, []byte(k))
	}
	errStop := errors.New("stop here")
	var got []string
	err := s.List(t.Context(), "l/", func(key string) error {
		got = append(got, key)
		if len(got) == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Errorf("List error = %v, want the error returned by fn", err)
	}
	if !slices.Equal(got, []string{"l/a", "l/b"}) {
		t.Errorf("List called fn with %q, want [l/a l/b]", got)
	}
}

// DataReader returns a deterministic pseudo-random stream of n bytes.
func DataReader(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func testLarge(t *testing.T, s store.Store) {
	size := int64(LargeSize)
	if testing.Short() {
		size = 4 << 20
	}
	const key = "mod/example.com/large/@v/v1.0.0.zip"
	h := sha256.New()
	if err := s.Put(t.Context(), key, io.TeeReader(DataReader(1, size), h)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	want := h.Sum(nil)

	rc, info, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rc.Close()
	if info.Size != size {
		t.Errorf("Size = %d, want %d", info.Size, size)
	}
	h.Reset()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if n != size {
		t.Errorf("read %d bytes, want %d", n, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		t.Errorf("sha256 = %x, want %x", got, want)
	}
}

// failingReader returns the data of r and then err instead of io.EOF.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func testFailingReader(t *testing.T, s store.Store) {
	errBoom := errors.New("boom: upstream connection reset")
	fail := func() io.Reader {
		return &failingReader{r: DataReader(2, 1<<20+123), err: errBoom}
	}

	// No previous object: nothing appears.
	const fresh = "mod/example.com/fail/@v/v1.0.0.zip"
	if err := s.Put(t.Context(), fresh, fail()); !errors.Is(err, errBoom) {
		t.Errorf("Put(failing reader) = %v, want the reader's error", err)
	}
	wantNotExist(t, s, fresh)

	// A previous object stays intact.
	const old = "mod/example.com/fail/@v/v1.1.0.zip"
	put(t, s, old, []byte("old content"))
	_, oldInfo := get(t, s, old)
	if err := s.Put(t.Context(), old, fail()); !errors.Is(err, errBoom) {
		t.Errorf("Put(failing reader) over existing = %v, want the reader's error", err)
	}
	got, info := get(t, s, old)
	if string(got) != "old content" {
		t.Errorf("old object after failed Put: %q", got)
	}
	if info.ETag != oldInfo.ETag {
		t.Errorf("old object ETag changed by failed Put: %s -> %s", oldInfo.ETag, info.ETag)
	}
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{old}) {
		t.Errorf("List after failed Puts = %q, want [%s]", keys, old)
	}
}

// pattern returns size bytes that identify id at every position, so a
// reader can tell a mix of two objects from either.
func pattern(id byte, size int) []byte {
	b := bytes.Repeat([]byte{id}, size)
	// Make the object self-describing: length and id in a header.
	copy(b, fmt.Sprintf("%c:%08d:", 'A'+id, size))
	return b
}

// checkPattern reports whether b is exactly pattern(id, len(b)) for some id.
func checkPattern(b []byte) error {
	if len(b) < 11 {
		return fmt.Errorf("short object (%d bytes)", len(b))
	}
	id := b[0] - 'A'
	if want := pattern(id, len(b)); !bytes.Equal(b, want) {
		return fmt.Errorf("object of %d bytes starting %q is a mix or truncated", len(b), b[:11])
	}
	return nil
}

func testConcurrentPuts(t *testing.T, s store.Store) {
	const key = "mod/example.com/race/@v/v1.0.0.zip"
	const writers = 8
	size := 4 << 20
	if testing.Short() {
		size = 256 << 10
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			// Small chunks so that the writes overlap.
			r := chunked(bytes.NewReader(pattern(byte(i), size)), 64<<10)
			errs[i] = s.Put(t.Context(), key, r)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put #%d: %v", i, err)
		}
	}
	got, info := get(t, s, key)
	if len(got) != size || info.Size != int64(size) {
		t.Errorf("len = %d, Size = %d, want %d", len(got), info.Size, size)
	}
	if err := checkPattern(got); err != nil {
		t.Error(err)
	}
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want [%s]", keys, key)
	}
}

// chunked returns a reader that returns at most chunk bytes per Read.
func chunked(r io.Reader, chunk int) io.Reader {
	return &chunkReader{r, chunk}
}

type chunkReader struct {
	r     io.Reader
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	return c.r.Read(p)
}

func testReadDuringOverwrite(t *testing.T, s store.Store) {
	const key = "meta/example.com/hot/list"
	rounds := 100
	if testing.Short() {
		rounds = 20
	}
	// Sizes differ so that a reader could notice a size/content mismatch.
	size := func(round int) int { return 64<<10 + round*1024 }
	put(t, s, key, pattern(0, size(0)))

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	reads := 0
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				rc, info, err := s.Open(ctx, key)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("Open: %v", err))
						mu.Unlock()
					}
					return
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				mu.Lock()
				reads++
				switch {
				case err != nil && ctx.Err() != nil:
					// The test's own end cancelled a read in flight (a
					// store may read lazily, under the Open's context).
				case err != nil:
					failures = append(failures, fmt.Sprintf("read: %v", err))
				case int64(len(b)) != info.Size:
					failures = append(failures, fmt.Sprintf("read %d bytes, Info.Size %d", len(b), info.Size))
				default:
					if err := checkPattern(b); err != nil {
						failures = append(failures, err.Error())
					}
				}
				mu.Unlock()
			}
		})
	}
	for round := 1; round <= rounds; round++ {
		content := pattern(byte(round%26), size(round))
		if err := s.Put(t.Context(), key, chunked(bytes.NewReader(content), 8<<10)); err != nil {
			t.Errorf("Put round %d: %v", round, err)
		}
	}
	cancel()
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d reads saw a bad object; first: %s", len(failures), reads, failures[0])
	}
	got, _ := get(t, s, key)
	if want := pattern(byte(rounds%26), size(rounds)); !bytes.Equal(got, want) {
		t.Error("final content is not the last Put")
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if keys := listAll(t, s, ""); len(keys) != 0 {
		t.Errorf("Ping left objects: %q", keys)
	}
}

// cancellingReader cancels its context after the first Read and then
// produces data forever.
type cancellingReader struct {
	cancel context.CancelFunc
	r      io.Reader
	reads  int
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	c.reads++
	if c.reads == 2 {
		c.cancel()
	}
	return c.r.Read(p)
}

func testCancelledPut(t *testing.T, s store.Store) {
	const key = "mod/example.com/cancel/@v/v1.0.0.zip"

	// Already cancelled.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(ctx, key, bytes.NewReader([]byte("x"))); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled ctx) = %v, want context.Canceled", err)
	}
	wantNotExist(t, s, key)

	// Cancelled mid-copy, from an endless reader: Put must return.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	r := &cancellingReader{cancel: cancel, r: DataReader(3, 1<<62)}
	if err := s.Put(ctx, key, r); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled mid-copy) = %v, want context.Canceled", err)
	}
	wantNotExist(t, s, key)

	// Cancelled mid-copy over an existing object: it stays intact.
	put(t, s, key, []byte("old"))
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	r = &cancellingReader{cancel: cancel, r: DataReader(3, 1<<62)}
	if err := s.Put(ctx, key, r); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled mid-copy) = %v, want context.Canceled", err)
	}
	if got, _ := get(t, s, key); string(got) != "old" {
		t.Errorf("object after cancelled overwrite: %q, want %q", got, "old")
	}
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List after cancelled Puts = %q, want [%s]", keys, key)
	}
}
