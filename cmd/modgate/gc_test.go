package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// gcFixture stores a module version's files (ext -> size) in the disk
// store at dir, last modified and read age ago.
func gcFixture(t *testing.T, d *store.Disk, path, version string, files map[string]int, age time.Duration) {
	t.Helper()
	when := time.Now().Add(-age)
	for ext, n := range files {
		key, err := store.VersionKey(path, version, ext)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Put(t.Context(), key, bytes.NewReader(make([]byte, n))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(d.Root(), filepath.FromSlash(key)), when, when); err != nil {
			t.Fatal(err)
		}
	}
}

// gcFiles lists the files under dir, relative and slash-separated.
func gcFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGCBinary(t *testing.T) {
	bin := testenv.Binary(t)
	dir := t.TempDir()
	d, err := store.NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	const day = 24 * time.Hour
	gcFixture(t, d, "example.com/old", "v1.0.0", map[string]int{"info": 512, "mod": 512, "zip": 3 << 10}, 9*day)         // 4 KiB
	gcFixture(t, d, "example.com/mid", "v1.1.0", map[string]int{"info": 1 << 10, "mod": 1 << 10}, 5*day)                 // 2 KiB
	gcFixture(t, d, "example.com/Upper", "v0.3.0", map[string]int{"mod": 1 << 10, "zip": 1 << 20}, 2*day)                // 1 MiB + 1 KiB
	gcFixture(t, d, "example.com/fresh", "v0.0.1", map[string]int{"info": 100, "mod": 100, "zip": 8 << 10}, time.Minute) // being fetched
	if err := d.Put(t.Context(), "meta/example.com/old/@/list", strings.NewReader("v1.0.0\n")); err != nil {
		t.Fatal(err)
	}
	before := gcFiles(t, dir)

	gc := func(args ...string) (stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"gc", "--data-dir", dir}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("modgate gc %q: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}

	// 1 MiB + 7 KiB + 8.2 KB stored; under 1 MiB + 10 KiB, old and mid go.
	out, _ := gc("--max-size", "1034KiB", "--dry-run")
	want := "would remove example.com/old@v1.0.0 (4.0 KiB)\nwould remove example.com/mid@v1.1.0 (2.0 KiB)\nwould remove 2 versions, 6.0 KiB"
	if !strings.Contains(out, want) || !strings.HasPrefix(out, "store: 4 versions, 1.0 MiB; limit 1.0 MiB\n") {
		t.Errorf("gc --dry-run printed:\n%s\nwant it to contain:\n%s", out, want)
	}
	if after := gcFiles(t, dir); !slices.Equal(after, before) {
		t.Errorf("gc --dry-run changed the store:\nbefore %q\nafter  %q", before, after)
	}

	// A limit below everything removes all but the version being fetched.
	out, errOut := gc("--max-size", "1KiB")
	want = "removed example.com/old@v1.0.0 (4.0 KiB)\nremoved example.com/mid@v1.1.0 (2.0 KiB)\nremoved example.com/Upper@v0.3.0 (1.0 MiB)\nremoved 3 versions, 1.0 MiB; 8.2 KiB left\n" +
		"still over the limit; versions kept as used in the last 10m0s: 1\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("gc printed:\n%s\nwant it to end with:\n%s", out, want)
	}
	if !strings.Contains(errOut, "gc: 3 to do\n") || !strings.Contains(errOut, "gc: 3/3 (100%)\n") {
		t.Errorf("gc progress on stderr:\n%s", errOut)
	}
	wantFiles := []string{
		"meta/example.com/old/@/list",
		"mod/example.com/fresh/@v/v0.0.1.info",
		"mod/example.com/fresh/@v/v0.0.1.mod",
		"mod/example.com/fresh/@v/v0.0.1.zip",
	}
	if got := gcFiles(t, dir); !slices.Equal(got, wantFiles) {
		t.Errorf("after gc: files %q, want %q", got, wantFiles)
	}

	// Nothing to do: says so, changes nothing.
	out, _ = gc("--max-size", "1GiB")
	if !strings.HasSuffix(out, "removed 0 versions, 0 B; 8.2 KiB left\n") {
		t.Errorf("gc under the limit printed:\n%s", out)
	}
}

func TestGCUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-size", "1GiB"}, "--data-dir is required"},
		{[]string{"--data-dir", dir}, "--max-size is required"},
		{[]string{"--data-dir", dir, "--max-size", "12XB"}, `invalid byte size "12XB"`},
		{[]string{"--data-dir", dir, "--max-size", "-1KiB"}, "invalid byte size"},
		{[]string{"--data-dir", filepath.Join(dir, "typo"), "--max-size", "1GiB"}, "no such file or directory"},
		{[]string{"--data-dir", dir, "--max-size", "1GiB", "extra"}, "unexpected arguments"},
	} {
		var stdout, stderr bytes.Buffer
		err := gcCmd(tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gc %q: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gc created a mistyped --data-dir: %v", err)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB", 2 << 40: "2.0 TiB", 2048 << 40: "2048.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// served answers every zip as a stored file: enough for a recorder to
// count an access.
type served struct{ protocol.Modules }

func (served) Zip(_ context.Context, _, version string) (*protocol.File, error) {
	f := protocol.BytesFile(nil)
	f.Version, f.Stored = version, true
	return f, nil
}

// TestGCByUsageRecords: gc orders by what a serving modgate recorded
// where the files' times say otherwise, and leaves nothing of what it
// removes: no file, no empty directory, no record entry.
func TestGCByUsageRecords(t *testing.T) {
	dir := t.TempDir()
	d, err := store.NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	const day = 24 * time.Hour
	gcFixture(t, d, "example.com/old", "v1.0.0", map[string]int{"info": 512, "mod": 512, "zip": 3 << 10}, 9*day) // 4 KiB
	gcFixture(t, d, "example.com/mid", "v1.1.0", map[string]int{"mod": 1 << 10, "zip": 1 << 10}, 5*day)          // 2 KiB
	gcFixture(t, d, "example.com/new", "v0.3.0", map[string]int{"mod": 1 << 10, "zip": 1 << 10}, 2*day)          // 2 KiB
	// The serving modgate saw old used an hour ago, new a day ago.
	for _, u := range []struct {
		path, version string
		ago           time.Duration
	}{{"example.com/old", "v1.0.0", time.Hour}, {"example.com/new", "v0.3.0", day}} {
		r := access.New(access.Config{Store: d, Now: func() time.Time { return time.Now().Add(-u.ago) }})
		if _, err := r.Wrap(served{}).Zip(t.Context(), u.path, u.version); err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := gcCmd([]string{"--data-dir", dir, "--max-size", "5KiB"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	want := "removed example.com/mid@v1.1.0 (2.0 KiB)\nremoved example.com/new@v0.3.0 (2.0 KiB)\nremoved 2 versions, 4.0 KiB; 4.0 KiB left\n"
	if !strings.HasSuffix(stdout.String(), want) {
		t.Errorf("gc printed:\n%s\nwant it to end with:\n%s", stdout.String(), want)
	}
	wantFiles := []string{
		"meta/example.com/new/@/access",
		"meta/example.com/old/@/access",
		"mod/example.com/old/@v/v1.0.0.info",
		"mod/example.com/old/@v/v1.0.0.mod",
		"mod/example.com/old/@v/v1.0.0.zip",
	}
	if got := gcFiles(t, dir); !slices.Equal(got, wantFiles) {
		t.Errorf("after gc: files %q, want %q", got, wantFiles)
	}
	for _, gone := range []string{"mod/example.com/mid", "mod/example.com/new"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; want it removed with its last version", gone, err)
		}
	}
	if entries, err := access.Read(t.Context(), d, "example.com/new"); err != nil || len(entries) != 0 {
		t.Errorf("record of the removed example.com/new: %v, %v", entries, err)
	}
}
