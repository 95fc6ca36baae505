package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// A capability is an optional interface of store.Store and its tests.
type capability struct {
	name string
	has  func(store.Store) bool
	// tests go through the capability's helper, so that they test the
	// store's implementation and, under Fallback, the helper's fallback.
	tests []test
	// own are the tests of methods that have no fallback.
	own []test
}

func (c capability) all() []test { return append(slices.Clone(c.tests), c.own...) }

func (c capability) fallbackTests() []test { return c.tests }

func implements[T any](s store.Store) bool {
	_, ok := s.(T)
	return ok
}

var capabilities = []capability{
	{
		name: "SizedPutter",
		has:  implements[store.SizedPutter],
		tests: []test{
			{"Roundtrip", testSizedRoundtrip},
			{"TooFew", testSizedTooFew},
			{"TooMany", testSizedTooMany},
			{"Negative", testSizedNegative},
			{"ReaderError", testSizedReaderError},
			{"Cancelled", testSizedCancelled},
			{"InvalidKeys", testSizedInvalidKeys},
		},
	},
	{
		name: "ConditionalPutter",
		has:  implements[store.ConditionalPutter],
		tests: []test{
			{"Sequence", testPutIfSequence},
			{"Missing", testPutIfMissing},
			{"FailingReader", testPutIfFailingReader},
			{"Cancelled", testPutIfCancelled},
			{"InvalidKeys", testPutIfInvalidKeys},
			{"Race", testPutIfRace},
			{"Counter", testPutIfCounter},
		},
	},
	{
		name: "InfoLister",
		has:  implements[store.InfoLister],
		tests: []test{
			{"MatchesStat", testListInfoMatchesStat},
			{"Stops", testListInfoStops},
			{"InvalidPrefixes", testListInfoInvalidPrefixes},
		},
	},
	{
		name: "FilePutter",
		has:  implements[store.FilePutter],
		tests: []test{
			{"PutFile", testPutFile},
			{"PutFileInvalidKey", testPutFileInvalidKey},
		},
		own: []test{
			{"CreateTemp", testCreateTemp},
		},
	},
}

// wantIntact fails the test unless key holds content with ETag etag.
func wantIntact(t *testing.T, s store.Store, key string, content []byte, etag string) {
	t.Helper()
	got, info := get(t, s, key)
	if !bytes.Equal(got, content) {
		t.Errorf("%s: content %.40q, want %.40q", key, got, content)
	}
	if info.ETag != etag {
		t.Errorf("%s: ETag %s, want %s (unchanged)", key, info.ETag, etag)
	}
}

// SizedPutter

func testSizedRoundtrip(t *testing.T, s store.Store) {
	big := 4 << 20
	if testing.Short() {
		big = 256 << 10
	}
	for _, size := range []int{0, 1, 15, big} {
		key := fmt.Sprintf("mod/example.com/sized/@v/v1.0.%d.zip", size)
		content := pattern(byte(size%26), max(size, 11))[:size]
		r := chunked(bytes.NewReader(content), 64<<10)
		if err := store.PutSized(t.Context(), s, key, r, int64(size)); err != nil {
			t.Fatalf("PutSized(%d bytes): %v", size, err)
		}
		got, info := get(t, s, key)
		if !bytes.Equal(got, content) || info.Size != int64(size) {
			t.Errorf("after PutSized(%d bytes): %d bytes, Size %d, equal %v", size, len(got), info.Size, bytes.Equal(got, content))
		}
	}
}

// testSizedMismatch puts content announced as size, over an existing
// object and on a fresh key: both must fail with ErrSizeMismatch and store
// nothing.
func testSizedMismatch(t *testing.T, s store.Store, content []byte, size int64) {
	t.Helper()
	const fresh, old = "sized/fresh", "sized/old"
	err := store.PutSized(t.Context(), s, fresh, bytes.NewReader(content), size)
	if !errors.Is(err, store.ErrSizeMismatch) {
		t.Errorf("PutSized(%d bytes announced as %d) = %v, want ErrSizeMismatch", len(content), size, err)
	}
	wantNotExist(t, s, fresh)

	put(t, s, old, []byte("old content"))
	_, info := get(t, s, old)
	err = store.PutSized(t.Context(), s, old, bytes.NewReader(content), size)
	if !errors.Is(err, store.ErrSizeMismatch) {
		t.Errorf("PutSized(%d bytes announced as %d) over an object = %v, want ErrSizeMismatch", len(content), size, err)
	}
	wantIntact(t, s, old, []byte("old content"), info.ETag)
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{old}) {
		t.Errorf("List after failed PutSized = %q, want [%s]", keys, old)
	}
}

func testSizedTooFew(t *testing.T, s store.Store) {
	content := pattern(1, 100<<10)
	testSizedMismatch(t, s, content, int64(len(content))+1)
	testSizedMismatch(t, s, nil, 1)
}

func testSizedTooMany(t *testing.T, s store.Store) {
	content := pattern(2, 100<<10)
	testSizedMismatch(t, s, content, int64(len(content))-1)
	testSizedMismatch(t, s, content, 0)
}

func testSizedNegative(t *testing.T, s store.Store) {
	if err := store.PutSized(t.Context(), s, "sized/neg", bytes.NewReader(nil), -1); err == nil {
		t.Error("PutSized(size -1) succeeded")
	}
	wantNotExist(t, s, "sized/neg")
}

func testSizedReaderError(t *testing.T, s store.Store) {
	errBoom := errors.New("boom: upstream connection reset")
	r := &failingReader{r: DataReader(4, 1000), err: errBoom}
	if err := store.PutSized(t.Context(), s, "sized/fail", r, 2000); !errors.Is(err, errBoom) {
		t.Errorf("PutSized(failing reader) = %v, want the reader's error", err)
	}
	wantNotExist(t, s, "sized/fail")
}

func testSizedCancelled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := store.PutSized(ctx, s, "sized/cancel", bytes.NewReader([]byte("x")), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("PutSized(cancelled ctx) = %v, want context.Canceled", err)
	}
	wantNotExist(t, s, "sized/cancel")
}

func testSizedInvalidKeys(t *testing.T, s store.Store) {
	for _, key := range InvalidKeys {
		if err := store.PutSized(t.Context(), s, key, bytes.NewReader([]byte("x")), 1); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("PutSized(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if keys := listAll(t, s, ""); len(keys) != 0 {
		t.Errorf("store not empty after invalid PutSized: %q", keys)
	}
}

// ConditionalPutter

// putIf is store.PutIf of content.
func putIf(ctx context.Context, s store.Store, key string, content []byte, ifMatch string) error {
	return store.PutIf(ctx, s, key, bytes.NewReader(content), ifMatch)
}

// wantPrecondition fails the test unless err is ErrPreconditionFailed.
func wantPrecondition(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Errorf("%s = %v, want ErrPreconditionFailed", what, err)
	}
}

func testPutIfSequence(t *testing.T, s store.Store) {
	ctx := t.Context()
	const key = "sumdb/db.example/latest"
	if err := putIf(ctx, s, key, []byte("tree 1\n"), store.IfAbsent); err != nil {
		t.Fatalf("PutIf(IfAbsent) of a missing key: %v", err)
	}
	_, info1 := get(t, s, key)
	wantPrecondition(t, "PutIf(IfAbsent) of an existing key", putIf(ctx, s, key, []byte("tree X\n"), store.IfAbsent))
	wantIntact(t, s, key, []byte("tree 1\n"), info1.ETag)

	if err := putIf(ctx, s, key, []byte("tree 2\n"), info1.ETag); err != nil {
		t.Fatalf("PutIf(current ETag): %v", err)
	}
	_, info2 := get(t, s, key)
	if info2.ETag == info1.ETag {
		t.Fatalf("ETag unchanged by PutIf: %s", info2.ETag)
	}
	wantPrecondition(t, "PutIf(replaced ETag)", putIf(ctx, s, key, []byte("tree Y\n"), info1.ETag))
	wantPrecondition(t, "PutIf(made-up ETag)", putIf(ctx, s, key, []byte("tree Y\n"), `"not-an-etag"`))
	wantIntact(t, s, key, []byte("tree 2\n"), info2.ETag)

	// A plain Put in between changes the ETag too.
	put(t, s, key, []byte("tree 3\n"))
	wantPrecondition(t, "PutIf(ETag before a Put)", putIf(ctx, s, key, []byte("tree Y\n"), info2.ETag))
	_, info3 := get(t, s, key)
	if err := putIf(ctx, s, key, []byte("tree 4\n"), info3.ETag); err != nil {
		t.Fatalf("PutIf(current ETag) after a Put: %v", err)
	}
	if got, _ := get(t, s, key); string(got) != "tree 4\n" {
		t.Errorf("content %q, want the last PutIf's", got)
	}
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want [%s]", keys, key)
	}
}

func testPutIfMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	const key = "meta/example.com/m/@/latest"
	wantPrecondition(t, "PutIf(ETag) of a missing key", putIf(ctx, s, key, []byte("x"), `"123-456"`))
	wantNotExist(t, s, key)

	put(t, s, key, []byte("v1"))
	_, info := get(t, s, key)
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	wantPrecondition(t, "PutIf(ETag of a deleted object)", putIf(ctx, s, key, []byte("v2"), info.ETag))
	wantNotExist(t, s, key)
	if err := putIf(ctx, s, key, []byte("v3"), store.IfAbsent); err != nil {
		t.Errorf("PutIf(IfAbsent) after Delete: %v", err)
	}
	// A "directory" of other keys is no object.
	put(t, s, "dir/sub/obj", []byte("x"))
	wantPrecondition(t, "PutIf(ETag) of a key that is a prefix", putIf(ctx, s, "dir/sub", []byte("x"), `"1-2"`))
}

func testPutIfFailingReader(t *testing.T, s store.Store) {
	ctx := t.Context()
	const key = "sumdb/db.example/latest"
	errBoom := errors.New("boom")
	fail := func() io.Reader { return &failingReader{r: DataReader(5, 70<<10), err: errBoom} }

	if err := store.PutIf(ctx, s, key, fail(), store.IfAbsent); !errors.Is(err, errBoom) {
		t.Errorf("PutIf(IfAbsent, failing reader) = %v, want the reader's error", err)
	}
	wantNotExist(t, s, key)

	put(t, s, key, []byte("tree 1\n"))
	_, info := get(t, s, key)
	if err := store.PutIf(ctx, s, key, fail(), info.ETag); !errors.Is(err, errBoom) {
		t.Errorf("PutIf(ETag, failing reader) = %v, want the reader's error", err)
	}
	wantIntact(t, s, key, []byte("tree 1\n"), info.ETag)
	// The failed put changed nothing and holds nothing.
	if err := putIf(ctx, s, key, []byte("tree 2\n"), info.ETag); err != nil {
		t.Errorf("PutIf after a failed PutIf: %v", err)
	}
}

func testPutIfCancelled(t *testing.T, s store.Store) {
	const key = "sumdb/db.example/latest"
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := putIf(ctx, s, key, []byte("x"), store.IfAbsent); !errors.Is(err, context.Canceled) {
		t.Errorf("PutIf(cancelled ctx) = %v, want context.Canceled", err)
	}
	wantNotExist(t, s, key)

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	r := &cancellingReader{cancel: cancel, r: DataReader(3, 1<<62)}
	if err := store.PutIf(ctx, s, key, r, store.IfAbsent); !errors.Is(err, context.Canceled) {
		t.Errorf("PutIf(cancelled mid-copy) = %v, want context.Canceled", err)
	}
	wantNotExist(t, s, key)
}

func testPutIfInvalidKeys(t *testing.T, s store.Store) {
	for _, key := range InvalidKeys {
		if err := putIf(t.Context(), s, key, []byte("x"), store.IfAbsent); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("PutIf(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if keys := listAll(t, s, ""); len(keys) != 0 {
		t.Errorf("store not empty after invalid PutIf: %q", keys)
	}
}

// racePutIf starts n conditional puts of key at once, each of its own
// content, all with the condition ifMatch, and returns their errors and
// contents.
func racePutIf(t *testing.T, s store.Store, key, ifMatch string, n int) ([]error, [][]byte) {
	errs := make([]error, n)
	contents := make([][]byte, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		contents[i] = pattern(byte(i), 8<<10+i)
		wg.Go(func() {
			<-start
			errs[i] = putIf(t.Context(), s, key, contents[i], ifMatch)
		})
	}
	close(start)
	wg.Wait()
	return errs, contents
}

// wantOneWinner fails the test unless exactly one of the racers succeeded,
// the others failed their precondition, and key holds the winner's content.
func wantOneWinner(t *testing.T, s store.Store, key string, errs []error, contents [][]byte) {
	t.Helper()
	winner := testenv.SoleWinner(t, errs, store.ErrPreconditionFailed)
	if got, _ := get(t, s, key); !bytes.Equal(got, contents[winner]) {
		t.Errorf("stored content is not the winner's (racer %d)", winner)
	}
}

func testPutIfRace(t *testing.T, s store.Store) {
	const racers = 8
	rounds := 10
	if testing.Short() {
		rounds = 3
	}
	const key = "sumdb/db.example/latest"
	for round := range rounds {
		// Create, then replace: both conditions.
		fresh := fmt.Sprintf("race/%d", round)
		errs, contents := racePutIf(t, s, fresh, store.IfAbsent, racers)
		wantOneWinner(t, s, fresh, errs, contents)

		if round == 0 {
			put(t, s, key, []byte("tree 0\n"))
		}
		_, info := get(t, s, key)
		errs, contents = racePutIf(t, s, key, info.ETag, racers)
		wantOneWinner(t, s, key, errs, contents)
	}
}

// testPutIfCounter increments a counter from several goroutines, each
// reading it and writing it back on condition, until each has added its
// share: an update lost by a compare-and-swap that is not one shows in
// the total.
func testPutIfCounter(t *testing.T, s store.Store) {
	const key = "counter"
	const workers = 4
	increments := 10
	if testing.Short() {
		increments = 4
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range increments {
				if err := Increment(t.Context(), s, key); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, _ := get(t, s, key)
	if want := strconv.Itoa(workers * increments); string(got) != want {
		t.Errorf("counter = %s, want %s: updates were lost", got, want)
	}
}

// Increment adds one to the decimal counter stored under key (0 when
// missing) with a compare-and-swap (store.PutIf), trying again while other
// writers get in between. Store tests use it to check conditional puts
// from several processes.
func Increment(ctx context.Context, s store.Store, key string) error {
	for {
		n, etag := 0, store.IfAbsent
		rc, info, err := s.Open(ctx, key)
		switch {
		case err == nil:
			b, rerr := io.ReadAll(rc)
			rc.Close()
			if rerr != nil {
				return rerr
			}
			if n, err = strconv.Atoi(string(b)); err != nil {
				return fmt.Errorf("counter %q: %v", b, err)
			}
			etag = info.ETag
		case !errors.Is(err, store.ErrNotExist):
			return err
		}
		err = putIf(ctx, s, key, []byte(strconv.Itoa(n+1)), etag)
		if !errors.Is(err, store.ErrPreconditionFailed) {
			return err
		}
	}
}

// InfoLister

func testListInfoMatchesStat(t *testing.T, s store.Store) {
	for i, k := range listKeys {
		put(t, s, k, bytes.Repeat([]byte{'x'}, i))
	}
	for _, prefix := range []string{"", "mod/", "mod/example.com/fo", "mod/example.com/foo/@v/", "mod/example.com/foo/@v/v1.0.0.zip", "top", "nothing/"} {
		var keys []string
		err := store.ListInfo(t.Context(), s, prefix, func(key string, info store.Info) error {
			keys = append(keys, key)
			st, err := s.Stat(t.Context(), key)
			if err != nil {
				t.Errorf("Stat(%q) of a listed key: %v", key, err)
				return nil
			}
			if info.Size != st.Size || info.ETag != st.ETag || !info.ModTime.Equal(st.ModTime) {
				t.Errorf("ListInfo(%q) gave %s {%d %s %v}, Stat {%d %s %v}", prefix, key, info.Size, info.ETag, info.ModTime, st.Size, st.ETag, st.ModTime)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ListInfo(%q): %v", prefix, err)
		}
		if want := listAll(t, s, prefix); !slices.Equal(keys, want) {
			t.Errorf("ListInfo(%q) keys:\n got %q\nwant %q (List's)", prefix, keys, want)
		}
	}
}

func testListInfoStops(t *testing.T, s store.Store) {
	for _, k := range []string{"l/a", "l/b", "l/c"} {
		put(t, s, k, []byte(k))
	}
	errStop := errors.New("stop here")
	var got []string
	err := store.ListInfo(t.Context(), s, "l/", func(key string, _ store.Info) error {
		got = append(got, key)
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Errorf("ListInfo error = %v, want the error returned by fn", err)
	}
	if !slices.Equal(got, []string{"l/a"}) {
		t.Errorf("ListInfo called fn with %q, want [l/a]", got)
	}
}

func testListInfoInvalidPrefixes(t *testing.T, s store.Store) {
	put(t, s, "a/b", []byte("x"))
	for _, prefix := range []string{"../", "/", "a\\", "./"} {
		err := store.ListInfo(t.Context(), s, prefix, func(key string, _ store.Info) error {
			t.Errorf("ListInfo(%q) listed %q", prefix, key)
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("ListInfo(%q) = %v, want nil or ErrInvalidKey", prefix, err)
		}
	}
}

// FilePutter

// wantGone fails the test if the file name still exists, where a consumed
// file can be removed (not on Windows while open).
func wantGone(t *testing.T, name string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after PutFile: %v, want it gone", name, err)
	}
}

func testPutFile(t *testing.T, s store.Store) {
	ctx := t.Context()
	const key = "mod/example.com/file/@v/v1.0.0.zip"
	for i, content := range [][]byte{pattern(6, 300<<10), []byte("replaced"), nil} {
		name := filepath.Join(t.TempDir(), "fetch-"+strconv.Itoa(i)+".zip")
		if err := os.WriteFile(name, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := store.PutFile(ctx, s, key, name); err != nil {
			t.Fatalf("PutFile: %v", err)
		}
		if got, info := get(t, s, key); !bytes.Equal(got, content) || info.Size != int64(len(content)) {
			t.Errorf("after PutFile #%d: %d bytes (Size %d), want %d", i, len(got), info.Size, len(content))
		}
		wantGone(t, name)
	}
	if err := store.PutFile(ctx, s, "file/missing", filepath.Join(t.TempDir(), "nothing")); err == nil {
		t.Error("PutFile of a missing file succeeded")
	}
	wantNotExist(t, s, "file/missing")
}

func testPutFileInvalidKey(t *testing.T, s store.Store) {
	for _, key := range InvalidKeys {
		name := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(name, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := store.PutFile(t.Context(), s, key, name); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("PutFile(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if keys := listAll(t, s, ""); len(keys) != 0 {
		t.Errorf("store not empty after invalid PutFile: %q", keys)
	}
}

// testCreateTemp: a file made by CreateTemp is in StagingDir, named after
// the pattern, and becomes the object with PutFile.
func testCreateTemp(t *testing.T, s store.Store) {
	fp := s.(store.FilePutter)
	ctx := t.Context()
	const key = "mod/example.com/temp/@v/v1.0.0.zip"
	for i, content := range []string{"zip content", "second zip"} {
		f, err := fp.CreateTemp("fetch-*.zip")
		if err != nil {
			t.Fatal(err)
		}
		name := f.Name()
		if filepath.Dir(name) != fp.StagingDir() || !strings.HasPrefix(filepath.Base(name), "fetch-") || !strings.HasSuffix(name, ".zip") {
			t.Errorf("CreateTemp made %q, want fetch-*.zip in %s", name, fp.StagingDir())
		}
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		// As the cache does: the file stays open until PutFile returns.
		err = store.PutFile(ctx, s, key, name)
		f.Close()
		if err != nil {
			t.Fatalf("PutFile #%d: %v", i, err)
		}
		if got, _ := get(t, s, key); string(got) != content {
			t.Errorf("after PutFile #%d: %q, want %q", i, got, content)
		}
		wantGone(t, name)
	}
	if f, err := fp.CreateTemp("../escape-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Error("CreateTemp accepted a pattern with a path separator")
	}
	if keys := listAll(t, s, ""); !slices.Equal(keys, []string{key}) {
		t.Errorf("List = %q, want [%s]", keys, key)
	}
}
