package catalog

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

// TestModulesUsage: each version's downloads, last access and origin come
// from its usage record, its h1 from the .ziphash beside its zip.
func TestModulesUsage(t *testing.T) {
	dir := t.TempDir()
	testenv.BuildTree(t, dir, fixture)
	up := testenv.NewUpstream(t, dir)
	c, disk := cachetest.New(t, up.URL(), nil)
	clock := testenv.NewClock(time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC))
	rec := access.New(access.Config{Store: disk, Now: clock.Now})
	proxy := httptest.NewServer(goproxy.Instrument(slog.New(slog.DiscardHandler), &goproxy.Handler{Modules: rec.Wrap(c)}))
	t.Cleanup(proxy.Close)
	e := &env{disk: disk, proxy: proxy}

	e.fetch(t, "example.com/Alpha", "v1.0.0", "info", "mod", "zip")
	clock.Advance(time.Minute)
	e.fetch(t, "example.com/Alpha", "v1.0.0", "zip")
	e.fetch(t, "example.com/Alpha", "v1.1.0", "info")
	if err := rec.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Stored by the cache, never served through the recorder: no usage.
	if f, err := c.Zip(t.Context(), "other.org/gamma", "v0.2.0-pre"); err != nil {
		t.Fatal(err)
	} else {
		f.Content.Close()
	}
	// The cache hashes zips in the background: wait for Alpha's, and
	// make sure gamma has none.
	hashKey, _ := store.VersionKey("example.com/Alpha", "v1.0.0", "ziphash")
	for {
		if _, err := disk.Stat(t.Context(), hashKey); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	gammaHash, _ := store.VersionKey("other.org/gamma", "v0.2.0-pre", "ziphash")
	for {
		if _, err := disk.Stat(t.Context(), gammaHash); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := disk.Delete(t.Context(), gammaHash); err != nil {
		t.Fatal(err)
	}

	var list ModuleList
	get(t, Modules(disk), "/admin/v1/modules", &list)
	versions := map[string]Version{}
	for _, m := range list.Modules {
		for _, v := range m.Versions {
			versions[m.Path+"@"+v.Version] = v
		}
	}
	want, err := dirhash.HashZip(up.FilePath("example.com/Alpha", "v1.0.0", "zip"), dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	a := versions["example.com/Alpha@v1.0.0"]
	if a.Downloads != 2 || a.LastAccess == nil || !a.LastAccess.Equal(clock.Now()) || a.Origin != up.URL() || a.H1 != want {
		t.Errorf("Alpha v1.0.0: downloads %d, last access %v, origin %q, h1 %q; want 2, %v, %q, %q",
			a.Downloads, a.LastAccess, a.Origin, a.H1, clock.Now(), up.URL(), want)
	}
	if strings.Join(a.Files, ",") != "info,mod,zip" {
		t.Errorf("Alpha v1.0.0: files %q: the .ziphash is not one of them", a.Files)
	}
	if b := versions["example.com/Alpha@v1.1.0"]; b.Downloads != 0 || b.LastAccess == nil || b.H1 != "" {
		t.Errorf("Alpha v1.1.0 (.info only): %+v", b)
	}
	if g := versions["other.org/gamma@v0.2.0-pre"]; g.Downloads != 0 || g.LastAccess != nil || g.Origin != "" || g.H1 != "" {
		t.Errorf("gamma (no record, no .ziphash): %+v", g)
	}

	// A broken record and a broken .ziphash show nothing, and the page
	// is still answered.
	recKey, _ := access.Key("example.com/Alpha")
	for key, body := range map[string]string{recKey: "{", hashKey: "h1:not a hash\n"} {
		if err := disk.Put(t.Context(), key, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	var broken ModuleList
	get(t, Modules(disk), "/admin/v1/modules?q=alpha", &broken)
	if v := broken.Modules[0].Versions[0]; v.Downloads != 0 || v.LastAccess != nil || v.H1 != "" {
		t.Errorf("with a broken record and hash: %+v", v)
	}
	if _, err := access.Read(t.Context(), disk, "example.com/Alpha"); !errors.Is(err, access.ErrBroken) {
		t.Errorf("Read of the broken record: %v", err)
	}
}
