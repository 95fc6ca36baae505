package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/bundle"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/progress"
	"github.com/modgate/modgate/internal/proxylist"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/server"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

const bundleUsage = `Usage:
  modgate bundle export (--proxy URL | --data-dir DIR) [--go-mod FILE] [--go-sum FILE]
                        [--modules M@V,...] [--sumdb DB] [--base-tree FILE] -o BUNDLE
  modgate bundle import BUNDLE (--data-dir DIR | --config FILE) [--sumdb DB]

Carries modules into a network without internet access (docs/bundles.md).

export writes one file with every module file a build needs (the .info,
go.mod and zip of each version of the build list, the .info and go.mod of
every other version whose go.mod the go command reads) and the checksum
database's answers that prove them. Every file is checked and verified
against the database first.

  --proxy URL       the module proxy to fetch from (GOPROXY protocol; may
                    carry credentials); the database through it when it
                    proxies it, else directly
  --data-dir DIR    fetch from a modgate data dir instead, offline
  --go-mod FILE     a main module's go.mod: its whole build graph
  --go-sum FILE     every version in a go.sum (whose hashes must match)
  --modules M@V,... module versions, each with the graph of its go.mod
  --sumdb DB        the checksum database (GOSUMDB syntax; default
                    $MODGATE_SUMDB, else sum.golang.org)
  --base-tree FILE  the data dir the bundle is for holds this database tree
                    already (its sumdb/<db>/latest, or the bundle imported
                    into it last): needed for every bundle after the first
  -o BUNDLE         the bundle to write

import checks every file of BUNDLE and its hash against the bundle's
proofs and the database's key, and only then stores them in DIR, with
the database state that lets "modgate serve --data-dir DIR --upstream off"
answer the go command's verification. A bundle that fails any check is
refused and nothing is stored.

  --data-dir DIR    the modgate data dir to import into
  --config FILE     or: the storage of modgate's configuration file (an S3
                    bucket with storage: s3, its credentials from
                    MODGATE_S3_ACCESS_KEY and MODGATE_S3_SECRET_KEY)
  --sumdb DB        the checksum database whose key the bundle must be
                    proved with (as for export; with --config, default the
                    file's sumdb)
`

func bundleCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, bundleUsage)
		return errors.New("bundle: say export or import")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "export":
		return bundleExport(ctx, args[1:], stdout, stderr, getenv)
	case "import":
		return bundleImport(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, bundleUsage)
		return nil
	}
	fmt.Fprint(stderr, bundleUsage)
	return fmt.Errorf("bundle: unknown command %q: say export or import", args[0])
}

// bundleFlags is a flag set that prints the bundle usage.
func bundleFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("modgate bundle "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bundleUsage) }
	return fs
}

// sumdbFlag parses --sumdb, whose default is the serve default.
func sumdbFlag(spec string, getenv func(string) string) (sumdb.DB, error) {
	if spec == "" {
		spec = getenv("MODGATE_SUMDB")
	}
	if spec == "" {
		spec = sumdb.DefaultName
	}
	if spec == "off" {
		return sumdb.DB{}, errors.New("--sumdb off: a bundle is proved by a checksum database")
	}
	return sumdb.ParseDB(spec)
}

func bundleExport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := bundleFlags("export", stderr)
	proxy := fs.String("proxy", "", "module proxy `URL`")
	dataDir := fs.String("data-dir", "", "modgate data `dir` to export from, offline")
	goModFile := fs.String("go-mod", "", "main module's go.mod `file`")
	goSumFile := fs.String("go-sum", "", "go.sum `file`")
	modules := fs.String("modules", "", "module `versions`, M@V,...")
	dbSpec := fs.String("sumdb", "", "checksum `database` (GOSUMDB syntax)")
	baseFile := fs.String("base-tree", "", "tree head or earlier bundle `file` of the target data dir")
	out := fs.String("o", "", "bundle `file` to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("bundle export: unexpected arguments %q", fs.Args())
	case (*proxy == "") == (*dataDir == ""):
		return errors.New("bundle export: give --proxy URL or --data-dir DIR (one of them)")
	case *out == "":
		return errors.New("bundle export: -o BUNDLE is required")
	case *goModFile == "" && *goSumFile == "" && *modules == "":
		return errors.New("bundle export: say what to export: --go-mod, --go-sum or --modules")
	}
	db, err := sumdbFlag(*dbSpec, getenv)
	if err != nil {
		return fmt.Errorf("bundle export: --sumdb: %w", err)
	}
	bar := newBar(stderr, "exporting")
	opt := bundle.ExportOptions{DB: db, Progress: bar}
	if opt.GoMod, err = readSmallFile(*goModFile, "--go-mod"); err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	if opt.GoSum, err = readSmallFile(*goSumFile, "--go-sum"); err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	if opt.Modules, err = parseModules(*modules); err != nil {
		return fmt.Errorf("bundle export: --modules: %w", err)
	}
	if *baseFile != "" {
		if opt.Base, err = readBaseTree(*baseFile); err != nil {
			return fmt.Errorf("bundle export: --base-tree: %w", err)
		}
	}

	from := ""
	if *proxy != "" {
		entries, err := proxylist.Parse(*proxy)
		if err != nil || len(entries) != 1 || !strings.HasPrefix(entries[0].URL, "http") {
			return fmt.Errorf("bundle export: --proxy %s: want one http(s) URL", redact.URL(*proxy))
		}
		opt.Proxy, opt.Client = entries[0].URL, source.NewHTTPClient()
		from = proxylist.Redact(opt.Proxy)
	} else {
		srv, err := dataDirServer(ctx, *dataDir, db)
		if err != nil {
			return fmt.Errorf("bundle export: %w", err)
		}
		defer srv.Close()
		opt.Proxy, opt.Client = "http://data-dir.modgate.invalid", &http.Client{Transport: handlerTransport{srv.Handler()}}
		from = "data dir " + *dataDir
	}

	// The bundle appears under its name only once complete.
	dir := filepath.Dir(*out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(*out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum, err := bundle.Export(ctx, tmp, opt)
	bar.Done()
	if err != nil {
		return fmt.Errorf("bundle export from %s: %w", from, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("bundle export: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d module versions (%d with zips), %d checksum database answers, %s; from %s, checksum database %s at %d records\n",
		*out, sum.Modules, sum.Zips, sum.Proofs, humanBytes(sum.Bytes), from, db.Name, sum.Tree)
	if n := len(sum.Unread); n > 0 {
		fmt.Fprintf(stdout, "left out %d go.mod files of the graph that could not be fetched and that the go command does not read:\n", n)
		for i, m := range sum.Unread {
			if i == 5 {
				fmt.Fprintf(stdout, "  and %d more\n", n-i)
				break
			}
			fmt.Fprintf(stdout, "  %s: %v\n", m.Version, m.Err)
		}
	}
	return nil
}

// dataDirServer is a modgate over dir that answers from what dir holds:
// no upstream, and a checksum database proxy whose verifier cannot reach
// any database. It is asked in process, without a listener.
func dataDirServer(ctx context.Context, dir string, db sumdb.DB) (*server.Server, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("--data-dir: %s is not a directory", dir)
	}
	spec := db.Key
	if db.URL != "https://"+db.Name {
		spec += " " + db.URL
	}
	cfg, err := config.LoadEnviron([]string{"--data-dir", dir, "--upstream", "off", "--sumdb", spec, "--prefetch=false"}, nil)
	if err != nil {
		return nil, err
	}
	return server.New(ctx, cfg,
		server.WithLogger(slog.New(slog.DiscardHandler)),
		server.WithHTTPClient(&http.Client{Transport: offline{}}))
}

// offline is the transport of a modgate that must not reach out.
type offline struct{}

func (offline) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, errors.New("exporting from a data dir: offline")
}

func bundleImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := bundleFlags("import", stderr)
	dataDir := fs.String("data-dir", "", "modgate data `dir` to import into")
	configFile := fs.String("config", "", "modgate configuration `file` whose storage to import into")
	dbSpec := fs.String("sumdb", "", "checksum `database` (GOSUMDB syntax)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) != 1:
		fs.Usage()
		return errors.New("bundle import: name one BUNDLE file")
	case *dataDir == "" && *configFile == "":
		return errors.New("bundle import: --data-dir DIR is required (or --config FILE, for the storage of modgate's configuration file, e.g. an S3 bucket)")
	case *dataDir != "" && *configFile != "":
		return errors.New("bundle import: give --data-dir or --config, not both")
	}
	var st store.Store
	into := *dataDir
	if *configFile != "" {
		cfg, err := config.Load([]string{"--config", *configFile}, getenv)
		if err != nil {
			return fmt.Errorf("bundle import: %w", err)
		}
		if st, err = store.New(ctx, server.StoreConfig(cfg)); err != nil {
			return fmt.Errorf("bundle import: the storage of %s: %w", *configFile, err)
		}
		into = "the storage of " + *configFile
		if *dbSpec == "" {
			*dbSpec = cfg.SumDB
		}
	} else if st, err = store.NewDisk(*dataDir); err != nil {
		return fmt.Errorf("bundle import: --data-dir: %w", err)
	}
	db, err := sumdbFlag(*dbSpec, getenv)
	if err != nil {
		return fmt.Errorf("bundle import: --sumdb: %w", err)
	}
	f, err := os.Open(rest[0])
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("bundle import: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("bundle import: %s is not a regular file (the bundle is read twice)", rest[0])
	}
	checking, storing := newBar(stderr, "checking"), newBar(stderr, "storing")
	sum, err := bundle.Import(ctx, f, fi.Size(), bundle.ImportOptions{DB: db, Store: st, Checking: checking, Storing: storing})
	checking.Done()
	storing.Done()
	if err != nil {
		return fmt.Errorf("bundle import %s: %w", rest[0], err)
	}
	fmt.Fprintf(stdout, "imported %s into %s: %d module versions (%d with zips): %d files stored (%s), %d already there; checksum database %s at %d records\n",
		rest[0], into, sum.Modules, sum.Zips, sum.Stored, humanBytes(sum.Bytes), sum.Present, db.Name, sum.Tree)
	return nil
}

// bar is a progress bar that is finished only if it was started: a
// command that fails early shows none.
type bar struct {
	*progress.Bar
	started bool
}

func newBar(w io.Writer, label string) *bar { return &bar{Bar: progress.New(w, label)} }

func (b *bar) Start(total int) {
	b.started = true
	b.Bar.Start(total)
}

func (b *bar) Done() {
	if b.started {
		b.Bar.Done()
	}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, which it returns.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// readSmallFile reads an optional input file (a go.mod or go.sum).
func readSmallFile(name, flagName string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	defer f.Close()
	const limit = 64 << 20
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", flagName, name, limit)
	}
	return data, nil
}

// parseModules parses "M@V,M@V".
func parseModules(list string) ([]module.Version, error) {
	var out []module.Version
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		path, vers, ok := strings.Cut(item, "@")
		if !ok {
			return nil, fmt.Errorf("%q: want module@version", item)
		}
		if err := module.Check(path, vers); err != nil {
			return nil, err
		}
		if module.CanonicalVersion(vers) != vers {
			return nil, fmt.Errorf("%s: version %q is not canonical (v1.2.3, or a pseudo-version); a bundle holds exact versions", path, vers)
		}
		out = append(out, module.Version{Path: path, Version: vers})
	}
	return out, nil
}

// readBaseTree reads --base-tree: a bundle (its final tree) or a signed
// tree head as the data dir stores it.
func readBaseTree(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if n == 512 && bytes.HasPrefix(head[257:], []byte("ustar")) {
		m, err := bundle.ReadManifest(f)
		if err != nil {
			return nil, err
		}
		return []byte(m.SumDB.Tree), nil
	}
	const limit = 64 << 10
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s is neither a bundle nor a signed tree head", name)
	}
	return data, nil
}

// handlerTransport answers HTTP requests with a handler in this process,
// streaming the answer through a pipe (zips are not held in memory).
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sreq := req.Clone(req.Context())
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:1" // this process
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, started: make(chan struct{})}
	go func() {
		defer func() {
			w.WriteHeader(http.StatusOK) // a handler that wrote nothing
			pw.Close()
		}()
		t.h.ServeHTTP(w, sreq)
	}()
	select {
	case <-w.started:
	case <-req.Context().Done():
		pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}, nil
}

// pipeWriter is the handler's side of handlerTransport.
type pipeWriter struct {
	header  http.Header
	sent    http.Header // the header when WriteHeader was called
	status  int
	pw      *io.PipeWriter
	started chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(status int) {
	if w.status != 0 {
		return
	}
	w.status, w.sent = status, w.header.Clone()
	close(w.started)
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}
