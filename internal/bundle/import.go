package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/modgate/modgate/internal/modcheck"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// ImportOptions say where a bundle goes and whom to trust.
type ImportOptions struct {
	// DB is the checksum database every file must be proved by. Its key
	// comes from the importer's configuration, never from the bundle.
	DB sumdb.DB
	// Store is the data dir's storage, which gets the module files and
	// the verified checksum database state.
	Store store.Store
	// ScratchDir holds the bundle's proofs and the state they verify
	// while they are checked ("": the system's). Zips are checked in the
	// store's staging directory when it has one (store.FilePutter), else
	// here.
	ScratchDir string
	// Checking and Storing are told how far the two passes over the
	// bundle have come; either may be nil.
	Checking, Storing Progress
}

// ImportSummary says what an import did.
type ImportSummary struct {
	Modules int   // module versions in the bundle
	Zips    int   // of which with a zip
	Stored  int   // files stored
	Present int   // files the store held already (left as they were)
	Bytes   int64 // bytes stored
	Tree    int64 // records in the checksum database tree the store now holds
}

// Import checks the bundle of size bytes in r and stores what it holds.
//
// It reads the bundle twice. The first pass checks everything and stores
// nothing: the manifest, the name, kind and size of every entry, each
// .info, go.mod and zip as modgate's cache checks what it fetches and
// against the manifest's hashes, and then every hash against the
// checksum database's proofs, replayed in export's order by a Verifier
// whose state is a scratch store; the state the go command will need is
// then checked by an x/mod client through a database proxy over that
// state, offline, as a fresh go command would. Only then does the second
// pass store: the verified database state (the tree head last, by
// compare-and-swap), then each module file whose SHA-256 equals what the
// first pass checked, as the cache stores them (a zip's .ziphash before
// the zip). A file the store holds already is left alone.
//
// Any failure of the first pass stores nothing. A bundle changed between
// the passes fails the second, having stored only files that passed both.
func Import(ctx context.Context, r io.ReaderAt, size int64, opt ImportOptions) (*ImportSummary, error) {
	if opt.Checking == nil {
		opt.Checking = noProgress{}
	}
	if opt.Storing == nil {
		opt.Storing = noProgress{}
	}
	scratch, sp, done, err := scratchSpace(opt.ScratchDir)
	if err != nil {
		return nil, err
	}
	defer done()
	im := &importer{opt: opt, spool: sp, scratch: scratch, sums: map[string][sha256.Size]byte{}}

	if err := im.check(ctx, io.NewSectionReader(r, 0, size)); err != nil {
		return nil, err
	}
	if err := im.prove(ctx); err != nil {
		return nil, err
	}
	if err := im.checkOffline(ctx); err != nil {
		return nil, err
	}
	if err := im.commitState(ctx); err != nil {
		return nil, err
	}
	if err := im.store(ctx, io.NewSectionReader(r, 0, size)); err != nil {
		return nil, err
	}
	sum := im.sum
	sum.Modules = len(im.man.Modules)
	for _, m := range im.man.Modules {
		if m.Zip != "" {
			sum.Zips++
		}
	}
	if t, err := openTree(opt.DB, im.final); err == nil {
		sum.Tree = t.N
	}
	return &sum, nil
}

type importer struct {
	opt     ImportOptions
	spool   *spool
	scratch string

	man *Manifest
	// entries are the bundle's expected entries, by name.
	entries map[string]entry
	// sums are the SHA-256 of each module file the first pass checked.
	sums map[string][sha256.Size]byte

	// The data dir's tree head when the import began, and its ETag (the
	// condition of the compare-and-swap that replaces it).
	current     []byte
	currentETag string
	// state is the scratch store the proofs were verified into, and
	// final the tree head they lead to.
	state *store.Disk
	final []byte

	sum ImportSummary
}

// entry is what a bundle entry must be.
type entry struct {
	mod   Module
	ext   string // "info", "mod", "zip", or "proof"
	proof string // the proof's name
	seen  bool
}

// importError is a bundle that is refused: one line, naming what is wrong.
func importError(format string, args ...any) error {
	return errors.New(redact.Line(fmt.Sprintf(format, args...), 600))
}

// check is the first pass: every entry, in order, against the manifest.
func (im *importer) check(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	var err error
	if im.man, err = readManifest(tr); err != nil {
		return err
	}
	if err := im.checkDB(); err != nil {
		return err
	}
	im.entries = make(map[string]entry, 3*len(im.man.Modules)+len(im.man.Proofs))
	for _, m := range im.man.Modules {
		for _, ext := range m.exts() {
			im.entries[moduleEntry(m, ext)] = entry{mod: m, ext: ext}
		}
	}
	for _, p := range im.man.Proofs {
		im.entries[proofEntry(im.man.SumDB.Name, p)] = entry{ext: "proof", proof: p}
	}
	im.opt.Checking.Start(len(im.entries))

	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return importError("bundle is truncated or damaged: %v", tarError(err))
		}
		e, err := im.expect(hdr)
		if err != nil {
			return err
		}
		if err := im.checkEntry(tr, hdr, e); err != nil {
			return err
		}
		e.seen = true
		im.entries[hdr.Name] = e
		im.opt.Checking.Add(1)
	}
	missing, example := 0, ""
	for name, e := range im.entries {
		if !e.seen {
			missing++
			if example == "" || name < example {
				example = name
			}
		}
	}
	if missing > 0 {
		return importError("bundle is truncated or incomplete: %d of its entries are missing, e.g. %s", missing, example)
	}
	return nil
}

// ReadManifest reads the manifest at the start of the bundle r, checked
// as Import checks it (the files and proofs are not read).
func ReadManifest(r io.Reader) (*Manifest, error) {
	return readManifest(tar.NewReader(r))
}

func readManifest(tr *tar.Reader) (*Manifest, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, importError("not a bundle, or damaged: %v", tarError(err))
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return nil, importError("not a bundle: its first entry is %q, not %s", hdr.Name, ManifestName)
	}
	if hdr.Size > maxManifestSize {
		return nil, importError("bundle manifest is %d bytes, the limit is %d", hdr.Size, maxManifestSize)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, importError("bundle is truncated or damaged: reading %s: %v", ManifestName, tarError(err))
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, importError("bundle %v", err)
	}
	return m, nil
}

// checkDB refuses a bundle proved by another database than the one this
// import trusts.
func (im *importer) checkDB() error {
	db, got := im.opt.DB, im.man.SumDB
	if got.Name != db.Name {
		return importError("bundle is proved by checksum database %s, but this import trusts %s (--sumdb)", got.Name, db.Name)
	}
	if got.Key != db.Key {
		return importError("bundle was made with the key %q of checksum database %s, but this import trusts the key %q (--sumdb)", got.Key, db.Name, db.Key)
	}
	if got.Base != "" {
		if _, err := openTree(db, []byte(got.Base)); err != nil {
			return importError("bundle's base tree: %v", err)
		}
	}
	if _, err := openTree(db, []byte(got.Tree)); err != nil {
		return importError("bundle's tree: %v", err)
	}
	return nil
}

// expect checks an entry's header: a regular file the manifest lists, not
// seen before, of a size within its kind's limit.
func (im *importer) expect(hdr *tar.Header) (entry, error) {
	if hdr.Typeflag != tar.TypeReg {
		return entry{}, importError("bundle entry %q is not a regular file (type %q): refused", hdr.Name, hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		// The tar reader expands a sparse file's holes: a small bundle
		// could make it write a large one. Export writes none.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return entry{}, importError("bundle entry %q is a sparse file: refused", hdr.Name)
		}
	}
	if err := store.CheckKey(hdr.Name); err != nil {
		return entry{}, importError("bundle entry %q has an unsafe or invalid name: refused", hdr.Name)
	}
	e, ok := im.entries[hdr.Name]
	switch {
	case !ok:
		return entry{}, importError("bundle entry %q is not in its manifest: refused", hdr.Name)
	case e.seen:
		return entry{}, importError("bundle entry %q appears twice: refused", hdr.Name)
	case hdr.Size < 0 || hdr.Size > maxEntrySize(e.ext):
		return entry{}, importError("bundle entry %q is %d bytes, the limit for it is %d", hdr.Name, hdr.Size, maxEntrySize(e.ext))
	}
	return e, nil
}

// checkEntry reads and checks one entry's content.
func (im *importer) checkEntry(tr *tar.Reader, hdr *tar.Header, e entry) error {
	if e.ext == "zip" {
		return im.checkZip(tr, hdr, e.mod)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return importError("bundle is truncated or damaged: reading %s: %v", hdr.Name, tarError(err))
	}
	m := e.mod
	switch e.ext {
	case "proof":
		return im.spool.put("proof:"+e.proof, data)
	case "info":
		if _, err := modcheck.ParseInfo(data, m.Path, m.Version); err != nil {
			return importError("bundle entry %s: %v", hdr.Name, err)
		}
	case "mod":
		if err := modcheck.CheckGoMod(data, m.Path, m.Version); err != nil {
			return importError("bundle entry %s: %v", hdr.Name, err)
		}
		h1, err := modcheck.HashGoMod(data)
		if err != nil {
			return err
		}
		if h1 != m.Mod {
			return importError("bundle entry %s has been changed: its hash is %s, the manifest says %s", hdr.Name, h1, m.Mod)
		}
	}
	im.sums[hdr.Name] = sha256.Sum256(data)
	return nil
}

// checkZip copies a zip entry to a scratch file and checks it as the
// cache checks a fetched zip; its hash must be the manifest's.
func (im *importer) checkZip(tr *tar.Reader, hdr *tar.Header, m Module) error {
	f, err := im.zipTemp()
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), tr); err != nil {
		return importError("bundle is truncated or damaged: reading %s: %v", hdr.Name, tarError(err))
	}
	h1, err := modcheck.CheckZip(f.Name(), m.Path, m.Version)
	if err != nil {
		return importError("bundle entry %s: %v", hdr.Name, err)
	}
	if h1 != m.Zip {
		return importError("bundle entry %s has been changed: its hash is %s, the manifest says %s", hdr.Name, h1, m.Zip)
	}
	im.sums[hdr.Name] = [sha256.Size]byte(h.Sum(nil))
	return nil
}

// zipTemp creates a scratch file for a zip: in the store's staging
// directory when it has one (on the data dir's disk, locked against its
// cleanup, and renamed into place by PutFile), else in the scratch dir.
func (im *importer) zipTemp() (*os.File, error) {
	var f *os.File
	var err error
	if fp, ok := im.opt.Store.(store.FilePutter); ok {
		f, err = fp.CreateTemp("bundle-*.zip")
	} else {
		f, err = os.CreateTemp(im.scratch, "zip-*")
	}
	if err != nil {
		return nil, fmt.Errorf("scratch space: %w", err)
	}
	return f, nil
}

// tarError makes the tar reader's end of input say what it means.
func tarError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("unexpected end of file")
	}
	return err
}

// prove replays export's verification against the bundle's proofs: every
// go.mod hash, in manifest order, then every zip hash, checked by a
// Verifier whose database is the bundle and whose state starts where
// export's did.
func (im *importer) prove(ctx context.Context) error {
	db := im.opt.DB
	latestKey := "sumdb/" + db.Name + "/latest"
	current, info, err := store.ReadAll(ctx, im.opt.Store, latestKey, maxProofSize)
	switch {
	case errors.Is(err, store.ErrNotExist):
		im.currentETag = store.IfAbsent
	case err != nil:
		return fmt.Errorf("reading the data dir's checksum database tree: %w", err)
	default:
		im.current, im.currentETag = current, info.ETag
	}
	base, tree := []byte(im.man.SumDB.Base), []byte(im.man.SumDB.Tree)
	if im.current != nil && !bytes.Equal(im.current, base) && !bytes.Equal(im.current, tree) {
		n := "?"
		if t, err := openTree(db, im.current); err == nil {
			n = fmt.Sprint(t.N)
		}
		from := "an empty state"
		if t, err := openTree(db, base); err == nil {
			from = fmt.Sprintf("a tree of %d records", t.N)
		}
		return importError("the data dir holds a checksum database tree of %s records, but the bundle's proofs start from %s: "+
			"export the bundle again with --base-tree naming the data dir's tree (sumdb/%s/latest in it, or the bundle imported last)", n, from, db.Name)
	}

	if im.state, err = store.NewDisk(im.scratch + "/state"); err != nil {
		return fmt.Errorf("scratch space: %w", err)
	}
	if len(base) > 0 {
		if err := im.state.Put(ctx, latestKey, bytes.NewReader(base)); err != nil {
			return fmt.Errorf("scratch space: %w", err)
		}
	}
	rp := &replayer{answer: func(ctx context.Context, name string) ([]byte, error) {
		data, ok, err := im.spool.get("proof:" + name)
		if err == nil && !ok {
			err = errNoProof
		}
		return data, err
	}}
	db.URL = "https://bundle.invalid" // never dialed: the replayer is the transport
	v := sumdb.NewVerifier(sumdb.Config{
		DB:     db,
		Store:  im.state,
		Remote: sumdb.NewRemote(db, nil, &http.Client{Transport: rp}),
		Logger: slog.New(slog.DiscardHandler), // its failures are said once, below
	})
	defer v.Close()
	for _, gomod := range []bool{true, false} {
		for _, m := range im.man.Modules {
			h1, what := m.Mod, "go.mod"
			if !gomod {
				if m.Zip == "" {
					continue
				}
				h1, what = m.Zip, "zip"
			}
			if err := v.Verify(ctx, m.Path, m.Version, gomod, h1); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return importVerifyError(m, what, err, rp.missing())
			}
		}
	}
	if im.final, _, err = store.ReadAll(ctx, im.state, latestKey, maxProofSize); err != nil {
		return fmt.Errorf("no verified checksum database tree after checking the bundle: %v", err)
	}
	if !bytes.Equal(im.final, tree) {
		return importError("bundle's manifest names another checksum database tree than its proofs lead to: refused")
	}
	return nil
}

// importVerifyError says why a bundle's file failed its proof.
func importVerifyError(m Module, what string, err error, missing []string) error {
	var ve *sumdb.VerifyError
	if !errors.As(err, &ve) {
		return importError("checking the %s of %s against the bundle's proofs: %v", what, m, err)
	}
	switch ve.Kind {
	case sumdb.Mismatch:
		return importError("SECURITY ERROR: the bundle's %s of %s has %s, but checksum database %s records %s; nothing was imported",
			what, m, ve.Got, ve.DB, strings.Join(ve.Want, ", "))
	case sumdb.Security:
		return importError("SECURITY ERROR: the bundle's checksum database answers are not one history with each other or with the data dir's tree (%s); nothing was imported", cause(ve))
	}
	if len(missing) > 0 {
		// The last answer asked for and missing is the one the check
		// stopped at (an earlier one may have been a partial tile that a
		// complete one replaced).
		return importError("the bundle lacks the checksum database answer %s needed to prove %s (%s); nothing was imported", missing[len(missing)-1], m, cause(ve))
	}
	return importError("the bundle's checksum database proof of %s does not verify (%s); nothing was imported", m, cause(ve))
}

// commitState stores the verified checksum database state in the data
// dir: lookups and tiles, which are true whatever the tree head, then the
// tree head, by compare-and-swap against the one the import started from.
func (im *importer) commitState(ctx context.Context) error {
	prefix := "sumdb/" + im.opt.DB.Name + "/"
	latestKey := prefix + "latest"
	var keys []string
	err := im.state.List(ctx, prefix, func(key string) error {
		if key != latestKey {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, key := range keys {
		if _, err := im.opt.Store.Stat(ctx, key); err == nil {
			continue // verified before, and immutable
		} else if !errors.Is(err, store.ErrNotExist) {
			return err
		}
		data, _, err := store.ReadAll(ctx, im.state, key, maxProofSize)
		if err != nil {
			return err
		}
		if err := store.PutSized(ctx, im.opt.Store, key, bytes.NewReader(data), int64(len(data))); err != nil {
			return err
		}
	}
	if bytes.Equal(im.current, im.final) {
		return nil
	}
	err = store.PutIf(ctx, im.opt.Store, latestKey, bytes.NewReader(im.final), im.currentETag)
	if errors.Is(err, store.ErrPreconditionFailed) {
		return importError("the data dir's checksum database tree changed during the import (another import, or a modgate online): run the import again")
	}
	return err
}

// store is the second pass: each module file, checked against the first
// pass's SHA-256, stored unless the store holds it already.
func (im *importer) store(ctx context.Context, r io.Reader) error {
	files := 0
	for name, e := range im.entries {
		if e.ext != "proof" {
			files++
			e.seen = false
			im.entries[name] = e
		}
	}
	im.opt.Storing.Start(files)
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return importError("bundle changed during the import: %v", tarError(err))
		}
		e, ok := im.entries[hdr.Name]
		if hdr.Name == ManifestName || (ok && e.ext == "proof") {
			continue
		}
		if !ok || e.seen || hdr.Typeflag != tar.TypeReg || hdr.Size > maxEntrySize(e.ext) {
			return importError("bundle changed during the import: entry %q was not there before", hdr.Name)
		}
		if err := im.storeEntry(ctx, tr, hdr, e); err != nil {
			return err
		}
		e.seen = true
		im.entries[hdr.Name] = e
		im.opt.Storing.Add(1)
	}
	for name, e := range im.entries {
		if e.ext != "proof" && !e.seen {
			return importError("bundle changed during the import: entry %s is gone", name)
		}
	}
	return nil
}

func (im *importer) storeEntry(ctx context.Context, tr *tar.Reader, hdr *tar.Header, e entry) error {
	key := hdr.Name // a module file's entry name is its storage key
	if _, err := im.opt.Store.Stat(ctx, key); err == nil {
		// Module files are immutable: what is stored stays, as the
		// cache never replaces one either.
		im.sum.Present++
		return nil
	} else if !errors.Is(err, store.ErrNotExist) {
		return err
	}
	want := im.sums[hdr.Name]
	changed := importError("bundle changed during the import: entry %s differs from what was checked; it was not stored", hdr.Name)
	if e.ext != "zip" {
		data, err := io.ReadAll(tr)
		if err != nil {
			return importError("bundle changed during the import: reading %s: %v", hdr.Name, tarError(err))
		}
		if sha256.Sum256(data) != want {
			return changed
		}
		if err := store.PutSized(ctx, im.opt.Store, key, bytes.NewReader(data), int64(len(data))); err != nil {
			return err
		}
		im.sum.Stored++
		im.sum.Bytes += int64(len(data))
		return nil
	}
	f, err := im.zipTemp()
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close() // after PutFile: the staging file stays locked until it is moved
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), tr)
	if err != nil {
		return importError("bundle changed during the import: reading %s: %v", hdr.Name, tarError(err))
	}
	if [sha256.Size]byte(h.Sum(nil)) != want {
		return changed
	}
	hashKey, err := store.VersionKey(e.mod.Path, e.mod.Version, "ziphash")
	if err != nil {
		return err
	}
	// As the cache stores a verified zip: its hash first, so that the zip
	// is never visible without it.
	h1 := []byte(e.mod.Zip + "\n")
	if err := store.PutSized(ctx, im.opt.Store, hashKey, bytes.NewReader(h1), int64(len(h1))); err != nil {
		return err
	}
	if err := store.PutFile(ctx, im.opt.Store, key, f.Name()); err != nil {
		return err
	}
	im.sum.Stored++
	im.sum.Bytes += n
	return nil
}
