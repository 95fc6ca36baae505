package audit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/audit"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/testenv"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// event returns the i-th event of a test sequence: one second apart,
// module m000, m001, ...
func event(i int) audit.Event {
	return audit.Event{Time: t0.Add(time.Duration(i) * time.Second), RequestID: fmt.Sprint("req-", i),
		Principal: "ci", Client: "127.0.0.1:1234", Module: fmt.Sprintf("example.com/m%03d", i), Version: "v1.0.0",
		File: "zip", Source: "cache", H1: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", Bytes: 1234, Decision: audit.Allow}
}

func open(t *testing.T, path string, cfg audit.Config) *audit.Log {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t, "audit")
	}
	l, err := audit.Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func write(t *testing.T, l *audit.Log, e audit.Event) {
	t.Helper()
	if err := l.Write(e); err != nil {
		t.Fatal(err)
	}
}

func modules(events []audit.Event) []string {
	var ms []string
	for _, e := range events {
		ms = append(ms, e.Module)
	}
	return ms
}

// TestRotation: past MaxSize the file becomes path.1, older ones shift up,
// at most MaxFiles are kept, no file passes MaxSize, no event is lost
// from the kept files, and Query reads across them, newest first.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	const maxSize, maxFiles, n = 2000, 3, 100
	l := open(t, path, audit.Config{MaxSize: maxSize, MaxFiles: maxFiles})
	for i := range n {
		write(t, l, event(i))
	}
	names, _ := filepath.Glob(path + "*")
	if want := []string{path, path + ".1", path + ".2", path + ".3"}; !slices.Equal(names, want) {
		t.Fatalf("files %q, want %q", names, want)
	}
	var kept []audit.Event // oldest first
	for i := maxFiles; i >= 0; i-- {
		name := path
		if i > 0 {
			name += fmt.Sprint(".", i)
		}
		if fi, err := os.Stat(name); err != nil || fi.Size() > maxSize {
			t.Errorf("%s: %v, size %d, want at most %d", name, err, fi.Size(), maxSize)
		}
		kept = append(kept, readLog(t, name)...)
	}
	first := n - len(kept)
	if first <= 0 || len(kept) < 3*(maxSize/400) {
		t.Fatalf("kept %d events of %d: want the oldest rotated away and at least 3 files' worth", len(kept), n)
	}
	for i, e := range kept {
		if e.Module != event(first+i).Module {
			t.Fatalf("kept event %d is %s, want %s: events lost or reordered", i, e.Module, event(first+i).Module)
		}
	}

	ctx := context.Background()
	all, err := l.Query(ctx, audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(kept)
	if !slices.Equal(modules(all), modules(kept)) {
		t.Errorf("Query = %v\nwant newest first %v", modules(all), modules(kept))
	}
	// Limits and time bounds that span files.
	got, err := l.Query(ctx, audit.Filter{Limit: 7})
	if err != nil || !slices.Equal(modules(got), modules(kept[:7])) {
		t.Errorf("Query(limit 7) = %v, %v; want %v", modules(got), err, modules(kept[:7]))
	}
	since, until := event(first+2).Time, event(n-3).Time
	got, err = l.Query(ctx, audit.Filter{Since: since, Until: until})
	if want := modules(kept[3 : len(kept)-2]); err != nil || !slices.Equal(modules(got), want) {
		t.Errorf("Query(since, until) = %v, %v; want %v", modules(got), err, want)
	}
	got, err = l.Query(ctx, audit.Filter{Since: since, Limit: 5})
	if want := modules(kept[:5]); err != nil || !slices.Equal(modules(got), want) {
		t.Errorf("Query(since, limit 5) = %v, %v; want %v", modules(got), err, want)
	}
}

// TestConcurrentWriters: events written at once from many goroutines,
// across rotations, land each exactly once on a line of its own.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	const writers, each = 8, 300
	l := open(t, path, audit.Config{MaxSize: 32 << 10, MaxFiles: 1000})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := event(i)
				e.Time = time.Time{} // stamped by Write
				e.RequestID = fmt.Sprintf("w%d-%d", w, i)
				if err := l.Write(e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	names, _ := filepath.Glob(path + "*")
	if len(names) < 3 {
		t.Errorf("%d files, want some rotations during the test", len(names))
	}
	seen := map[string]int{}
	for _, name := range names {
		for _, e := range readLog(t, name) { // fails on any line that does not parse
			seen[e.RequestID]++
		}
	}
	for w := range writers {
		for i := range each {
			if id := fmt.Sprintf("w%d-%d", w, i); seen[id] != 1 {
				t.Errorf("event %s written %d times, want once", id, seen[id])
			}
		}
	}
	// Write stamps times under its lock: Query sees them in order.
	all, err := l.Query(context.Background(), audit.Filter{Limit: audit.MaxLimit})
	if err != nil || len(all) != writers*each {
		t.Fatalf("Query = %d events, %v; want %d", len(all), err, writers*each)
	}
	if !slices.IsSortedFunc(all, func(a, b audit.Event) int { return b.Time.Compare(a.Time) }) {
		t.Error("Query's events are not newest first")
	}
}

// TestPartialLineFromCrash: a last line cut short by a crash is ended when
// the log is opened again, so that the next event stands on its own line,
// and Query skips it.
func TestPartialLineFromCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path, audit.Config{})
	write(t, l, event(0))
	write(t, l, event(1))
	l.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2025-03-01T12:00:02Z","request_id":"req-2","princ`)
	f.Close()

	l = open(t, path, audit.Config{})
	write(t, l, event(3))
	got, err := l.Query(context.Background(), audit.Filter{})
	if want := []string{"example.com/m003", "example.com/m001", "example.com/m000"}; err != nil || !slices.Equal(modules(got), want) {
		t.Errorf("Query = %v, %v; want %v", modules(got), err, want)
	}
	data, _ := os.ReadFile(path)
	if lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"); len(lines) != 4 || !strings.HasSuffix(lines[2], `"princ`) {
		t.Errorf("file after the crash and one more event:\n%s\nwant the broken line on its own", data)
	}
}

// TestDroppedWhenDiskFull: a write the file system refuses (/dev/full
// answers every write with ENOSPC, as a full disk does) is counted as
// dropped, returned, and the event is kept in the process log.
func TestDroppedWhenDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	logs := &testenv.SyncBuffer{}
	l := open(t, "/dev/full", audit.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	dropped := counterValue(t, metrics.AuditDropped)
	for i := range 3 {
		if err := l.Write(event(i)); err == nil {
			t.Fatal("Write to /dev/full succeeded")
		}
	}
	if n := counterValue(t, metrics.AuditDropped) - dropped; n != 3 {
		t.Errorf("modgate_audit_dropped_total grew by %v, want 3", n)
	}
	out := logs.String()
	if strings.Count(out, "cannot write events") != 1 {
		t.Errorf("process log announces the failure %d times, want once:\n%s", strings.Count(out, "cannot write events"), out)
	}
	for i := range 3 {
		if !strings.Contains(out, event(i).Module) {
			t.Errorf("process log lacks dropped event %s:\n%s", event(i).Module, out)
		}
	}
	// Closed: dropped too.
	l.Close()
	if err := l.Write(event(9)); err == nil || counterValue(t, metrics.AuditDropped)-dropped != 4 {
		t.Errorf("Write after Close = %v, dropped %v; want an error and 4 dropped", err, counterValue(t, metrics.AuditDropped)-dropped)
	}
}

// TestDirectoryRemoved: when the log's directory disappears, rotation
// cannot reopen the file and events are dropped; once it is back, the log
// reopens and writes again.
func TestDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	logs := &testenv.SyncBuffer{}
	l := open(t, path, audit.Config{MaxSize: 1000, MaxFiles: 2, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	write(t, l, event(0))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	dropped := counterValue(t, metrics.AuditDropped)
	var failed int
	for i := 1; i < 10; i++ {
		if l.Write(event(i)) != nil {
			failed++
		}
	}
	if failed == 0 || counterValue(t, metrics.AuditDropped)-dropped != float64(failed) {
		t.Fatalf("%d writes failed, dropped grew by %v: want failures once rotation needs the directory, all counted",
			failed, counterValue(t, metrics.AuditDropped)-dropped)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, l, event(10))
	if got := readLog(t, path); len(got) != 1 || got[0].Module != event(10).Module {
		t.Errorf("after the directory came back: %v, want event 10 alone", modules(got))
	}
	if !strings.Contains(logs.String(), "writing events again") {
		t.Errorf("process log does not say writes resumed:\n%s", logs.String())
	}
}

// TestStdout: "-" writes to standard output, which cannot be queried.
func TestStdout(t *testing.T) {
	l := open(t, audit.Stdout, audit.Config{})
	if _, err := l.Query(context.Background(), audit.Filter{}); !errors.Is(err, audit.ErrNotQueryable) {
		t.Errorf("Query of stdout = %v, want ErrNotQueryable", err)
	}
}

// TestOpenRejects: nonsense configurations and unopenable paths.
func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		path string
		cfg  audit.Config
	}{
		{filepath.Join(dir, "a.log"), audit.Config{MaxSize: -1}},
		{filepath.Join(dir, "a.log"), audit.Config{MaxFiles: -1}},
		{dir, audit.Config{}}, // a directory
		{filepath.Join(dir, "missing", "a.log"), audit.Config{}}, // no such directory
	} {
		if l, err := audit.Open(c.path, c.cfg); err == nil {
			l.Close()
			t.Errorf("Open(%s, %+v) succeeded", c.path, c.cfg)
		}
	}
}
