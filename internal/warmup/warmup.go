// Package warmup is the prefetch of the admin API: POST
// /admin/v1/prefetch takes a project's go.mod (and go.sum) or a list of
// module versions, and a background job (package jobs) fetches through
// modgate's modules everything the go command needs to build it (package
// modgraph), so that a build later finds it all stored, even with the
// outside world gone.
//
// The job asks a protocol.Modules like any client: the server gives it
// the cache inside the download policy, so the cache checks, verifies
// against the checksum database and stores every file, and a version the
// policy blocks is not fetched but shows as the job's error. It runs with
// a context of its own, carrying no client: it is not charged to anyone's
// rate limit, and nothing of the request that started it.
//
// A job's items are module versions. For each it asks the .info and the
// go.mod, and the zip when the version is in the build list; with a
// go.sum, it compares the go.sum's hashes with those of what modgate
// stores. An item is done when something had to be fetched, skipped when
// all was stored already, failed otherwise (with an error naming the
// version). The job is done when it went through every item, failed only
// when it could not start (the module graph exceeds its bound) or was
// interrupted.
package warmup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/jobs"
	"github.com/modgate/modgate/internal/modgraph"
	"github.com/modgate/modgate/internal/protocol"
)

// Config sets up a Warmer; Modules and Jobs are required.
type Config struct {
	// Modules is what the jobs fetch through: the cache, inside the
	// policy when one is on.
	Modules protocol.Modules
	Jobs    *jobs.Registry
	Logger  *slog.Logger
	// Workers is how many module versions a job fetches at once, and how
	// many go.mod files its graph walk reads at once (default 8).
	Workers int
	// MaxModules bounds a job's module graph (default modgraph's, 20000).
	MaxModules int
}

// Warmer serves POST /admin/v1/prefetch and runs its jobs.
type Warmer struct {
	cfg Config
}

// New returns a Warmer.
func New(cfg Config) *Warmer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	return &Warmer{cfg: cfg}
}

// maxGoMod bounds a go.mod read during a graph walk: the zip format's own
// bound for a module's go.mod.
const maxGoMod = 16 << 20

// request is what a job prefetches: a main module's go.mod (and go.sum),
// or module versions (some maybe "latest").
type request struct {
	gomod, gosum []byte
	modules      []module.Version // Version "latest" is resolved in the job
}

// run is the job's work.
func (w *Warmer) run(req request) jobs.Func {
	return func(ctx context.Context, p *jobs.Progress) error {
		p.SetPhase("resolving the module graph")
		g, err := w.graph(ctx, req, p)
		if err != nil {
			return err
		}
		missing := map[module.Version]bool{}
		for _, m := range g.Missing {
			missing[m.Version] = true
		}
		inZips := map[module.Version]bool{}
		for _, m := range g.Zips {
			inZips[m] = true
		}
		var items []module.Version
		for _, m := range union(g.GoMods, g.Zips) {
			if !missing[m] { // failed already: asking again would fail the same way
				items = append(items, m)
			}
		}
		p.AddTotal(len(items) + len(g.Missing))
		for _, m := range g.Missing {
			w.fail(p, m.Version, m.Err)
		}

		p.SetPhase("fetching module files")
		work := make(chan module.Version)
		var wg sync.WaitGroup
		for range w.cfg.Workers {
			wg.Go(func() {
				for m := range work {
					fetched, err := w.fetchSafely(ctx, m, inZips[m], g.Sums)
					switch {
					case err != nil:
						if ctx.Err() == nil {
							w.fail(p, m, err)
						}
					case fetched:
						p.Done()
					default:
						p.Skip()
					}
				}
			})
		}
	feed:
		for _, m := range items {
			select {
			case work <- m:
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
		return ctx.Err()
	}
}

// fetchSafely is fetch with a panic turned into the version's error: a
// bug one module version meets must not take the server down, as the
// job runs outside any request (whose panics the HTTP layer answers).
func (w *Warmer) fetchSafely(ctx context.Context, m module.Version, zip bool, sums map[module.Version]string) (fetched bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			w.cfg.Logger.Error("prefetch: panic fetching a module version", "module", m.Path, "version", m.Version,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			fetched, err = false, fmt.Errorf("%s@%s: internal error in modgate; see modgate's log", m.Path, m.Version)
		}
	}()
	return w.fetch(ctx, m, zip, sums)
}

// fail counts m failed. An error that names files of the server (the
// store's, a scratch file) goes to the log only: the job's status is read
// by admin clients, who get what modgate's own answers give them, a
// pointer to the log.
func (w *Warmer) fail(p *jobs.Progress, m module.Version, err error) {
	if errors.As(err, new(*fs.PathError)) || errors.As(err, new(*os.LinkError)) {
		w.cfg.Logger.Error("prefetch: a module version could not be fetched or stored", "module", m.Path, "version", m.Version, "err", err)
		err = fmt.Errorf("%s@%s: modgate could not fetch or store it (an error inside modgate); see modgate's log", m.Path, m.Version)
	}
	p.Fail(err)
}

// graph computes what the request needs. A list's "latest" that cannot
// be resolved is an item failed, not the job's failure.
func (w *Warmer) graph(ctx context.Context, req request, p *jobs.Progress) (*modgraph.Graph, error) {
	opt := modgraph.Options{Workers: w.cfg.Workers, MaxModules: w.cfg.MaxModules, KeepGoing: true}
	if req.gomod != nil {
		g, err := modgraph.FromGoMod(ctx, req.gomod, w.readGoMod, opt)
		if err != nil {
			return nil, err
		}
		if req.gosum != nil {
			sums, err := modgraph.FromGoSum(req.gosum) // checked by the handler
			if err != nil {
				return nil, err
			}
			g.Merge(sums)
		}
		return g, nil
	}
	roots := make([]module.Version, 0, len(req.modules))
	for _, m := range req.modules {
		if m.Version != "latest" {
			roots = append(roots, m)
			continue
		}
		f, err := w.cfg.Modules.Latest(ctx, m.Path)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			p.AddTotal(1)
			w.fail(p, m, named(m, "@latest", err))
			continue
		}
		f.Content.Close()
		roots = append(roots, module.Version{Path: m.Path, Version: f.Version})
	}
	return modgraph.FromModules(ctx, roots, w.readGoMod, opt)
}

// readGoMod is the graph walk's fetcher: the go.mod through the modules,
// which fetch and store it if need be.
func (w *Warmer) readGoMod(ctx context.Context, m module.Version) ([]byte, error) {
	f, err := w.cfg.Modules.GoMod(ctx, m.Path, m.Version)
	if err != nil {
		return nil, err
	}
	defer f.Content.Close()
	data, err := io.ReadAll(io.LimitReader(f.Content, maxGoMod+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxGoMod {
		return nil, fmt.Errorf("go.mod larger than %d bytes", maxGoMod)
	}
	return data, nil
}

// fetch asks for m's .info and go.mod, and its zip when zip is set, so
// that they are stored, and checks the hashes sums has for them. fetched
// reports that something was not stored before.
//
// A zip is not read back: the cache answers only once it has checked,
// verified and stored it, and reading it again would only cost the
// storage's time. Its hash, when a go.sum gives one, is the stored
// .ziphash (or the stored zip hashed then).
func (w *Warmer) fetch(ctx context.Context, m module.Version, zip bool, sums map[module.Version]string) (fetched bool, err error) {
	type file struct {
		ext string
		get func(context.Context, string, string) (*protocol.File, error)
		sum string
	}
	files := []file{
		{".info", w.cfg.Modules.Info, ""},
		{".mod", w.cfg.Modules.GoMod, sums[modgraph.GoModKey(m)]},
	}
	if zip {
		files = append(files, file{".zip", w.cfg.Modules.Zip, sums[m]})
	}
	for _, fl := range files {
		// After an error the next files would fail alike (a version not
		// found, or blocked): one error per version.
		f, err := fl.get(ctx, m.Path, m.Version)
		if err != nil {
			return fetched, named(m, fl.ext, err)
		}
		fetched = fetched || !f.Stored
		err = checkSum(ctx, f, fl.sum)
		f.Content.Close()
		if err != nil {
			return fetched, named(m, fl.ext, err)
		}
	}
	return fetched, nil
}

// checkSum compares the h1 of what modgate stores with the go.sum's, if
// any.
func checkSum(ctx context.Context, f *protocol.File, want string) error {
	if want == "" {
		return nil
	}
	if f.H1 == nil {
		return errors.New("modgate cannot tell its hash, to compare with go.sum's")
	}
	got, err := f.H1(ctx)
	if err != nil {
		return fmt.Errorf("hashing it to compare with go.sum's: %w", err)
	}
	if got != want {
		return fmt.Errorf("go.sum has %s but modgate stores %s (verified against the checksum database unless the path is private or --nosumdb); the go command will refuse one of the two: check how the go.sum was made", want, got)
	}
	return nil
}

// named makes err name the version and file it is about, unless its
// message names the version already (a policy's refusal does).
func named(m module.Version, ext string, err error) error {
	msg := err.Error()
	if prefix := m.Path + "@" + m.Version + " "; len(msg) >= len(prefix) && msg[:len(prefix)] == prefix {
		return err
	}
	return fmt.Errorf("%s@%s %s: %w", m.Path, m.Version, ext, err)
}

// union returns the sorted set of a's and b's versions.
func union(a, b []module.Version) []module.Version {
	set := make(map[module.Version]bool, len(a)+len(b))
	var out []module.Version
	for _, list := range [][]module.Version{a, b} {
		for _, m := range list {
			if !set[m] {
				set[m] = true
				out = append(out, m)
			}
		}
	}
	module.Sort(out)
	return out
}
