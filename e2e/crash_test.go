package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
)

// bigModule is a module whose zip is about size bytes of incompressible
// (but deterministic) data.
func bigModule(size int) testenv.Module {
	data := make([]byte, size)
	rng := rand.New(rand.NewChaCha8([32]byte{'m', 'o', 'd', 'g', 'a', 't', 'e'}))
	for i := 0; i+8 <= len(data); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	files := goFile("big", "v1.0.0")
	files["blob.bin"] = string(data)
	return testenv.Module{Path: "example.com/big", Version: "v1.0.0", Files: files}
}

// stallingZipHook streams the zip at urlPath slowly and stops sending at
// half of it, closing half when it does; it then holds the response open
// until the client goes away.
func stallingZipHook(urlPath string, data []byte, half chan struct{}) func(http.ResponseWriter, *http.Request) bool {
	var once sync.Once
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != urlPath {
			return false
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		const chunk = 256 << 10
		for off := 0; off < len(data)/2; off += chunk {
			if _, err := w.Write(data[off:min(off+chunk, len(data))]); err != nil {
				return true
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-r.Context().Done():
				return true
			}
		}
		once.Do(func() { close(half) })
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		return true
	}
}

// largestFile returns the size of the largest regular file below dir.
func largestFile(dir string) int64 {
	var max int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > max {
				max = fi.Size()
			}
		}
		return nil
	})
	return max
}

// checkStoredZips checks that every zip stored under data-dir/mod is a
// complete, valid module zip.
func checkStoredZips(t *testing.T, e *env) {
	t.Helper()
	for _, rel := range e.storedUnder("mod") {
		if !strings.HasSuffix(rel, ".zip") {
			continue
		}
		path, version, _, err := store.ParseVersionKey(rel)
		if err != nil {
			t.Errorf("stored file %s: %v", rel, err)
			continue
		}
		cf, err := modzip.CheckZip(module.Version{Path: path, Version: version}, filepath.Join(e.dataDir, filepath.FromSlash(rel)))
		if err == nil {
			err = cf.Err()
		}
		if err != nil {
			t.Errorf("stored zip %s is not a valid module zip (partial?): %v", rel, err)
		}
	}
}

// TestKillMidWrite kills modgate with SIGKILL while it is receiving a large
// zip, then checks that the restarted process never serves a partial zip and
// stores nothing partial, and that it fetches the zip again once the
// upstream is back.
func TestKillMidWrite(t *testing.T) {
	mod := bigModule(20 << 20)
	e := newEnv(t, append(fixtureModules()[:2], mod))
	want := e.fixture(mod.Path, mod.Version, "zip")
	if len(want) < 20<<20 {
		t.Fatalf("fixture zip is %d bytes; it should be incompressible", len(want))
	}
	zipURLPath := vPath(mod.Path, mod.Version, "zip")
	// Something small is stored first, so the data dir is not empty.
	mustGet(t, e.url(vPath("example.com/m", "v1.0.0", "zip")))

	half := make(chan struct{})
	e.up.SetHook(stallingZipHook(upPath(mod.Path, mod.Version, "zip"), want, half))
	reqDone := make(chan error, 1)
	go func() {
		r, err := tryDo(http.MethodGet, e.url(zipURLPath))
		if err == nil && r.Status == http.StatusOK {
			err = fmt.Errorf("got %d bytes with status 200 from a process killed mid-fetch", len(r.Body))
		}
		reqDone <- err
	}()
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream never sent half of the zip")
	}
	// Let modgate write what it received (up to 5s; it may buffer
	// differently, which is fine).
	deadline := time.Now().Add(5 * time.Second)
	for largestFile(e.dataDir) < 5<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("largest file in the data dir at kill time: %d bytes", largestFile(e.dataDir))
	e.proc.Kill()
	select {
	case err := <-reqDone:
		if err != nil && strings.Contains(err.Error(), "status 200") {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client request did not end after SIGKILL")
	}

	checkStoredZips(t, e)
	if _, err := os.Stat(e.storedFile(mod.Path, mod.Version, "zip")); err == nil {
		t.Errorf("the zip being fetched at kill time is stored")
	}

	// Restart with the upstream down: no partial zip is served.
	e.up.SetHook(nil)
	e.up.SetDown(true)
	e.start()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r := do(t, method, e.url(zipURLPath))
		if r.Status == http.StatusOK {
			t.Fatalf("%s zip after a crash with the upstream down: 200 with %d bytes (Content-Length %s), want an error",
				method, len(r.Body), r.Header.Get("Content-Length"))
		}
		if method == http.MethodGet {
			checkErrorBody(t, "zip after a crash, upstream down", r, http.StatusBadGateway, http.StatusGatewayTimeout)
		}
	}
	// What was complete before the crash is still served.
	if got := mustGet(t, e.url(vPath("example.com/m", "v1.0.0", "zip"))); !bytes.Equal(got, e.fixture("example.com/m", "v1.0.0", "zip")) {
		t.Errorf("a zip stored before the crash differs after it")
	}
	checkStoredZips(t, e)

	// Upstream back: the full zip is fetched, stored and served.
	e.up.SetDown(false)
	r := get(t, e.url(zipURLPath))
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
		t.Fatalf("zip after the upstream recovered: status %d, %d bytes, equal %v", r.Status, len(r.Body), bytes.Equal(r.Body, want))
	}
	if got, err := os.ReadFile(e.storedFile(mod.Path, mod.Version, "zip")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("stored zip after recovery: equal %v, err %v", bytes.Equal(got, want), err)
	}
	checkStoredZips(t, e)
	if left := leftovers(e); len(left) > 0 {
		t.Logf("note: files left in the data dir outside mod/ and meta/ after the crash: %v", left)
	}
}

// leftovers lists data-dir files outside mod/ and meta/ (such as staging
// files of a killed process).
func leftovers(e *env) []string {
	var out []string
	for _, f := range e.storedUnder(".") {
		if !strings.HasPrefix(f, "mod/") && !strings.HasPrefix(f, "meta/") {
			fi, _ := os.Stat(filepath.Join(e.dataDir, f))
			size := int64(-1)
			if fi != nil {
				size = fi.Size()
			}
			out = append(out, fmt.Sprintf("%s (%d bytes)", f, size))
		}
	}
	return out
}
