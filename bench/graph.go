package main

// The graph mode: a real project's whole module graph, downloaded cold
// through modgate (verifying, and with --sumdb off) and straight from the
// upstream, in rounds of paired runs.

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
)

// graphProject is the go.mod and go.sum of the project the graph mode
// downloads.
type graphProject struct {
	name         string // the directory holding its go.mod, for the figures
	gomod, gosum []byte
	// zipPaths are the paths of the modules whose zip go.sum lists: the
	// arguments of `go mod download`.
	zipPaths   []string
	zips, mods int // go.sum's zip and go.mod lines
}

// loadGraphProject reads and checks a project's go.mod and go.sum.
func loadGraphProject(gomodFile, gosumFile string) (*graphProject, error) {
	gomod, err := os.ReadFile(gomodFile)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.Parse(gomodFile, gomod, nil)
	if err != nil {
		return nil, err
	}
	if mf.Module == nil {
		return nil, fmt.Errorf("%s has no module line", gomodFile)
	}
	for _, r := range mf.Replace {
		if r.New.Version == "" {
			return nil, fmt.Errorf("%s: replace %s => %s points to a directory, which the bench does not have", gomodFile, r.Old.Path, r.New.Path)
		}
	}
	gosum, err := os.ReadFile(gosumFile)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(gomodFile)
	if err != nil {
		return nil, err
	}
	p := &graphProject{name: filepath.Base(filepath.Dir(abs)), gomod: gomod, gosum: gosum}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(gosum), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") {
			return nil, fmt.Errorf("%s:%d: not a go.sum line", gosumFile, i+1)
		}
		if strings.HasSuffix(f[1], "/go.mod") {
			p.mods++
			continue
		}
		p.zips++
		if !seen[f[0]] {
			seen[f[0]] = true
			p.zipPaths = append(p.zipPaths, f[0])
		}
	}
	if p.zips == 0 {
		return nil, fmt.Errorf("%s lists no module zip", gosumFile)
	}
	slices.Sort(p.zipPaths)
	return p, nil
}

// runGraph is `go run ./bench graph`.
func runGraph(args []string) int {
	var cfg config
	var gomod, gosum string
	fs := flag.NewFlagSet("graph", flag.ContinueOnError)
	fs.StringVar(&gomod, "gomod", "", "the project's go.mod `FILE` (required)")
	fs.StringVar(&gosum, "gosum", "", "the project's go.sum `FILE` (default: go.sum beside -gomod)")
	fs.IntVar(&cfg.rounds, "rounds", 1, "rounds of four runs (direct, modgate verifying, modgate --sumdb off, direct): 1 to 3, to spare the upstream")
	commonFlags(fs, &cfg)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./bench graph -gomod FILE [-gosum FILE] [flags]\n\n"+
			"Times a cold `go mod download` of every module in the project's go.sum through\n"+
			"modgate (verifying, and with --sumdb off) and straight from the upstream.\n\nFlags:\n")
		printFlags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "bench graph:", err)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fs.Usage()
		return 2
	case gomod == "":
		return fail(errors.New("-gomod is required"))
	case cfg.rounds < 1 || cfg.rounds > 3:
		return fail(errors.New("-rounds: want 1 to 3"))
	}
	if gosum == "" {
		gosum = filepath.Join(filepath.Dir(gomod), "go.sum")
	}
	p, err := loadGraphProject(gomod, gosum)
	if err != nil {
		return fail(err)
	}
	b := &bench{cfg: cfg, parts: map[string]bool{"graph": true}, modgateArgs: strings.Fields(cfg.mgArgs), project: p}
	for _, a := range b.modgateArgs {
		if name := strings.TrimLeft(a, "-"); name == "sumdb" || strings.HasPrefix(name, "sumdb=") {
			return fail(errors.New("-modgate-args: the graph mode runs modgate with and without --sumdb itself"))
		}
	}
	return b.execute([]part{{"graph", b.graph}})
}

// graphRun is one timed download of the graph mode.
type graphRun struct {
	elapsed time.Duration
	fetched fetchCount
}

// graphRound is one round: direct, both modgates, direct.
type graphRound struct {
	before, verifying, off, after graphRun
}

// direct is the mean of the round's two direct runs, what each modgate
// run is compared with.
func (r graphRound) direct() time.Duration { return (r.before.elapsed + r.after.elapsed) / 2 }

// graph times the project's graph: in each round a direct run, modgate
// verifying and modgate with --sumdb off (in turn first), and a direct run
// again, each with a fresh module cache and modgate with a fresh data dir.
// Every run fetches each file once from the upstream; nothing is repeated
// within a run.
func (b *bench) graph() error {
	p := b.project
	fmt.Printf("\n== graph %s: go mod download of every module in its go.sum (%d zips, %d go.mod files); fresh GOMODCACHE and modgate data dir each run; %d round(s)\n",
		p.name, p.zips, p.mods, b.cfg.rounds)
	dl, err := b.clientParent("graph")
	if err != nil {
		return err
	}
	mm := mainModule{gomod: p.gomod, gosum: p.gosum, args: p.zipPaths}
	var rounds []graphRound
	for i := range b.cfg.rounds {
		var r graphRound
		if r.before, err = b.graphDirect(dl, mm, i, "before"); err != nil {
			return err
		}
		// The modgate runs take turns going first.
		first, second := true, false
		if i%2 == 1 {
			first, second = false, true
		}
		for _, verify := range []bool{first, second} {
			run, err := b.graphModgate(dl, mm, i, verify)
			if err != nil {
				return err
			}
			if verify {
				r.verifying = run
			} else {
				r.off = run
			}
		}
		if r.after, err = b.graphDirect(dl, mm, i, "after"); err != nil {
			return err
		}
		rounds = append(rounds, r)
	}

	f := rounds[0].before.fetched
	fmt.Printf("each run fetched %d zips (%s) and %d go.mod files (go.sum lists %d and %d)\n", f.zips, mb(f.zipBytes), f.mods, p.zips, p.mods)
	fmt.Printf("%-6s %14s %18s %20s %13s %17s %11s\n", "round", "direct before", "modgate verifying", "modgate --sumdb off", "direct after", "verifying/direct", "off/direct")
	var direct, verifying, off []time.Duration
	var rv, ro []float64
	for i, r := range rounds {
		v := r.verifying.elapsed.Seconds() / r.direct().Seconds()
		o := r.off.elapsed.Seconds() / r.direct().Seconds()
		fmt.Printf("%-6d %14s %18s %20s %13s %17.2f %11.2f\n", i+1, secs(r.before.elapsed), secs(r.verifying.elapsed), secs(r.off.elapsed), secs(r.after.elapsed), v, o)
		direct = append(direct, r.before.elapsed, r.after.elapsed)
		verifying = append(verifying, r.verifying.elapsed)
		off = append(off, r.off.elapsed)
		rv, ro = append(rv, v), append(ro, o)
	}
	mv, mo := medianFloat(rv), medianFloat(ro)
	if len(rounds) > 1 {
		fmt.Printf("%-6s %14s %18s %20s %13s %17.2f %11.2f\n", "median", secs(median(direct)), secs(median(verifying)), secs(median(off)), "", mv, mo)
	}
	fmt.Println("ratios: each modgate run over the mean of its round's two direct runs")
	b.add(result{"graph", p.name + ", verifying", secs(median(verifying)), secs(median(direct)) + " direct", mv, "<= 1.15", mv <= 1.15})
	b.add(result{"graph", p.name + ", --sumdb off", secs(median(off)), secs(median(direct)) + " direct", mo, "", true})
	return nil
}

// graphDirect times one download straight from the upstream. The go
// command verifies with its default checksum database, which it asks
// nothing when go.sum is complete.
func (b *bench) graphDirect(dl string, mm mainModule, round int, when string) (graphRun, error) {
	d, err := downloadIn(dl, b.upstream, mm, true)
	if err != nil {
		return graphRun{}, err
	}
	defer d.remove()
	run := graphRun{elapsed: d.elapsed, fetched: countFetched(d.modCache())}
	progress("[graph] round %d, direct %s: %s (go command CPU %s; fetched %s)", round+1, when, secs(d.elapsed), secs(d.cpu), run.fetched)
	return run, b.checkFetched(run.fetched)
}

// graphModgate times one download through a modgate started on a fresh
// data dir, verifying with its default checksum database or with
// --sumdb off (its client then verifies nothing either).
func (b *bench) graphModgate(dl string, mm mainModule, round int, verify bool) (graphRun, error) {
	side := "verifying"
	args := b.modgateArgs
	if !verify {
		side = "--sumdb off"
		args = append([]string{"--sumdb", "off"}, args...)
	}
	name := fmt.Sprintf("graph-%d-%s", round+1, map[bool]string{true: "verify", false: "nosumdb"}[verify])
	data := filepath.Join(b.work, name+"-data")
	defer os.RemoveAll(data)
	p, err := startModgate(b.bin, data, b.upstream, filepath.Join(b.work, "modgate-"+name+".log"), args...)
	if err != nil {
		return graphRun{}, err
	}
	defer p.stop()
	d, err := downloadIn(dl, p.URL, mm, verify)
	if err != nil {
		return graphRun{}, err
	}
	defer d.remove()
	cpu, _ := cpuTime(p.pid())
	run := graphRun{elapsed: d.elapsed, fetched: countFetched(d.modCache())}
	progress("[graph] round %d, modgate %s: %s (go command CPU %s, modgate CPU %s; %d upstream fetches, %d checksum database verifications; fetched %s)",
		round+1, side, secs(d.elapsed), secs(d.cpu), secs(cpu), upstreamFetches(p.URL),
		metricSum(p.URL, "modgate_sumdb_verifications_total"), run.fetched)
	return run, b.checkFetched(run.fetched)
}

// checkFetched makes sure every run downloads the same files as the first.
func (b *bench) checkFetched(f fetchCount) error {
	if b.graphFetched == nil {
		b.graphFetched = &f
		return nil
	}
	if want := *b.graphFetched; f.zips != want.zips || f.mods != want.mods {
		return fmt.Errorf("a run fetched %s, the first one %s: the runs are not comparable", f, want)
	}
	return nil
}

// fetchCount counts the module files in a module cache.
type fetchCount struct {
	zips, mods int
	zipBytes   int64
}

func (f fetchCount) String() string {
	return fmt.Sprintf("%d zips, %s, %d go.mod files", f.zips, mb(f.zipBytes), f.mods)
}

// countFetched counts the zips and go.mod files in the module cache's
// download directory (cache/download, without the checksum database's
// tiles under sumdb/).
func countFetched(modCache string) fetchCount {
	var f fetchCount
	root := filepath.Join(modCache, "cache", "download")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p == filepath.Join(root, "sumdb") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".zip"):
			f.zips++
			if info, err := d.Info(); err == nil {
				f.zipBytes += info.Size()
			}
		case strings.HasSuffix(p, ".mod"):
			f.mods++
		}
		return nil
	})
	return f
}

func medianFloat(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
