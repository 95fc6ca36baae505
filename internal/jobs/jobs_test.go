package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/jobs"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

func newStore(t *testing.T) *store.Disk {
	t.Helper()
	disk, err := store.NewDisk(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	return disk
}

// blocking returns a job's work that reports through do, then waits for
// release (or its context's end, returning its error).
func blocking(do func(p *jobs.Progress), release <-chan struct{}) jobs.Func {
	return func(ctx context.Context, p *jobs.Progress) error {
		do(p)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func get(t *testing.T, r *jobs.Registry, id string) jobs.Status {
	t.Helper()
	st, err := r.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return st
}

// TestProgressAndRecord: a job's counts and errors are visible while it
// runs, and from its record, in another Registry over the same store (a
// replica, or this process after a restart), once it ended; errors are
// one line without credentials.
func TestProgressAndRecord(t *testing.T) {
	disk := newStore(t)
	clock := testenv.NewClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	a := jobs.New(jobs.Config{Store: disk, Now: clock.Now})
	release := make(chan struct{})
	reported := make(chan struct{})
	st, err := a.Start(context.Background(), "prefetch", blocking(func(p *jobs.Progress) {
		p.SetPhase("fetching")
		p.AddTotal(3)
		p.Done()
		p.Skip()
		p.Fail(errors.New("example.com/x@v1.0.0 .zip: get \"https://alice:s3cret@up.example.com/x\":\nconnection refused"))
		close(reported)
	}, release))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ID) != 16 || st.State != jobs.Running || st.Kind != "prefetch" {
		t.Errorf("Start = %+v", st)
	}
	<-reported
	running := get(t, a, st.ID)
	if running.State != jobs.Running || running.Phase != "fetching" || running.Total != 3 || running.Done != 1 || running.Skipped != 1 || running.Failed != 1 {
		t.Errorf("while running: %+v", running)
	}
	// The first record was written at Start: another replica knows the job.
	b := jobs.New(jobs.Config{Store: disk, Now: clock.Now})
	if st := get(t, b, st.ID); st.State != jobs.Running {
		t.Errorf("other replica while running: %+v", st)
	}

	clock.Advance(5 * time.Second)
	close(release)
	// Close only once the job has ended: a Close while it still waits
	// would be a shutdown that interrupts it (the work's select could
	// pick either).
	for deadline := time.Now().Add(30 * time.Second); get(t, a, st.ID).State == jobs.Running; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job did not end in 30s once released")
		}
	}
	a.Close()

	ended := get(t, b, st.ID)
	if ended.State != jobs.Done || ended.Phase != "" || ended.Total != 3 || ended.Done != 1 || ended.Skipped != 1 || ended.Failed != 1 {
		t.Errorf("ended: %+v", ended)
	}
	if !ended.Started.Equal(clock.Now().Add(-5*time.Second)) || !ended.Finished.Equal(clock.Now()) {
		t.Errorf("started %v, finished %v", ended.Started, ended.Finished)
	}
	if len(ended.Errors) != 1 || strings.Contains(ended.Errors[0], "s3cret") || strings.Contains(ended.Errors[0], "\n") ||
		!strings.Contains(ended.Errors[0], "example.com/x@v1.0.0 .zip") {
		t.Errorf("errors = %q, want one line naming the version, without the password", ended.Errors)
	}
	raw, _ := json.Marshal(ended)
	for _, field := range []string{`"id"`, `"state":"done"`, `"total":3`, `"done":1`, `"failed":1`, `"errors":[`, `"started"`, `"finished"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("JSON %s lacks %s", raw, field)
		}
	}

	if _, err := a.Start(context.Background(), "prefetch", blocking(func(*jobs.Progress) {}, release)); !errors.Is(err, jobs.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	for _, id := range []string{"0123456789abcdef", "../../etc/passwd", "", strings.ToUpper(st.ID)} {
		if _, err := b.Get(context.Background(), id); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

// TestFailedJob: work that returns an error fails the job, saying why;
// one that panics too.
func TestFailedJob(t *testing.T) {
	r := jobs.New(jobs.Config{Store: newStore(t)})
	bad, err := r.Start(context.Background(), "prefetch", func(ctx context.Context, p *jobs.Progress) error {
		return errors.New("main go.mod: no module directive")
	})
	if err != nil {
		t.Fatal(err)
	}
	panicky, err := r.Start(context.Background(), "prefetch", func(ctx context.Context, p *jobs.Progress) error {
		var m map[string]int
		m["x"]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if st := get(t, r, bad.ID); st.State != jobs.Failed || st.Error != "main go.mod: no module directive" || st.Finished.IsZero() {
		t.Errorf("failed job: %+v", st)
	}
	if st := get(t, r, panicky.ID); st.State != jobs.Failed || !strings.HasPrefix(st.Error, "internal error") {
		t.Errorf("panicking job: %+v", st)
	}
}

// TestInterrupted: Close cancels a running job, which is recorded as
// failed, interrupted; a record left running by a process that died
// reads as interrupted once its heartbeat is older than StaleAfter.
func TestInterrupted(t *testing.T) {
	disk := newStore(t)
	r := jobs.New(jobs.Config{Store: disk})
	st, err := r.Start(context.Background(), "prefetch", blocking(func(p *jobs.Progress) { p.AddTotal(1) }, nil))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if st := get(t, r, st.ID); st.State != jobs.Failed || !strings.Contains(st.Error, "interrupted") {
		t.Errorf("after Close: %+v", st)
	}

	// A process that "dies": its heartbeat never writes (SaveEvery of an
	// hour), and its clock stands still while the other's moves on.
	clock := testenv.NewClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	dead := jobs.New(jobs.Config{Store: disk, Now: testenv.NewClock(clock.Now()).Now, SaveEvery: time.Hour})
	defer dead.Close()
	st, err = dead.Start(context.Background(), "prefetch", blocking(func(*jobs.Progress) {}, nil))
	if err != nil {
		t.Fatal(err)
	}
	other := jobs.New(jobs.Config{Store: disk, Now: clock.Now})
	clock.Advance(59 * time.Second)
	if st := get(t, other, st.ID); st.State != jobs.Running {
		t.Errorf("heartbeat 59s old: %+v, want running", st)
	}
	clock.Advance(2 * time.Second)
	if st := get(t, other, st.ID); st.State != jobs.Failed || !strings.Contains(st.Error, "interrupted") {
		t.Errorf("heartbeat 61s old: %+v, want failed, interrupted", st)
	}
}

// TestHeartbeat: a running job's record is rewritten while it runs, so a
// replica reads its progress, and never reads it as interrupted.
func TestHeartbeat(t *testing.T) {
	disk := newStore(t)
	r := jobs.New(jobs.Config{Store: disk, SaveEvery: 10 * time.Millisecond})
	defer r.Close()
	release, progressed := make(chan struct{}), make(chan *jobs.Progress, 1)
	st, err := r.Start(context.Background(), "prefetch", blocking(func(p *jobs.Progress) { progressed <- p }, release))
	if err != nil {
		t.Fatal(err)
	}
	defer close(release)
	p := <-progressed
	p.AddTotal(7)
	replica := jobs.New(jobs.Config{Store: disk})
	deadline := time.Now().Add(time.Minute) // a guard against a hang, not a timing
	for get(t, replica, st.ID).Total != 7 {
		if time.Now().After(deadline) {
			t.Fatal("the replica never saw the progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBusy: at most MaxRunning jobs run at once; the next is refused
// with ErrBusy until one ends.
func TestBusy(t *testing.T) {
	r := jobs.New(jobs.Config{Store: newStore(t), MaxRunning: 2})
	defer r.Close()
	first := make(chan struct{})
	second := make(chan struct{})
	defer close(second)
	for _, ch := range []chan struct{}{first, second} {
		if _, err := r.Start(context.Background(), "prefetch", blocking(func(*jobs.Progress) {}, ch)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Start(context.Background(), "prefetch", blocking(func(*jobs.Progress) {}, nil)); !errors.Is(err, jobs.ErrBusy) {
		t.Fatalf("third job: %v, want ErrBusy", err)
	}
	close(first)
	deadline := time.Now().Add(time.Minute) // a guard against a hang, not a timing
	for {
		_, err := r.Start(context.Background(), "prefetch", blocking(func(*jobs.Progress) {}, second))
		if err == nil {
			break
		}
		if !errors.Is(err, jobs.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("after one ended: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestErrorsBounded: a job keeps its first MaxErrors errors and counts
// the rest.
func TestErrorsBounded(t *testing.T) {
	r := jobs.New(jobs.Config{Store: newStore(t)})
	st, err := r.Start(context.Background(), "prefetch", func(ctx context.Context, p *jobs.Progress) error {
		for i := range jobs.MaxErrors + 50 {
			p.Fail(fmt.Errorf("error %d: %s", i, strings.Repeat("x", 10000)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	st = get(t, r, st.ID)
	if st.Failed != jobs.MaxErrors+50 || len(st.Errors) != jobs.MaxErrors || st.MoreErrors != 50 || st.Errors[0][:8] != "error 0:" {
		t.Errorf("failed %d, %d errors, %d more", st.Failed, len(st.Errors), st.MoreErrors)
	}
	for _, e := range st.Errors {
		if len(e) > 500 {
			t.Fatalf("an error of %d bytes", len(e))
		}
	}
}

// TestPrune: ended jobs' records go after KeepFor, and the oldest beyond
// KeepAtMost.
func TestPrune(t *testing.T) {
	disk := newStore(t)
	clock := testenv.NewClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	run := func() string { // one job in a registry of its own, ended
		r := jobs.New(jobs.Config{Store: disk, Now: clock.Now, KeepAtMost: 2, KeepFor: 7 * 24 * time.Hour})
		st, err := r.Start(context.Background(), "prefetch", func(context.Context, *jobs.Progress) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		return st.ID
	}
	exists := func(id string) bool {
		_, err := jobs.New(jobs.Config{Store: disk, Now: clock.Now}).Get(context.Background(), id)
		return err == nil
	}
	var ids []string
	for range 3 {
		ids = append(ids, run())
		clock.Advance(24 * time.Hour)
	}
	if exists(ids[0]) || !exists(ids[1]) || !exists(ids[2]) {
		t.Errorf("after 3 jobs, KeepAtMost 2: exist %v %v %v, want the last two", exists(ids[0]), exists(ids[1]), exists(ids[2]))
	}
	clock.Advance(7 * 24 * time.Hour)
	last := run()
	if exists(ids[1]) || exists(ids[2]) || !exists(last) {
		t.Errorf("after 8 days: older records remain, or the new one is gone")
	}
}

func TestStatusHandler(t *testing.T) {
	r := jobs.New(jobs.Config{Store: newStore(t)})
	st, err := r.Start(context.Background(), "prefetch", func(ctx context.Context, p *jobs.Progress) error {
		p.AddTotal(2)
		p.Done()
		p.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /admin/v1/jobs/{id}", r.StatusHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/admin/v1/jobs/" + st.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	if got["id"] != st.ID || got["state"] != "done" || got["total"] != 2.0 || got["done"] != 2.0 || got["failed"] != 0.0 {
		t.Errorf("status = %v", got)
	}
	for _, id := range []string{"0123456789abcdef", "nope", "..%2f..%2fetc"} {
		resp, err := http.Get(srv.URL + "/admin/v1/jobs/" + id)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("job %q: %d %s, want 404 text/plain", id, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}
