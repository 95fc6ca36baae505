package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/store/storetest"
	"github.com/modgate/modgate/internal/testenv/s3server"
)

// testPrefix is the prefix of the stores under test: every bucket also
// holds objects outside it, which the stores must never see.
const testPrefix = "modgate/"

var bucketSeq atomic.Int64

// newBucket creates a fresh bucket on srv with objects outside testPrefix.
func newBucket(t testing.TB, srv *s3server.Server) string {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", bucketSeq.Add(1))
	srv.CreateBucket(t, name)
	raw := rawClient(t, srv)
	for _, other := range []string{"other/x", "modgate-other", "modgate.txt"} {
		if _, err := raw.PutObject(t.Context(), name, other, strings.NewReader("not ours"), 8, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("putting %s: %v", other, err)
		}
	}
	return name
}

// rawClient is a plain minio-go client of srv, for what the store does not
// do (incomplete uploads, objects outside its prefix).
func rawClient(t testing.TB, srv *s3server.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func s3Config(srv *s3server.Server, bucket string) store.S3Config {
	return store.S3Config{
		Endpoint:  srv.Endpoint,
		Bucket:    bucket,
		Prefix:    testPrefix,
		PathStyle: true,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
	}
}

func newS3(t testing.TB, cfg store.S3Config) *store.S3 {
	t.Helper()
	s, err := store.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

func TestS3Compliance(t *testing.T) {
	srv := s3server.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return newS3(t, s3Config(srv, newBucket(t, srv)))
	})
}

// TestS3New: store.New builds the S3 backend from the configuration.
func TestS3New(t *testing.T) {
	srv := s3server.Start(t)
	s, err := store.New(t.Context(), store.Config{Kind: store.KindS3, S3: s3Config(srv, newBucket(t, srv))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.S3); !ok {
		t.Fatalf("store.New(kind s3) = %T", s)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// A missing bucket fails Ping, and says which.
	cfg := s3Config(srv, "no-such-bucket")
	err = newS3(t, cfg).Ping(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no-such-bucket") || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Errorf("Ping of a missing bucket = %v, want an error naming the bucket and endpoint", err)
	}
}

func TestS3ConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  store.S3Config
		want string
	}{
		{store.S3Config{Endpoint: "ftp://h", Bucket: "b"}, "not an http(s) URL"},
		{store.S3Config{Endpoint: "http://h"}, "needs a bucket"},
		{store.S3Config{Endpoint: "http://h/path", Bucket: "b"}, "scheme and host only"},
		{store.S3Config{Endpoint: "http://h", Bucket: "b", Prefix: "../up"}, "prefix"},
		{store.S3Config{Endpoint: "http://h", Bucket: "b", PartSize: 1 << 20}, "part size"},
		{store.S3Config{Endpoint: "http://h", Bucket: "b", AccessKey: "AKID"}, "without a secret key"},
		{store.S3Config{Endpoint: "http://user:hunter2@h", Bucket: "b"}, "carries credentials"},
	} {
		_, err := store.NewS3(t.Context(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewS3(%+v) = %v, want an error containing %q", tc.cfg.Endpoint, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestS3ErrorsHideCredentials: with a wrong secret every operation fails,
// naming the bucket and the endpoint, never the keys.
func TestS3ErrorsHideCredentials(t *testing.T) {
	srv := s3server.Start(t)
	cfg := s3Config(srv, newBucket(t, srv))
	cfg.SecretKey = "wrong-secret-0123456789"
	s := newS3(t, cfg)
	ctx := t.Context()
	_, _, openErr := s.Open(ctx, "a/b")
	_, statErr := s.Stat(ctx, "a/b")
	for what, err := range map[string]error{
		"Ping":      s.Ping(ctx),
		"Put":       s.Put(ctx, "a/b", strings.NewReader("x")),
		"PutSized":  s.PutSized(ctx, "a/b", bytes.NewReader(make([]byte, 2<<20)), 2<<20),
		"PutIf":     s.PutIf(ctx, "a/b", strings.NewReader("x"), store.IfAbsent),
		"Open":      openErr,
		"Stat":      statErr,
		"Delete":    s.Delete(ctx, "a/b"),
		"List":      s.List(ctx, "", func(string) error { return nil }),
		"CleanStag": func() error { _, _, err := s.CleanStaging(ctx); return err }(),
	} {
		if err == nil {
			t.Errorf("%s with a wrong secret key succeeded", what)
			continue
		}
		msg := err.Error()
		for _, secret := range []string{cfg.SecretKey, srv.SecretKey, srv.AccessKey} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s error shows a credential: %s", what, msg)
			}
		}
		if !strings.Contains(msg, cfg.Bucket) || !strings.Contains(msg, srv.Endpoint) {
			t.Errorf("%s error does not name the bucket and endpoint: %s", what, msg)
		}
		if errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrPreconditionFailed) {
			t.Errorf("%s error is %v, a storage answer, for an authentication failure", what, err)
		}
	}
}

// peakHeap runs fn while sampling the Go heap in use, and returns the
// largest growth over what was in use before. GC runs often meanwhile,
// so that the figure is close to what is live rather than garbage.
func peakHeap(t *testing.T, fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return peak.Load()
}

// TestS3PutStreams: a 64 MiB Put of unknown size goes out as a multipart
// upload with bounded memory: the heap grows by about one part, not by
// the object.
func TestS3PutStreams(t *testing.T) {
	srv := s3server.Start(t)
	cfg := s3Config(srv, newBucket(t, srv))
	cfg.PartSize = store.MinS3PartSize
	s := newS3(t, cfg)
	const size = 64 << 20
	const key = "mod/example.com/big/@v/v1.0.0.zip"
	h := sha256.New()
	var putErr error
	peak := peakHeap(t, func() {
		putErr = s.Put(t.Context(), key, io.TeeReader(storetest.DataReader(7, size), h))
	})
	if putErr != nil {
		t.Fatalf("Put: %v", putErr)
	}
	t.Logf("peak heap growth during a %d MiB Put with %d MiB parts: %.1f MiB", size>>20, cfg.PartSize>>20, float64(peak)/(1<<20))
	if limit := uint64(size / 4); peak > limit {
		t.Errorf("heap grew by %d MiB during the Put, want less than %d MiB: the object is being buffered", peak>>20, limit>>20)
	}
	rc, info, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want := h.Sum(nil)
	h.Reset()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if info.Size != size || !bytes.Equal(h.Sum(nil), want) {
		t.Errorf("read back %d bytes, sha256 equal %v", info.Size, bytes.Equal(h.Sum(nil), want))
	}
	// A multipart ETag ("<md5 of the parts' md5s>-<parts>") shows it was one.
	if !strings.HasSuffix(info.ETag, `-13"`) {
		t.Errorf("ETag %s, want one of a 13-part upload", info.ETag)
	}
}

// countingDialer counts the bytes read from the connections it makes: what
// the client actually received, headers included.
type countingDialer struct {
	read atomic.Int64
}

func (d *countingDialer) transport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, n: &d.read}, nil
		},
	}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// TestS3RangeReads: http.ServeContent over an opened object answers a
// Range request with only about the range fetched from S3.
func TestS3RangeReads(t *testing.T) {
	srv := s3server.Start(t)
	bucket := newBucket(t, srv)
	const size = 24 << 20
	const key = "mod/example.com/ranged/@v/v1.0.0.zip"
	content, err := io.ReadAll(storetest.DataReader(9, size))
	if err != nil {
		t.Fatal(err)
	}
	if err := newS3(t, s3Config(srv, bucket)).PutSized(t.Context(), key, bytes.NewReader(content), size); err != nil {
		t.Fatal(err)
	}

	var dialer countingDialer
	cfg := s3Config(srv, bucket)
	cfg.Transport = dialer.transport()
	s := newS3(t, cfg)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, info, err := s.Open(r.Context(), key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer rc.Close()
		w.Header().Set("ETag", info.ETag)
		http.ServeContent(w, r, "", info.ModTime, rc)
	}))
	defer web.Close()

	get := func(rangeHeader string) []byte {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, web.URL, nil)
		if rangeHeader != "" {
			req.Header.Set("Range", rangeHeader)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 206, false: 200}[rangeHeader != ""]; resp.StatusCode != want {
			t.Fatalf("Range %q: status %d, want %d: %s", rangeHeader, resp.StatusCode, want, b)
		}
		return b
	}

	// The byte counter sees a whole read: it counts what S3 sends.
	dialer.read.Store(0)
	if b := get(""); !bytes.Equal(b, content) {
		t.Fatalf("whole object: %d bytes, not the content", len(b))
	}
	if n := dialer.read.Load(); n < size {
		t.Fatalf("whole read fetched %d bytes of %d: the counter is broken", n, size)
	}

	const slack = 1<<20 + 64<<10 // the first window, fetched by Open, and headers
	for _, tc := range []struct {
		header     string
		start, end int64 // of the range, end exclusive
	}{
		{"bytes=10000000-10099999", 10000000, 10100000},
		{"bytes=-5000", size - 5000, size},
		{"bytes=20000000-20000000", 20000000, 20000001},
		{"bytes=3000000-7999999", 3000000, 8000000}, // more than one window
	} {
		dialer.read.Store(0)
		if b := get(tc.header); !bytes.Equal(b, content[tc.start:tc.end]) {
			t.Errorf("Range %s: %d bytes, not the range's content", tc.header, len(b))
		}
		n := dialer.read.Load()
		t.Logf("Range %s (%d bytes): fetched %d bytes from S3", tc.header, tc.end-tc.start, n)
		if limit := 2*(tc.end-tc.start) + slack; n > limit {
			t.Errorf("Range %s of %d bytes fetched %d bytes from S3, want at most %d", tc.header, tc.end-tc.start, n, limit)
		}
	}
}

// TestS3SeekReads: reads after seeks return the right bytes, across the
// window boundaries.
func TestS3SeekReads(t *testing.T) {
	srv := s3server.Start(t)
	s := newS3(t, s3Config(srv, newBucket(t, srv)))
	const size = 5<<20 + 123
	content, _ := io.ReadAll(storetest.DataReader(11, size))
	if err := s.Put(t.Context(), "k", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, off := range []int64{0, 1<<20 - 1, 3 << 20, 17, size - 10, 2<<20 + 5} {
		if _, err := rc.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3<<20)
		n, err := io.ReadFull(rc, buf)
		want := content[off:min(off+int64(len(buf)), size)]
		if n != len(want) || !bytes.Equal(buf[:n], want) || (err != nil && err != io.ErrUnexpectedEOF) {
			t.Errorf("at %d: read %d bytes (%v), want %d, equal %v", off, n, err, len(want), bytes.Equal(buf[:n], want))
		}
	}
}

// TestS3ReadOfReplacedObject: a reader never mixes two versions: once the
// object is replaced, its next GET fails instead of reading the new one.
func TestS3ReadOfReplacedObject(t *testing.T) {
	srv := s3server.Start(t)
	s := newS3(t, s3Config(srv, newBucket(t, srv)))
	old := bytes.Repeat([]byte("a"), 3<<20)
	if err := s.Put(t.Context(), "doc", bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Open(t.Context(), "doc")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := s.Put(t.Context(), "doc", bytes.NewReader(bytes.Repeat([]byte("b"), 3<<20))); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	if err == nil {
		t.Fatalf("read %d bytes of a replaced object without an error", len(b))
	}
	if bytes.ContainsRune(b, 'b') {
		t.Errorf("read bytes of the new object into the old one")
	}
}

// TestS3CleanStaging: an upload that a dead process left incomplete is no
// object, and CleanStaging aborts it once it is old, and only then; uploads
// outside the prefix are not its business. A failed Put leaves none.
func TestS3CleanStaging(t *testing.T) {
	srv := s3server.Start(t)
	bucket := newBucket(t, srv)
	cfg := s3Config(srv, bucket)
	cfg.PartSize = store.MinS3PartSize
	s := newS3(t, cfg)
	ctx := t.Context()
	core := minio.Core{Client: rawClient(t, srv)}

	// As a killed replica leaves it: parts uploaded, never completed.
	const key = "mod/example.com/dead/@v/v1.0.0.zip"
	part := bytes.Repeat([]byte("p"), 5<<20)
	for _, name := range []string{testPrefix + key, "elsewhere/upload"} {
		id, err := core.NewMultipartUpload(ctx, bucket, name, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(ctx, bucket, name, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat of an incomplete upload = %v, want ErrNotExist", err)
	}
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Errorf("List shows incomplete uploads: %q", keys)
	}

	// A Put whose reader fails after two parts aborts its own upload.
	errBoom := errors.New("boom")
	failing := io.MultiReader(storetest.DataReader(1, 12<<20), iotestErrReader{errBoom})
	if err := s.Put(ctx, "mod/example.com/failed/@v/v1.0.0.zip", failing); !errors.Is(err, errBoom) {
		t.Fatalf("Put(failing reader) = %v, want its error", err)
	}

	incomplete := func() []string {
		var keys []string
		for u := range core.ListIncompleteUploads(ctx, bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			keys = append(keys, u.Key)
		}
		slices.Sort(keys)
		return keys
	}
	if got, want := incomplete(), []string{"elsewhere/upload", testPrefix + key}; !slices.Equal(got, want) {
		t.Fatalf("incomplete uploads = %q, want %q", got, want)
	}

	// Young uploads may be in progress: left alone.
	if n, _, err := s.CleanStaging(ctx); err != nil || n != 0 {
		t.Errorf("CleanStaging of a fresh upload = %d, %v; want 0, nil", n, err)
	}
	store.SetS3Clock(s, func() time.Time { return time.Now().Add(2 * time.Hour) })
	n, size, err := s.CleanStaging(ctx)
	if err != nil || n != 1 || size != int64(len(part)) {
		t.Errorf("CleanStaging = %d, %d bytes, %v; want 1, %d bytes, nil", n, size, err, len(part))
	}
	if got, want := incomplete(), []string{"elsewhere/upload"}; !slices.Equal(got, want) {
		t.Errorf("incomplete uploads after CleanStaging = %q, want %q", got, want)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func listKeys(t testing.TB, s store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(t.Context(), prefix, func(k string) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// countingTransport counts the requests that list a bucket.
type countingTransport struct {
	lists atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.URL.Query().Get("list-type") == "2" {
		c.lists.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// TestS3ListPages: a listing longer than a page (1,000 keys) is complete
// and in order.
func TestS3ListPages(t *testing.T) {
	srv := s3server.Start(t)
	bucket := newBucket(t, srv)
	var counter countingTransport
	cfg := s3Config(srv, bucket)
	cfg.Transport = &counter
	s := newS3(t, cfg)
	const n = 2500
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("mod/example.com/many/@v/v1.0.%d.info", i))
	}
	keys := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range keys {
				if err := s.Put(t.Context(), k, strings.NewReader(k)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, k := range want {
		keys <- k
	}
	close(keys)
	wg.Wait()
	slices.Sort(want)

	counter.lists.Store(0)
	if got := listKeys(t, s, "mod/example.com/many/"); !slices.Equal(got, want) {
		t.Errorf("List gave %d keys, want %d in order", len(got), len(want))
	}
	if c := counter.lists.Load(); c < 3 {
		t.Errorf("List of %d keys made %d list requests, want at least 3 pages", n, c)
	}
	var infos int
	err := s.ListInfo(t.Context(), "mod/", func(key string, info store.Info) error {
		if info.Size != int64(len(key)) {
			t.Errorf("%s: Size %d, want %d", key, info.Size, len(key))
		}
		infos++
		return nil
	})
	if err != nil || infos != n {
		t.Errorf("ListInfo: %d keys, %v; want %d", infos, err, n)
	}
}

// BenchmarkS3Open reads a 1 MiB object, warm, from S3 and from disk in
// the same run, as the server does for a cached zip.
func BenchmarkS3Open(b *testing.B) {
	srv := s3server.Start(b)
	s3 := newS3(b, s3Config(srv, newBucket(b, srv)))
	disk, err := store.New(b.Context(), store.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := store.VersionKey("github.com/example/bench", "v1.0.0", "zip")
	content, _ := io.ReadAll(storetest.DataReader(1, 1<<20))
	for name, s := range map[string]store.Store{"s3": s3, "disk": disk} {
		if err := s.Put(b.Context(), key, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(content)))
			b.ReportAllocs()
			for b.Loop() {
				rc, _, err := s.Open(b.Context(), key)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, rc)
				if n != int64(len(content)) || err != nil {
					b.Fatalf("read %d, %v", n, err)
				}
				rc.Close()
			}
		})
	}
}
