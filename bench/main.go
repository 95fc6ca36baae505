// Command bench measures modgate end to end against plain baselines and
// prints each figure with its ratio and target. Run it from the repository
// root:
//
//	go run ./bench [flags]
//
// Parts (all by default; select with -only):
//
//	cold  `go mod download` of a set of real public modules through a fresh
//	      modgate (empty data dir, fresh GOMODCACHE) versus straight from the
//	      upstream (the http(s) entries of `go env GOPROXY`).
//	      Target: ratio <= 1.3.
//	warm  the same download through the now-warm modgate versus a file://
//	      GOPROXY holding the same files (copied from the module cache of the
//	      first cold run). Target: ratio <= 1.1.
//	rps   warm .info requests per second from N concurrent keep-alive
//	      clients: modgate versus http.FileServer over the same fixture files,
//	      both separate processes on 127.0.0.1. Target: modgate >= 0.9x.
//	rss   64 concurrent clients each download a 50 MB incompressible zip
//	      that modgate serves from storage; modgate's VmRSS is sampled every
//	      50ms. Target: peak < 40 MB.
//
// cold and warm need the upstream; rps and rss are offline (fixture modules
// served from 127.0.0.1). When the upstream does not answer and -only was
// not given, cold and warm are skipped.
//
// The graph mode times a real project's whole module graph instead:
//
//	go run ./bench graph -gomod FILE [-gosum FILE] [-rounds N] [flags]
//
// It runs `go mod download` of every module whose zip the project's go.sum
// lists (the go command loads the module graph, fetching the go.mod files
// go.sum lists, and downloads those zips) with a fresh GOMODCACHE each run:
// straight from the upstream, through a modgate verifying with its default
// checksum database, through one with --sumdb off, and straight from the
// upstream again, each modgate on a fresh data dir. Every run fetches each
// file from the upstream once; -rounds (1 to 3, default 1) repeats the four
// runs. Each modgate figure is divided by the mean of its round's two
// direct runs. Two projects are in bench/testdata (webservice, cli).
//
// Flags:
//
//	-only LIST        comma-separated parts to run: cold,warm,rps,rss (default all)
//	-modules N        use the first N modules of the set (default: all 58)
//	-runs N           timings per measurement; the median is reported (default 3)
//	-direct-runs N    cold runs straight against the upstream (default 1, to
//	                  spare the upstream)
//	-duration D       length of each rps measurement (default 5s, 1s to 60s)
//	-conns N          concurrent keep-alive clients of the rps part (default 32)
//	-rss-clients N    concurrent downloads of the rss part (default 64)
//	-rss-size MB      size of the rss part's zip in MB (default 50)
//	-workdir DIR      where data dirs, module caches and fixtures go
//	                  (default: a new temporary directory)
//	-keep             keep the work directory (with the servers' logs)
//	-modgate PATH     benchmark this modgate binary instead of building
//	                  ./cmd/modgate
//	-gomodcache DIR   parent directory of the go command's fresh module caches
//	                  (default: the work directory, on disk like a developer's;
//	                  /dev/shm takes the client's disk out of the figures)
//	-modgate-args S   extra flags for every modgate started, space-separated
//	                  (e.g. "--sumdb off" to leave checksum verification out)
//
// modgate runs with its defaults otherwise, so the cold part includes its
// checksum database verification of every fetched go.mod and zip (through
// the upstream). In the cold part the go command verifies too, with its
// default GOSUMDB, as a developer would: straight against the upstream it
// reaches the database through the upstream's /sumdb/, through modgate
// through modgate's. In the warm part it runs with GOSUMDB=off, since a
// file:// proxy cannot serve the database. The fixture
// modules of rps and rss are passed as --nosumdb example.com/bench, as
// private modules would be.
//
// The hidden flag -fileserver DIR is the mode in which the bench re-executes
// itself to serve DIR with http.FileServer as a separate process.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	only       string
	modules    int
	runs       int
	directRuns int
	duration   time.Duration
	conns      int
	rssClients int
	rssSizeMB  int
	workdir    string
	keep       bool
	modgate    string
	mgArgs     string
	clientDir  string
	rounds     int // graph mode
}

// result is one line of the summary.
type result struct {
	part, what string
	value      string
	baseline   string
	ratio      float64
	target     string
	ok         bool
}

type bench struct {
	cfg      config
	parts    map[string]bool
	work     string
	bin      string
	upstream string
	// clientDirs are the directories made under -gomodcache, removed at exit.
	clientDirs []string
	// modgateArgs are the extra flags of every modgate started (-modgate-args).
	modgateArgs []string
	results     []result
	// explicitOnly: -only was given, so a part that cannot run is an error.
	explicitOnly bool

	// The graph mode's project, and what its first run fetched.
	project      *graphProject
	graphFetched *fetchCount

	// Left by the cold part for the warm part.
	warmData  string // data dir of the last cold modgate run
	fileProxy string // copy of the first cold run's cache/download
}

func main() {
	var cfg config
	var fileserver string
	flag.StringVar(&cfg.only, "only", "cold,warm,rps,rss", "comma-separated parts to run: cold,warm,rps,rss")
	flag.IntVar(&cfg.modules, "modules", len(moduleSet), "use the first `N` modules of the set")
	flag.IntVar(&cfg.runs, "runs", 3, "timings per measurement; the median is reported")
	flag.IntVar(&cfg.directRuns, "direct-runs", 1, "cold runs straight against the upstream")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of each rps measurement (1s to 60s)")
	flag.IntVar(&cfg.conns, "conns", 32, "concurrent keep-alive clients of the rps part")
	flag.IntVar(&cfg.rssClients, "rss-clients", 64, "concurrent downloads of the rss part")
	flag.IntVar(&cfg.rssSizeMB, "rss-size", 50, "size of the rss part's zip in `MB`")
	commonFlags(flag.CommandLine, &cfg)
	flag.StringVar(&fileserver, "fileserver", "", "internal: serve `DIR` with http.FileServer")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench [flags]\n       go run ./bench graph -gomod FILE [-gosum FILE] [flags] (go run ./bench graph -h)\n\nFlags:\n")
		printFlags(flag.CommandLine)
	}
	if len(os.Args) > 1 && os.Args[1] == "graph" {
		os.Exit(runGraph(os.Args[2:]))
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if fileserver != "" {
		if err := runFileServer(fileserver); err != nil {
			fmt.Fprintln(os.Stderr, "fileserver:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(cfg))
}

// commonFlags defines the flags every mode has on fs.
func commonFlags(fs *flag.FlagSet, cfg *config) {
	fs.StringVar(&cfg.workdir, "workdir", "", "work directory (default: a new temporary directory)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory and the servers' logs")
	fs.StringVar(&cfg.modgate, "modgate", "", "modgate binary to benchmark (default: build ./cmd/modgate)")
	fs.StringVar(&cfg.clientDir, "gomodcache", "", "parent `DIR` of the go command's fresh module caches (default: the work directory; /dev/shm takes the client's disk out of the figures)")
	fs.StringVar(&cfg.mgArgs, "modgate-args", "", "extra `flags` for every modgate started, space-separated (e.g. \"--sumdb off\")")
}

// printFlags prints fs's flags, but the internal -fileserver.
func printFlags(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "fileserver" {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(os.Stderr, "  -%s %s\n    \t%s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(os.Stderr, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(os.Stderr)
	})
}

// part is one measurement of the bench.
type part struct {
	name string
	fn   func() error
}

func run(cfg config) int {
	b := &bench{cfg: cfg, parts: map[string]bool{}, modgateArgs: strings.Fields(cfg.mgArgs)}
	if err := b.check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	return b.execute([]part{{"cold", b.cold}, {"warm", b.warm}, {"rps", b.rps}, {"rss", b.rss}})
}

// execute sets the bench up, runs the selected parts in order, prints the
// summary and cleans up, also when interrupted. It returns the exit code.
func (b *bench) execute(all []part) int {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\nbench: interrupted; stopping servers")
		stopAll()
		b.cleanup()
		os.Exit(130)
	}()
	defer b.cleanup()
	defer stopAll()

	if err := b.setup(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	failed := false
	for _, p := range all {
		if !b.parts[p.name] {
			continue
		}
		progress("[%s] starting; load average %s (other work on the machine skews the figures)", p.name, loadAvg())
		if err := p.fn(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", p.name, err)
			failed = true
		}
	}
	b.summary()
	if failed {
		return 1
	}
	return 0
}

func (b *bench) check() error {
	c := &b.cfg
	flag.Visit(func(f *flag.Flag) { b.explicitOnly = b.explicitOnly || f.Name == "only" })
	for _, p := range strings.Split(c.only, ",") {
		switch p = strings.TrimSpace(p); p {
		case "cold", "warm", "rps", "rss":
			b.parts[p] = true
		case "":
		default:
			return fmt.Errorf("-only: unknown part %q (want cold, warm, rps, rss)", p)
		}
	}
	switch {
	case c.modules < 1 || c.modules > len(moduleSet):
		return fmt.Errorf("-modules: want 1 to %d", len(moduleSet))
	case c.runs < 1 || c.runs > 20:
		return errors.New("-runs: want 1 to 20")
	case c.directRuns < 0 || c.directRuns > 5:
		return errors.New("-direct-runs: want 0 to 5")
	case c.duration < time.Second || c.duration > time.Minute:
		return errors.New("-duration: want 1s to 60s")
	case c.conns < 1 || c.conns > 1024:
		return errors.New("-conns: want 1 to 1024")
	case c.rssClients < 1 || c.rssClients > 256:
		return errors.New("-rss-clients: want 1 to 256")
	case c.rssSizeMB < 1 || c.rssSizeMB > 400:
		return errors.New("-rss-size: want 1 to 400 (MB)")
	}
	return nil
}

func (b *bench) setup() error {
	var err error
	if b.cfg.workdir != "" {
		b.work, err = filepath.Abs(b.cfg.workdir)
		if err == nil {
			err = os.MkdirAll(b.work, 0o755)
		}
	} else {
		b.work, err = os.MkdirTemp("", "modgate-bench-")
	}
	if err != nil {
		return err
	}
	progress("work directory %s", b.work)
	if b.cfg.modgate != "" {
		b.bin, err = filepath.Abs(b.cfg.modgate)
		if err != nil {
			return err
		}
	} else {
		root, err := repoRoot()
		if err != nil {
			return err
		}
		b.bin = filepath.Join(b.work, "modgate")
		progress("building modgate (go build ./cmd/modgate)")
		cmd := exec.Command("go", "build", "-o", b.bin, "./cmd/modgate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/modgate: %v\n%s", err, out)
		}
	}
	if b.parts["cold"] || b.parts["warm"] || b.parts["graph"] {
		b.upstream, err = upstreamFromGoEnv()
		if err == nil {
			err = reachable(b.upstream)
		}
		if err != nil {
			if b.explicitOnly || b.parts["graph"] {
				return fmt.Errorf("the cold, warm and graph parts need the upstream: %v", err)
			}
			progress("upstream not usable (%v): skipping cold and warm; -only rps,rss runs offline", err)
			b.parts["cold"], b.parts["warm"] = false, false
		}
	}
	fmt.Printf("modgate bench %s: %d cores (GOMAXPROCS %d), %s, %s/%s, %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.GOMAXPROCS(0),
		cpuModel(), runtime.GOOS, runtime.GOARCH, goVersion())
	return nil
}

func (b *bench) cleanup() {
	for _, dir := range b.clientDirs {
		os.RemoveAll(dir)
	}
	if b.work == "" {
		return
	}
	if b.cfg.keep {
		progress("kept work directory %s", b.work)
		return
	}
	os.RemoveAll(b.work)
}

// cold times `go mod download` through a fresh modgate and straight from the
// upstream, interleaved: modgate, upstream, modgate, ... The direct run is
// done -direct-runs times (once by default) so as not to load the upstream.
func (b *bench) cold() error {
	n := b.cfg.modules
	fmt.Printf("\n== cold: go mod download of %d modules (default GOSUMDB through the proxy, fresh GOMODCACHE each run)\n", n)
	dl, err := b.clientParent("cold")
	if err != nil {
		return err
	}
	var viaModgate, direct []time.Duration
	for i := range max(b.cfg.runs, b.cfg.directRuns) {
		if i < b.cfg.runs {
			data := filepath.Join(b.work, fmt.Sprintf("cold-data-%d", i))
			d, err := b.modgateDownload(data, fmt.Sprintf("cold-%d", i), b.modgateVerifies())
			if err != nil {
				return err
			}
			viaModgate = append(viaModgate, d.elapsed)
			progress("[cold] modgate run %d/%d (empty data dir): %s (%s)", i+1, b.cfg.runs, secs(d.elapsed), d.note)
			if err := b.keepForWarm(d, data); err != nil {
				return err
			}
		}
		if i < b.cfg.directRuns {
			d, err := goModDownload(dl, b.upstream, n, true)
			if err != nil {
				return err
			}
			direct = append(direct, d.elapsed)
			progress("[cold] upstream run %d/%d: %s", i+1, b.cfg.directRuns, secs(d.elapsed))
			d.remove()
		}
	}
	mg := median(viaModgate)
	fmt.Printf("cold modgate:  median %s of %s\n", secs(mg), list(viaModgate))
	if len(direct) == 0 {
		fmt.Println("cold upstream: not run (-direct-runs 0)")
		return nil
	}
	up := median(direct)
	ratio := mg.Seconds() / up.Seconds()
	fmt.Printf("cold upstream: median %s of %s\n", secs(up), list(direct))
	fmt.Printf("cold ratio modgate/upstream: %.2f (target <= 1.30)\n", ratio)
	b.add(result{"cold", fmt.Sprintf("go mod download, %d modules", n), secs(mg), secs(up) + " upstream", ratio, "<= 1.30", ratio <= 1.3})
	return nil
}

// modgateDownload starts modgate on data and times one go mod download
// through it.
func (b *bench) modgateDownload(data, name string, verify bool) (*download, error) {
	p, err := startModgate(b.bin, data, b.upstream, filepath.Join(b.work, "modgate-"+name+".log"), b.modgateArgs...)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	dl, err := b.clientParent("dl-" + name)
	if err != nil {
		return nil, err
	}
	d, err := goModDownload(dl, p.URL, b.cfg.modules, verify)
	if err == nil {
		d.note = fmt.Sprintf("modgate made %d upstream fetches, %d checksum database verifications",
			upstreamFetches(p.URL), metricSum(p.URL, "modgate_sumdb_verifications_total"))
	}
	return d, err
}

// keepForWarm keeps the newest modgate data dir for the warm part and builds
// the file:// proxy from the first run's module cache.
func (b *bench) keepForWarm(d *download, data string) error {
	defer d.remove()
	if b.warmData != "" {
		os.RemoveAll(b.warmData)
	}
	b.warmData = data
	if b.fileProxy != "" {
		return nil
	}
	b.fileProxy = filepath.Join(b.work, "fileproxy")
	return copyTree(filepath.Join(d.modCache(), "cache", "download"), b.fileProxy, func(name string) bool {
		return strings.HasSuffix(name, ".lock") || strings.HasSuffix(name, ".partial") || strings.HasSuffix(name, ".tmp")
	})
}

// warm times go mod download through the warm modgate and from a file://
// proxy of the same files, interleaved.
func (b *bench) warm() error {
	n := b.cfg.modules
	fmt.Printf("\n== warm: go mod download of %d modules (GOSUMDB=off: a file:// proxy cannot serve it), fresh GOMODCACHE each run\n", n)
	if b.warmData == "" {
		data := filepath.Join(b.work, "warm-data")
		d, err := b.modgateDownload(data, "fill", false)
		if err != nil {
			return err
		}
		progress("[warm] filled modgate (cold run, not a warm figure): %s (%s)", secs(d.elapsed), d.note)
		if err := b.keepForWarm(d, data); err != nil {
			return err
		}
	}
	p, err := startModgate(b.bin, b.warmData, b.upstream, filepath.Join(b.work, "modgate-warm.log"), b.modgateArgs...)
	if err != nil {
		return err
	}
	defer p.stop()
	fetchesBefore := upstreamFetches(p.URL)
	dl, err := b.clientParent("warm")
	if err != nil {
		return err
	}
	// A third contender, http.FileServer over the same files, tells the cost
	// of the HTTP protocol itself from modgate's own.
	fs, err := startFileServer(b.fileProxy, filepath.Join(b.work, "fileserver-warm.log"))
	if err != nil {
		return err
	}
	defer fs.stop()
	contenders := []struct {
		name, goproxy string
		times         []time.Duration
	}{
		{"modgate", p.URL, nil},
		{"file://", "file://" + filepath.ToSlash(b.fileProxy), nil},
		{"http.FileServer", fs.URL, nil},
	}
	for i := range b.cfg.runs {
		for j := range contenders {
			c := &contenders[(i+j)%len(contenders)] // rotate who goes first
			d, err := goModDownload(dl, c.goproxy, n, false)
			if err != nil {
				return err
			}
			d.remove()
			c.times = append(c.times, d.elapsed)
			progress("[warm] %s run %d/%d: %s", c.name, i+1, b.cfg.runs, secs(d.elapsed))
		}
	}
	fetched := upstreamFetches(p.URL) - fetchesBefore
	mg, fp, hs := median(contenders[0].times), median(contenders[1].times), median(contenders[2].times)
	ratio := mg.Seconds() / fp.Seconds()
	fmt.Printf("warm modgate:         median %s of %s (upstream fetches during the warm runs: %d)\n", secs(mg), list(contenders[0].times), fetched)
	fmt.Printf("warm file://:         median %s of %s\n", secs(fp), list(contenders[1].times))
	fmt.Printf("warm http.FileServer: median %s of %s (same files over HTTP: the protocol's own cost)\n", secs(hs), list(contenders[2].times))
	fmt.Printf("warm ratio modgate/file://: %.2f (target <= 1.10); modgate/http.FileServer: %.2f\n", ratio, mg.Seconds()/hs.Seconds())
	b.add(result{"warm", fmt.Sprintf("go mod download, %d modules", n), secs(mg), secs(fp) + " file://", ratio, "<= 1.10", ratio <= 1.1})
	return nil
}

// metricSum sums the samples of a counter in modgate's /metrics (-1 when
// unavailable).
func metricSum(base, name string) int {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			total += v
		}
	}
	return int(total)
}

func upstreamFetches(base string) int { return metricSum(base, "modgate_upstream_fetches_total") }

// rps measures warm .info requests per second: modgate versus
// http.FileServer over the same files, each a separate process.
func (b *bench) rps() error {
	const nmods = 200
	fmt.Printf("\n== rps: warm .info GETs, %d keep-alive clients, %s per run, %d fixture modules\n", b.cfg.conns, b.cfg.duration, nmods)
	tree := filepath.Join(b.work, "rps-tree")
	mods := smallModules(nmods)
	if err := buildTree(tree, mods); err != nil {
		return err
	}
	fs, err := startFileServer(tree, filepath.Join(b.work, "fileserver-rps.log"))
	if err != nil {
		return err
	}
	defer fs.stop()
	// The file server doubles as modgate's upstream: modgate fetches each
	// .info once, then serves it from its own storage.
	mg, err := startModgate(b.bin, filepath.Join(b.work, "rps-data"), fs.URL, filepath.Join(b.work, "modgate-rps.log"), b.fixtureArgs()...)
	if err != nil {
		return err
	}
	defer mg.stop()
	paths := make([]string, len(mods))
	for i, m := range mods {
		paths[i] = "/" + m.Path + "/@v/" + m.Version + ".info"
		if _, err := fetchDiscard(http.DefaultClient, mg.URL+paths[i]); err != nil {
			return fmt.Errorf("warming modgate: %w", err)
		}
	}
	progress("[rps] modgate warm: %d .info files fetched and stored", len(paths))
	var mgRuns, fsRuns []loadResult
	// Alternate which server goes first, so that a drift in the machine's
	// load does not always favour the same one.
	for i := range b.cfg.runs {
		for j := range 2 {
			if (i+j)%2 == 0 {
				r, err := loadProc(fs, paths, b.cfg.conns, b.cfg.duration)
				if err != nil {
					return fmt.Errorf("file server: %w", err)
				}
				fsRuns = append(fsRuns, r)
				progress("[rps] http.FileServer run %d/%d: %s", i+1, b.cfg.runs, r)
			} else {
				r, err := loadProc(mg, paths, b.cfg.conns, b.cfg.duration)
				if err != nil {
					return fmt.Errorf("modgate: %w", err)
				}
				mgRuns = append(mgRuns, r)
				progress("[rps] modgate run %d/%d: %s", i+1, b.cfg.runs, r)
			}
		}
	}
	m, f := medianLoad(mgRuns), medianLoad(fsRuns)
	ratio := m.rps() / f.rps()
	fmt.Printf("rps modgate:         median %s\n", m)
	fmt.Printf("rps http.FileServer: median %s\n", f)
	fmt.Printf("rps ratio modgate/FileServer: %.2f (target >= 0.90)\n", ratio)
	b.add(result{"rps", fmt.Sprintf("warm .info, %d clients", b.cfg.conns), fmt.Sprintf("%.0f req/s", m.rps()),
		fmt.Sprintf("%.0f req/s FileServer", f.rps()), ratio, ">= 0.90", ratio >= 0.9})
	return nil
}

// rss measures modgate's memory while many clients download a large zip it
// serves from storage.
func (b *bench) rss() error {
	size := int64(b.cfg.rssSizeMB) * 1e6
	fmt.Printf("\n== rss: %d concurrent downloads of a %d MB incompressible zip served from storage\n", b.cfg.rssClients, b.cfg.rssSizeMB)
	tree := filepath.Join(b.work, "rss-tree")
	big := largeModule("example.com/bench/big", size)
	if err := buildTree(tree, []fixtureModule{big}); err != nil {
		return err
	}
	zipPath := "/" + big.Path + "/@v/" + big.Version + ".zip"
	st, err := os.Stat(filepath.Join(tree, filepath.FromSlash(zipPath)))
	if err != nil {
		return err
	}
	zipSize := st.Size()
	fs, err := startFileServer(tree, filepath.Join(b.work, "fileserver-rss.log"))
	if err != nil {
		return err
	}
	defer fs.stop()
	data := filepath.Join(b.work, "rss-data")

	// Fill: one modgate process fetches, checks and stores the zip.
	fill, err := startModgate(b.bin, data, fs.URL, filepath.Join(b.work, "modgate-rss-fill.log"), b.fixtureArgs()...)
	if err != nil {
		return err
	}
	t0 := time.Now()
	n, err := fetchDiscard(http.DefaultClient, fill.URL+zipPath)
	if err == nil && n != zipSize {
		err = fmt.Errorf("cold fetch: %d bytes, want %d", n, zipSize)
	}
	if err != nil {
		fill.stop()
		return err
	}
	_, fillHWM, _ := memStatus(fill.pid())
	progress("[rss] cold fetch of the %s zip through modgate: %s (VmHWM %s)", mb(zipSize), secs(time.Since(t0)), mb(fillHWM))
	fill.stop()

	// Measure: a fresh process serves it from storage.
	p, err := startModgate(b.bin, data, fs.URL, filepath.Join(b.work, "modgate-rss.log"), b.fixtureArgs()...)
	if err != nil {
		return err
	}
	defer p.stop()
	progress("[rss] %d clients downloading from modgate pid %d", b.cfg.rssClients, p.pid())
	r, err := measureRSS(p.pid(), p.URL, zipPath, zipSize, b.cfg.rssClients)
	if err != nil {
		return err
	}
	r.fetchHWM = fillHWM
	fmt.Printf("rss idle before the clients: %s\n", mb(r.idleRSS))
	fmt.Printf("rss peak VmRSS while serving: %s (%d samples); VmHWM %s\n", mb(r.peakRSS), r.samples, mb(r.hwm))
	fmt.Printf("rss served %s in %s (%.0f MB/s)\n", mb(r.bytesServed), secs(r.elapsed), r.throughputMB)
	fmt.Printf("rss VmHWM of the process that fetched and checked the zip: %s\n", mb(r.fetchHWM))
	peak := max(r.peakRSS, r.hwm)
	b.add(result{"rss", fmt.Sprintf("%d x %d MB zip downloads", b.cfg.rssClients, b.cfg.rssSizeMB),
		"peak " + mb(r.peakRSS) + ", HWM " + mb(r.hwm), "idle " + mb(r.idleRSS), float64(peak) / 40e6, "< 40 MB", peak < 40e6})
	return nil
}

// fixtureArgs are modgate's flags for the fixture parts: the fixture modules
// are private (not in any checksum database), as GONOSUMDB would say.
func (b *bench) fixtureArgs() []string {
	return append([]string{"--nosumdb", "example.com/bench"}, b.modgateArgs...)
}

// modgateVerifies reports whether the modgates started proxy the checksum
// database; with "--sumdb off" they do not, and their clients cannot verify.
func (b *bench) modgateVerifies() bool {
	for i, a := range b.modgateArgs {
		if (a == "--sumdb" || a == "-sumdb") && i+1 < len(b.modgateArgs) && b.modgateArgs[i+1] == "off" {
			return false
		}
		if a == "--sumdb=off" || a == "-sumdb=off" {
			return false
		}
	}
	return true
}

// clientParent returns a new directory for go command runs: under
// -gomodcache if given, else under the work directory.
func (b *bench) clientParent(name string) (string, error) {
	if b.cfg.clientDir == "" {
		dir := filepath.Join(b.work, name)
		return dir, os.MkdirAll(dir, 0o755)
	}
	if err := os.MkdirAll(b.cfg.clientDir, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(b.cfg.clientDir, "modgate-bench-"+name+"-")
	if err == nil {
		b.clientDirs = append(b.clientDirs, dir)
	}
	return dir, err
}

func (b *bench) add(r result) { b.results = append(b.results, r) }

func (b *bench) summary() {
	if len(b.results) == 0 {
		return
	}
	fmt.Printf("\n== summary (load average at the end: %s)\n", loadAvg())
	fmt.Printf("%-5s %-32s %-26s %-26s %6s %-8s %s\n", "part", "measure", "modgate", "baseline", "ratio", "target", "")
	for _, r := range b.results {
		verdict := "met"
		switch {
		case r.target == "":
			r.target, verdict = "-", ""
		case !r.ok:
			verdict = "MISSED"
		}
		fmt.Printf("%-5s %-32s %-26s %-26s %6.2f %-8s %s\n", r.part, r.what, r.value, r.baseline, r.ratio, r.target, verdict)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "  %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// median of ds; the mean of the middle two for an even count.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func medianLoad(rs []loadResult) loadResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b loadResult) int {
		switch x, y := a.rps(), b.rps(); {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
func mb(n int64) string           { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func list(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, secs(d))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// repoRoot finds the modgate checkout from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(data), "module github.com/modgate/modgate\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the modgate checkout, or pass -modgate")
		}
		dir = parent
	}
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func goVersion() string {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

// notifyStop delivers SIGTERM and interrupts to c (the -fileserver mode).
func notifyStop(c chan os.Signal) { signal.Notify(c, os.Interrupt, syscall.SIGTERM) }
