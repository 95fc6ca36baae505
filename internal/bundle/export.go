package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/modgraph"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// Progress is told how far a long export or import has come;
// *progress.Bar is one.
type Progress interface {
	Start(total int)
	Add(n int)
}

// ExportOptions say what to put in a bundle and where to get it.
type ExportOptions struct {
	// Proxy is the GOPROXY-protocol server the module files come from. It
	// may carry credentials; they go to its host only and are shown
	// nowhere. The checksum database is reached through it when it says
	// it proxies the database (/sumdb/<name>/supported), else at DB.URL.
	Proxy  string
	Client *http.Client
	// DB is the checksum database that must prove every file.
	DB sumdb.DB

	// What the bundle covers, in any combination: the build graph of a
	// main module's go.mod, each of Modules with the graph of its go.mod,
	// and every line of a go.sum (whose hashes the files must match).
	GoMod   []byte
	GoSum   []byte
	Modules []module.Version
	// Graph bounds the walk of the go.mod files.
	Graph modgraph.Options

	// Base is a signed tree head of DB that the importing data dir holds
	// already: the proofs then start from it, so that the importer can
	// move its tree forward. Empty: they start from nothing, which an
	// empty data dir (or one holding this bundle's own tree) accepts.
	Base []byte

	// ScratchDir holds zips while they are checked, and the small files
	// and proofs until they are written ("": the system's).
	ScratchDir string
	Progress   Progress // may be nil
	Now        func() time.Time
}

// ExportSummary says what a bundle holds.
type ExportSummary struct {
	Modules int   // module versions (each with its .info and .mod)
	Zips    int   // of which with a zip
	Proofs  int   // checksum database answers
	Bytes   int64 // size of the bundle
	Tree    int64 // records in the database tree the proofs lead to
	// Unread are go.mod files of the whole graph that could not be
	// fetched but that the go command does not read (pruned graph): the
	// bundle does without them.
	Unread []modgraph.Missing
}

// fetchWorkers is how many small files, and zipWorkers how many zips,
// are fetched at once.
const (
	fetchWorkers = 8
	zipWorkers   = 4
)

// Export writes the bundle opt describes to w. Every file is checked as
// modgate's cache checks what it fetches, and verified against the
// checksum database; the first failure stops the export, naming the
// module, and w then holds an incomplete bundle that Import refuses.
func Export(ctx context.Context, w io.Writer, opt ExportOptions) (*ExportSummary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opt.Client == nil {
		opt.Client = source.NewHTTPClient()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Progress == nil {
		opt.Progress = noProgress{}
	}
	if len(opt.GoMod) == 0 && len(opt.GoSum) == 0 && len(opt.Modules) == 0 {
		return nil, errors.New("nothing to export: give a go.mod, a go.sum or module versions")
	}
	if len(opt.Base) > 0 {
		if _, err := openTree(opt.DB, opt.Base); err != nil {
			return nil, fmt.Errorf("base tree: %v", err)
		}
	}
	files := source.NewUpstream(opt.Proxy, opt.Client)
	scratch, sp, done, err := scratchSpace(opt.ScratchDir)
	if err != nil {
		return nil, err
	}
	defer done()
	e := &exporter{opt: opt, files: files, spool: sp, scratch: scratch}

	g, err := e.graph(ctx)
	if err != nil {
		return nil, err
	}
	all := union(g.GoMods, g.Zips)
	opt.Progress.Start(2*len(all) + len(g.Zips))
	if err := e.smallFiles(ctx, all); err != nil {
		return nil, err
	}
	man, err := e.prove(ctx, all, g.Zips, g.Sums)
	if err != nil {
		return nil, err
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	if err := e.write(ctx, tar.NewWriter(bw), man, g.Sums); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	sum := &ExportSummary{Modules: len(man.Modules), Proofs: len(man.Proofs), Bytes: cw.n, Unread: g.Missing}
	for _, m := range man.Modules {
		if m.Zip != "" {
			sum.Zips++
		}
	}
	if t, err := openTree(opt.DB, []byte(man.SumDB.Tree)); err == nil {
		sum.Tree = t.N
	}
	return sum, nil
}

type exporter struct {
	opt     ExportOptions
	files   *source.Upstream
	spool   *spool
	scratch string
	v       *sumdb.Verifier
}

// graph computes what the bundle covers.
func (e *exporter) graph(ctx context.Context) (*modgraph.Graph, error) {
	g := &modgraph.Graph{}
	if len(e.opt.GoSum) > 0 {
		gs, err := modgraph.FromGoSum(e.opt.GoSum)
		if err != nil {
			return nil, fmt.Errorf("go.sum: %v", err)
		}
		g.Merge(gs)
	}
	opt := e.opt.Graph
	opt.KeepGoing = false // a build needs every go.mod it reads
	if len(e.opt.GoMod) > 0 {
		gm, err := modgraph.FromGoMod(ctx, e.opt.GoMod, e.goMod, opt)
		if err != nil {
			return nil, err
		}
		g.Merge(gm)
	}
	if len(e.opt.Modules) > 0 {
		gm, err := modgraph.FromModules(ctx, e.opt.Modules, e.goMod, opt)
		if err != nil {
			return nil, err
		}
		g.Merge(gm)
	}
	if n := len(union(g.GoMods, g.Zips)); n > maxModules {
		return nil, fmt.Errorf("the build graph has %d module versions, a bundle holds at most %d", n, maxModules)
	}
	return g, nil
}

// goMod fetches, checks and keeps the go.mod of m (the graph walk's
// fetcher).
func (e *exporter) goMod(ctx context.Context, m module.Version) ([]byte, error) {
	if data, ok, err := e.spool.get("mod:" + m.String()); ok || err != nil {
		return data, err
	}
	data, err := e.files.GoMod(ctx, m.Path, m.Version)
	if err != nil {
		return nil, err
	}
	if err := modcheck.CheckGoMod(data, m.Path, m.Version); err != nil {
		return nil, fmt.Errorf("%s .mod from %s: %v", m, e.files, err)
	}
	return data, e.spool.put("mod:"+m.String(), data)
}

// smallFiles fetches and checks the .info and go.mod of every version, a
// few at a time.
func (e *exporter) smallFiles(ctx context.Context, all []module.Version) error {
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	work := make(chan int)
	for range fetchWorkers {
		wg.Go(func() {
			for i := range work {
				m := all[i]
				errs[i] = e.info(ctx, m)
				if errs[i] == nil {
					_, errs[i] = e.goMod(ctx, m)
				}
				e.opt.Progress.Add(1)
			}
		})
	}
feed:
	for i := range all {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err // the first in bundle order
		}
	}
	return nil
}

func (e *exporter) info(ctx context.Context, m module.Version) error {
	data, err := e.files.Info(ctx, m.Path, m.Version)
	if err != nil {
		return err
	}
	if _, err := modcheck.ParseInfo(data, m.Path, m.Version); err != nil {
		return fmt.Errorf("%s .info from %s: %v", m, e.files, err)
	}
	return e.spool.put("info:"+m.String(), data)
}

// prove verifies every go.mod against the checksum database, one lookup
// after the other so that import can repeat them in the same order, and
// learns the zips' hashes from the verified records. The answers the
// verifier needed are recorded as they arrive.
func (e *exporter) prove(ctx context.Context, all, zips []module.Version, sums map[module.Version]string) (*Manifest, error) {
	db := e.opt.DB
	state, err := store.NewDisk(e.scratch + "/state")
	if err != nil {
		return nil, fmt.Errorf("scratch space: %w", err)
	}
	latestKey := "sumdb/" + db.Name + "/latest"
	if len(e.opt.Base) > 0 {
		if err := state.Put(ctx, latestKey, bytes.NewReader(e.opt.Base)); err != nil {
			return nil, fmt.Errorf("scratch space: %w", err)
		}
	}
	next := e.opt.Client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	rec, err := newRecorder(next, e.spool, strings.TrimRight(e.opt.Proxy, "/")+"/sumdb/"+db.Name, db.URL)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: rec, CheckRedirect: e.opt.Client.CheckRedirect}
	remote := sumdb.NewRemote(db, []string{strings.TrimRight(e.opt.Proxy, "/")}, client)
	e.v = sumdb.NewVerifier(sumdb.Config{
		DB:     db,
		Store:  state,
		Remote: remote,
		// Its failures are returned, and said once, by Export.
		Logger: slog.New(slog.DiscardHandler),
	})
	defer e.v.Close()
	prefetchLookups(ctx, remote, all)

	hasZip := make(map[module.Version]bool, len(zips))
	for _, m := range zips {
		hasZip[m] = true
	}
	mods := make([]Module, len(all))
	for i, mv := range all {
		m := &mods[i]
		m.Path, m.Version = mv.Path, mv.Version
		gomod, _, err := e.spool.get("mod:" + m.String())
		if err != nil {
			return nil, err
		}
		if m.Mod, err = modcheck.HashGoMod(gomod); err != nil {
			return nil, err
		}
		if err := e.v.Verify(ctx, m.Path, m.Version, true, m.Mod); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, exportVerifyError(*m, "go.mod", e.files.String(), err)
		}
		if err := checkGoSum(sums, *m, true, m.Mod, db.Name); err != nil {
			return nil, err
		}
		if hasZip[mv] {
			if m.Zip, err = e.recordedZipHash(ctx, *m); err != nil {
				return nil, err
			}
		}
		e.opt.Progress.Add(1)
	}
	proofs, err := rec.proofs()
	if err != nil {
		return nil, err
	}
	tree, _, err := store.ReadAll(ctx, state, latestKey, maxProofSize)
	if err != nil {
		return nil, fmt.Errorf("no verified tree of checksum database %s after the checks: %v", db.Name, err)
	}
	return &Manifest{
		Format:  FormatVersion,
		Created: e.opt.Now().UTC().Truncate(time.Second),
		SumDB:   DBState{Name: db.Name, Key: db.Key, Base: string(e.opt.Base), Tree: string(tree)},
		Modules: mods,
		Proofs:  proofs,
	}, nil
}

// prefetchLookups asks the database for the record of every version, a
// few at a time, for the recorder to keep: the verifications, which must
// run one after the other, then find them there, and wait only for the
// tiles. A failure is left for the verification to meet and report.
func prefetchLookups(ctx context.Context, remote *sumdb.Remote, all []module.Version) {
	work := make(chan module.Version)
	var wg sync.WaitGroup
	for range fetchWorkers {
		wg.Go(func() {
			for m := range work {
				ep, err1 := module.EscapePath(m.Path)
				ev, err2 := module.EscapeVersion(m.Version)
				if err1 == nil && err2 == nil {
					remote.Get(ctx, "/lookup/"+ep+"@"+ev)
				}
			}
		})
	}
	for _, m := range all {
		select {
		case work <- m:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// recordedZipHash returns the zip hash of m in its verified record.
func (e *exporter) recordedZipHash(ctx context.Context, m Module) (string, error) {
	raw, err := e.v.Lookup(ctx, m.Path, m.Version)
	if err != nil {
		return "", exportVerifyError(m, "zip", e.files.String(), err)
	}
	_, text, _, err := tlog.ParseRecord(raw)
	if err != nil {
		return "", fmt.Errorf("%s: verified checksum database record unreadable: %v", m, err)
	}
	prefix := m.Path + " " + m.Version + " "
	for line := range strings.SplitSeq(string(text), "\n") {
		if h, ok := strings.CutPrefix(line, prefix); ok && isH1(h) {
			return h, nil
		}
	}
	return "", fmt.Errorf("%s: checksum database %s has no zip hash for it", m, e.opt.DB.Name)
}

// write writes the bundle: the manifest, the proofs, then each version's
// files; zips are fetched a few ahead of the writer, each checked and
// verified before it is written.
func (e *exporter) write(ctx context.Context, tw *tar.Writer, man *Manifest, sums map[module.Version]string) error {
	mt := man.Created
	manifest, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return err
	}
	if err := writeEntry(tw, ManifestName, manifest, mt); err != nil {
		return err
	}
	for _, p := range man.Proofs {
		data, _, err := e.spool.get("proof:" + p)
		if err != nil {
			return err
		}
		if err := writeEntry(tw, proofEntry(man.SumDB.Name, p), data, mt); err != nil {
			return err
		}
	}

	zips := newZipFetcher(ctx, e, man.Modules)
	defer zips.stop()
	for _, m := range man.Modules {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, ext := range []string{"info", "mod"} {
			data, _, err := e.spool.get(ext + ":" + m.String())
			if err != nil {
				return err
			}
			if err := writeEntry(tw, moduleEntry(m, ext), data, mt); err != nil {
				return err
			}
		}
		if m.Zip == "" {
			continue
		}
		z := zips.next()
		if z.err != nil {
			return z.err
		}
		err := func() error {
			defer z.discard()
			if z.h1 != m.Zip {
				// The record says otherwise: the verifier's message.
				return exportVerifyError(m, "zip", e.files.String(), e.v.Verify(ctx, m.Path, m.Version, false, z.h1))
			}
			if err := checkGoSum(sums, m, false, z.h1, man.SumDB.Name); err != nil {
				return err
			}
			hdr := entryHeader(moduleEntry(m, "zip"), z.size, mt)
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := z.f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			_, err := io.Copy(tw, z.f)
			return err
		}()
		if err != nil {
			return err
		}
		e.opt.Progress.Add(1)
	}
	return tw.Close()
}

// zipFetcher downloads and checks zips in bundle order, at most zipWorkers
// ahead of the writer (each holds a scratch file).
type zipFetcher struct {
	results chan *fetchedZip
	slots   chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

type fetchedZip struct {
	f     *os.File
	size  int64
	h1    string
	err   error
	ready chan struct{}
	slots chan struct{}
}

// discard removes the scratch file and frees its slot.
func (z *fetchedZip) discard() {
	if z.f != nil {
		z.f.Close()
		os.Remove(z.f.Name())
	}
	if z.slots != nil {
		<-z.slots
	}
}

func newZipFetcher(ctx context.Context, e *exporter, mods []Module) *zipFetcher {
	ctx, cancel := context.WithCancel(ctx)
	zf := &zipFetcher{results: make(chan *fetchedZip, zipWorkers), slots: make(chan struct{}, zipWorkers), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(zf.done)
		defer close(zf.results)
		for _, m := range mods {
			if m.Zip == "" {
				continue
			}
			select {
			case zf.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			z := &fetchedZip{ready: make(chan struct{}), slots: zf.slots}
			go func() {
				defer close(z.ready)
				z.f, z.size, z.h1, z.err = e.fetchZip(ctx, m)
			}()
			select {
			case zf.results <- z:
			case <-ctx.Done():
				<-z.ready
				z.discard()
				return
			}
		}
	}()
	return zf
}

// next returns the next zip in bundle order, once fetched and checked.
func (zf *zipFetcher) next() *fetchedZip {
	z, ok := <-zf.results
	if !ok { // stopped: the export was canceled
		return &fetchedZip{err: context.Canceled}
	}
	<-z.ready
	return z
}

// stop ends the fetches and removes what they left.
func (zf *zipFetcher) stop() {
	zf.cancel()
	for z := range zf.results {
		<-z.ready
		z.discard()
	}
	<-zf.done
}

// fetchZip downloads m's zip to a scratch file and checks it as the cache
// does (modcheck.CheckZip), returning its size and h1: hash.
func (e *exporter) fetchZip(ctx context.Context, m Module) (*os.File, int64, string, error) {
	body, err := e.files.Zip(ctx, m.Path, m.Version)
	if err != nil {
		return nil, 0, "", err
	}
	defer body.Close()
	f, err := os.CreateTemp(e.scratch, "zip-*")
	if err != nil {
		return nil, 0, "", fmt.Errorf("scratch space: %w", err)
	}
	fail := func(err error) (*os.File, int64, string, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, "", err
	}
	n, err := io.Copy(f, body)
	if err != nil {
		return fail(err)
	}
	h1, err := modcheck.CheckZip(f.Name(), m.Path, m.Version)
	if err != nil {
		return fail(fmt.Errorf("%s .zip from %s: %v", m, e.files, err))
	}
	return f, n, h1, nil
}

// checkGoSum checks a hash against the go.sum's, if it has one.
func checkGoSum(sums map[module.Version]string, m Module, gomod bool, h1, db string) error {
	key, what := module.Version{Path: m.Path, Version: m.Version}, "zip"
	if gomod {
		key, what = modgraph.GoModKey(key), "go.mod"
	}
	if want, ok := sums[key]; ok && want != h1 {
		return fmt.Errorf("go.sum records %s for the %s of %s, but the proxy's (which checksum database %s confirms) has %s", want, what, m, db, h1)
	}
	return nil
}

// exportVerifyError says why a file could not go into a bundle.
func exportVerifyError(m Module, what, from string, err error) error {
	if err == nil { // a hash differed from the record, which Verify denies
		return fmt.Errorf("%s %s from %s does not match checksum database's record", m, what, from)
	}
	var ve *sumdb.VerifyError
	if !errors.As(err, &ve) {
		return fmt.Errorf("%s %s: %v", m, what, err)
	}
	switch ve.Kind {
	case sumdb.Mismatch:
		return fmt.Errorf("SECURITY ERROR: %s %s from %s has %s, but checksum database %s records %s; nothing exported",
			m, what, from, ve.Got, ve.DB, strings.Join(ve.Want, ", "))
	case sumdb.NotInDB:
		return fmt.Errorf("%s is not in checksum database %s (%s): a bundle holds only modules the database proves", m, ve.DB, cause(ve))
	}
	return fmt.Errorf("cannot verify the %s of %s against checksum database %s: %s", what, m, ve.DB, cause(ve))
}

// cause is the underlying error of a verification failure, one line.
func cause(ve *sumdb.VerifyError) string {
	if ve.Err == nil {
		return "unknown cause"
	}
	return redact.Line(ve.Err.Error(), 300)
}

func entryHeader(name string, size int64, mt time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mt, Format: tar.FormatPAX}
}

func writeEntry(tw *tar.Writer, name string, data []byte, mt time.Time) error {
	if err := tw.WriteHeader(entryHeader(name, int64(len(data)), mt)); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// openTree checks a signed tree head of db against its key.
func openTree(db sumdb.DB, msg []byte) (tlog.Tree, error) {
	v, err := note.NewVerifier(db.Key)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("checksum database %s: invalid key: %v", db.Name, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("not a tree head signed by checksum database %s: %v", db.Name, err)
	}
	return tlog.ParseTree([]byte(n.Text))
}

// union returns the sorted set of a's and b's versions.
func union(a, b []module.Version) []module.Version {
	seen := make(map[module.Version]bool, len(a)+len(b))
	var out []module.Version
	for _, l := range [][]module.Version{a, b} {
		for _, m := range l {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	module.Sort(out)
	return out
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type noProgress struct{}

func (noProgress) Start(int) {}
func (noProgress) Add(int)   {}
