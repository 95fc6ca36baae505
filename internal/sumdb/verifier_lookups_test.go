package sumdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/store"
)

// Each lookup's tiles are its own, lookups honour their callers' contexts,
// and Close stops what runs in the background.

// waitFor bounds how long a test waits for an event that must come.
const waitFor = 10 * time.Second

// holdingStore is a real store whose Put of one key waits until the test
// releases it, so that a test can act while a lookup is half done.
type holdingStore struct {
	store.Store
	key      string
	entered  chan struct{}
	release  chan struct{}
	holdOnce sync.Once
}

func (s *holdingStore) Put(ctx context.Context, key string, r io.Reader) error {
	if key == s.key {
		s.holdOnce.Do(func() {
			close(s.entered)
			<-s.release
		})
	}
	return s.Store.Put(ctx, key, r)
}

// TestLookupKeepsItsOwnTiles: a lookup that fails while another one is
// half done must not drop the other's tiles (nor the other write the
// failed one's): with one pending-tile map for all lookups, the tiles of a
// lookup that succeeded were lost, and a client later asking modgate for
// them, with the database out of reach, could not verify the module.
func TestLookupKeepsItsOwnTiles(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	disk := newDisk(t)
	st := &holdingStore{Store: disk, key: "sumdb/" + testDBName + "/lookup/" + modX + "@v1.0.0",
		entered: make(chan struct{}), release: make(chan struct{})}
	v := newTestVerifier(t, db, st, "")
	ctx := context.Background()

	// x's lookup is verified (its tile read) and is being stored...
	xdone := make(chan error, 1)
	go func() { xdone <- v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")) }()
	select {
	case <-st.entered:
	case err := <-xdone:
		t.Fatalf("x's lookup ended before storing its answer: %v", err)
	case <-time.After(waitFor):
		t.Fatal("x's lookup never stored its answer")
	}
	// ...when another lookup fails.
	verifyErr(t, v.Verify(ctx, "example.com/unknown", "v1.0.0", false, fakeH1("u")), NotInDB)
	close(st.release)
	if err := <-xdone; err != nil {
		t.Fatal(err)
	}
	if readKey(t, disk, "sumdb/"+testDBName+"/tile/8/0/000.p/1") == nil {
		t.Errorf("x's tile was not stored; stored: %v", storedKeys(t, disk, "sumdb/"))
	}
	checkOffline(t, db, disk, modX)
}

// checkOffline checks that, with the database out of reach, a restarted
// modgate over st lets a go command verify mods.
func checkOffline(t *testing.T, db *testDB, st store.Store, mods ...string) {
	t.Helper()
	db.stop()
	defer db.restart()
	f := &proxyFixture{db: db, st: st}
	f.v = newTestVerifier(t, db, st, "")
	f.p = NewProxy(f.v, nil, time.Minute, testLogger(t))
	f.h = f.p.Handler(testWriteError)
	checkWithGoClient(t, newGoClient(t, f.serve(t), db.vkey, nil), mods...)
}

// TestConcurrentLookups runs many verifications at once, of modules in the
// database, not in it, and the same ones again, under the race detector:
// each gets its verdict, each record is asked once, and the stored state
// lets a go command verify every module with the database gone.
func TestConcurrentLookups(t *testing.T) {
	skey, vkey := testKeys(t)
	recs := records{}
	var mods []string
	for i := range 24 {
		m := fmt.Sprintf("example.com/c%02d", i)
		mods = append(mods, m)
		recs.add(m, "v1.0.0", fakeH1(m+" zip"), fakeH1(m+" mod"))
	}
	db := newTestDB(t, skey, vkey, recs)
	db.grow(250) // the lookups spread over two level-0 tiles
	st := newDisk(t)
	v := newTestVerifier(t, db, st, "")
	ctx := context.Background()

	var wg sync.WaitGroup
	for round := range 3 {
		for i, m := range mods {
			wg.Go(func() {
				gomod := (i+round)%2 == 0
				what := "zip"
				if gomod {
					what = "mod"
				}
				if round == 0 && i%3 == 0 {
					v.Prefetch(m, "v1.0.0")
				}
				if err := v.Verify(ctx, m, "v1.0.0", gomod, fakeH1(m+" "+what)); err != nil {
					t.Errorf("%s %s: %v", m, what, err)
				}
			})
		}
		wg.Go(func() {
			err := v.Verify(ctx, fmt.Sprintf("example.com/missing%d", round), "v1.0.0", false, fakeH1("m"))
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Kind != NotInDB {
				t.Errorf("missing module: %v, want not in the database", err)
			}
		})
	}
	wg.Wait()
	for _, m := range mods {
		if n := db.count("/lookup/" + m + "@"); n != 1 {
			t.Errorf("%s was looked up %d times, want 1", m, n)
		}
	}
	if p := v.SecurityProblem(); p != "" {
		t.Fatalf("SecurityProblem() = %q", p)
	}
	checkOffline(t, db, st, mods...)
}

// hangingDB is a test database whose lookups do not answer until released,
// and which reports when a lookup request arrives and when its client
// gives up on it.
type hangingDB struct {
	*testDB
	srv     *httptest.Server
	seen    chan string // lookup paths, as they arrive
	aborted chan string // lookup paths whose client went away
	release chan struct{}
	once    sync.Once
}

// unblock lets the lookups answer.
func (h *hangingDB) unblock() { h.once.Do(func() { close(h.release) }) }

func newHangingDB(t *testing.T) *hangingDB {
	skey, vkey := testKeys(t)
	h := &hangingDB{testDB: newTestDB(t, skey, vkey, standardRecords()),
		seen: make(chan string, 16), aborted: make(chan string, 16), release: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/lookup/") {
			h.seen <- r.URL.Path
			select {
			case <-r.Context().Done():
				h.aborted <- r.URL.Path
				return
			case <-h.release:
			}
		}
		h.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	t.Cleanup(h.unblock) // before srv.Close
	return h
}

func (h *hangingDB) verifier(t *testing.T) *Verifier {
	d := DB{Name: testDBName, Key: h.vkey, URL: h.srv.URL}
	v := NewVerifier(Config{DB: d, Store: newDisk(t), Remote: NewRemote(d, nil, testClient), Logger: testLogger(t)})
	t.Cleanup(func() { v.Close() })
	return v
}

func expect[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(waitFor):
		t.Fatalf("%s did not happen within %v", what, waitFor)
		panic("unreachable")
	}
}

// TestVerifyHonoursContext: a caller that gives up stops waiting at once,
// and the lookup it alone wanted stops asking the database.
func TestVerifyHonoursContext(t *testing.T) {
	h := newHangingDB(t)
	v := h.verifier(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")) }()
	expect(t, h.seen, "the lookup")
	cancel()
	err := expect(t, errc, "Verify returning after its caller gave up")
	if ve := verifyErr(t, err, Unavailable); !errors.Is(ve, context.Canceled) {
		t.Errorf("error %v does not say the caller gave up", err)
	}
	expect(t, h.aborted, "the database request ending")
}

// waitUntil waits until cond holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, waitFor)
		}
	}
}

// TestLookupSharedByCallers: callers of one record share one lookup; one
// giving up does not fail the others, nor stop the lookup.
func TestLookupSharedByCallers(t *testing.T) {
	h := newHangingDB(t)
	v := h.verifier(t)
	quitter, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 3)
	go func() { errc <- v.Verify(quitter, modX, "v1.0.0", false, fakeH1(modX+" zip")) }()
	expect(t, h.seen, "the lookup")
	for _, gomod := range []bool{false, true} {
		what := map[bool]string{false: "zip", true: "mod"}[gomod]
		go func() { errc <- v.Verify(context.Background(), modX, "v1.0.0", gomod, fakeH1(modX+" "+what)) }()
	}
	waitUntil(t, "3 callers waiting for the lookup", func() bool {
		return v.flights.Waiting("sumdb/"+testDBName+"/lookup/"+modX+"@v1.0.0") == 3
	})
	cancel()
	verifyErr(t, expect(t, errc, "the quitter returning"), Unavailable)
	h.unblock()
	for range 2 {
		if err := expect(t, errc, "a waiting caller returning"); err != nil {
			t.Errorf("a caller that kept waiting: %v", err)
		}
	}
	if n := h.count("/lookup/"); n != 1 {
		t.Errorf("%d lookups reached the database, want 1 shared", n)
	}
	select {
	case p := <-h.aborted:
		t.Errorf("the shared lookup %s was abandoned", p)
	default:
	}
}

// TestLookupHonoursContext: the proxy's lookup ends with the client's
// request.
func TestLookupHonoursContext(t *testing.T) {
	h := newHangingDB(t)
	v := h.verifier(t)
	p := NewProxy(v, nil, time.Minute, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		p.Handler(testWriteError).ServeHTTP(w, httptest.NewRequest("GET", "/sumdb/"+testDBName+"/lookup/"+modX+"@v1.0.0", nil).WithContext(ctx))
		done <- w.Code
	}()
	expect(t, h.seen, "the lookup")
	cancel()
	if code := expect(t, done, "the proxy answering after its client left"); code != statusClientClosed {
		t.Errorf("status %d, want %d", code, statusClientClosed)
	}
	expect(t, h.aborted, "the database request ending")
}

// TestCloseStopsPrefetches: Close ends the prefetches and waits for them;
// a prefetch after Close starts nothing.
func TestCloseStopsPrefetches(t *testing.T) {
	h := newHangingDB(t)
	v := h.verifier(t)
	v.Prefetch(modX, "v1.0.0")
	expect(t, h.seen, "the prefetch's lookup")
	closed := make(chan error, 1)
	go func() { closed <- v.Close() }()
	if err := expect(t, closed, "Close returning"); err != nil {
		t.Fatal(err)
	}
	expect(t, h.aborted, "the prefetch's database request ending")
	v.Prefetch(modY, "v1.0.0")
	v.bg.mu.Lock()
	n := v.bg.n
	v.bg.mu.Unlock()
	if n != 0 {
		t.Errorf("%d goroutines running after Close and a Prefetch", n)
	}
	// Verification still works, without prefetching.
	h.unblock()
	if err := v.Verify(context.Background(), modY, "v1.0.0", true, fakeH1(modY+" mod")); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
}
