// Package scan checks a module's build list against a download policy,
// for CI gates ("modgate scan"), and describes it as a CycloneDX SBOM.
//
// The build list is the go command's own: "go list -m -json all" run in
// the module's directory with the caller's environment. Reading go.mod
// requirements alone would miss the versions minimal version selection
// raises, and go.sum holds versions that are no longer in the build list
// (it keeps every go.mod the go command ever consulted), so neither is a
// faithful list. The go command may consult the module cache and GOPROXY
// for go.mod files it lacks; it downloads no zip for this.
package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

const (
	maxGoMod      = 16 << 20
	maxGoSum      = 64 << 20
	maxListOutput = 256 << 20 // "go list -m -json" or "go mod graph" of tens of thousands of modules
	maxStderr     = 64 << 10
)

// Module is one module version of the build list, as downloaded: for a
// module replaced by another module version, the replacement.
type Module struct {
	Path, Version string
	// Time is the version's time, as the go command knows it (zero when
	// not known).
	Time time.Time
	// Indirect marks a requirement no package of the main module imports.
	Indirect bool
	// Retracted holds the author's rationale when the version is
	// retracted (only filled when Load is asked to look).
	Retracted []string
	// Sum is the zip's h1: hash from go.sum, "" when go.sum lacks it.
	Sum string
}

// BuildList is a main module and the module versions it builds with.
type BuildList struct {
	// Main is the main module's path.
	Main string
	// Modules are in the go command's order (sorted by path).
	Modules []Module
	// Local lists requirements replaced by a directory: their code is
	// the user's own, not a module version any proxy or policy knows.
	Local []string
	// Requires maps the main module's path and the path of each module
	// of Modules to the paths (in Modules) of the modules it requires,
	// sorted: the edges of the module graph between the selected
	// versions, as "go mod graph" shows them, replacements applied.
	Requires map[string][]string
}

// Options configures Load.
type Options struct {
	// Env is the go command's environment; nil means this process's.
	Env []string
	// Retracted asks the go command which versions are retracted (it then
	// reads each module's latest go.mod through GOPROXY).
	Retracted bool
}

// Load reads dir's go.mod and go.sum and asks the go command for the
// build list.
func Load(ctx context.Context, dir string, opts Options) (*BuildList, error) {
	data, err := readBounded(filepath.Join(dir, "go.mod"), maxGoMod)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.ParseLax(filepath.Join(dir, "go.mod"), data, nil)
	if err != nil {
		return nil, err
	}
	if mf.Module == nil {
		return nil, fmt.Errorf("%s: no module directive", filepath.Join(dir, "go.mod"))
	}
	sums, err := ReadGoSum(filepath.Join(dir, "go.sum"))
	if err != nil {
		return nil, err
	}
	bl := &BuildList{Main: mf.Module.Mod.Path}
	// selected maps each module path of the graph to its version in the
	// build list and the path it is downloaded as (its replacement's).
	selected := map[string]module.Version{}
	args := []string{"list", "-m", "-json"}
	if opts.Retracted {
		args = append(args, "-retracted")
	}
	args = append(args, "all")
	err = goList(ctx, dir, opts.Env, args, func(m *listModule) error {
		if m.Main {
			return nil
		}
		if r := m.Replace; r != nil {
			if r.Version == "" {
				bl.Local = append(bl.Local, m.Path+" => "+r.Path)
				return nil
			}
			selected[m.Path] = module.Version{Path: r.Path, Version: m.Version}
			m.Path, m.Version, m.Time = r.Path, r.Version, r.Time
		} else {
			selected[m.Path] = module.Version{Path: m.Path, Version: m.Version}
		}
		if err := module.Check(m.Path, m.Version); err != nil {
			return fmt.Errorf("go list: %v", err)
		}
		mod := Module{Path: m.Path, Version: m.Version, Indirect: m.Indirect, Retracted: m.Retracted,
			Sum: sums[m.Path+" "+m.Version]}
		if m.Time != nil {
			mod.Time = *m.Time
		}
		bl.Modules = append(bl.Modules, mod)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if bl.Requires, err = requirements(ctx, dir, opts.Env, bl.Main, selected); err != nil {
		return nil, err
	}
	return bl, nil
}

// requirements reads "go mod graph" and keeps the edges from the main
// module and from each selected version (selected: original path to its
// version and the path it is listed under in the build list) to the
// modules it requires, by their build list paths. A requirement of an
// older version, or of a module replaced by a directory, is no edge of
// the build.
func requirements(ctx context.Context, dir string, env []string, main string, selected map[string]module.Version) (map[string][]string, error) {
	edges := map[string][]string{}
	err := runGo(ctx, dir, env, []string{"mod", "graph"}, func(out io.Reader) error {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			from, to, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
			if !ok {
				continue
			}
			fromPath, fromVersion, _ := strings.Cut(from, "@")
			toPath, _, _ := strings.Cut(to, "@")
			var key string
			if fromVersion == "" && fromPath == main {
				key = main
			} else if sel, ok := selected[fromPath]; ok && sel.Version == fromVersion {
				key = sel.Path
			} else {
				continue
			}
			req, ok := selected[toPath]
			if !ok || slices.Contains(edges[key], req.Path) {
				continue
			}
			edges[key] = append(edges[key], req.Path)
		}
		return sc.Err()
	})
	for _, reqs := range edges {
		slices.Sort(reqs)
	}
	return edges, err
}

// listModule is the part of "go list -m -json" that Load reads.
type listModule struct {
	Path, Version string
	Main          bool
	Indirect      bool
	Time          *time.Time
	Retracted     []string
	Replace       *listModule
}

func goList(ctx context.Context, dir string, env, args []string, each func(*listModule) error) error {
	return runGo(ctx, dir, env, args, func(out io.Reader) error {
		dec := json.NewDecoder(out)
		for {
			var m listModule
			if err := dec.Decode(&m); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := each(&m); err != nil {
				return err
			}
		}
	})
}

// runGo runs the go command in dir and hands its output, bounded, to
// read; the error names the command and quotes what it printed on
// stderr.
func runGo(ctx context.Context, dir string, env, args []string, read func(io.Reader) error) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr limitedBuffer
	stderr.max = maxStderr
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running the go command: %v", err)
	}
	rerr := read(io.LimitReader(out, maxListOutput))
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if werr != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = werr.Error()
		}
		return fmt.Errorf("go %s: %s", strings.Join(args, " "), msg)
	}
	if rerr != nil {
		return fmt.Errorf("go %s: reading its output: %v", strings.Join(args, " "), rerr)
	}
	return nil
}

// ReadGoSum returns the zip hashes of a go.sum, keyed "path version"; the
// /go.mod lines (hashes of go.mod files alone) are left out. A missing
// go.sum is an empty one: a module without requirements has none.
func ReadGoSum(name string) (map[string]string, error) {
	data, err := readBounded(name, maxGoSum)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: malformed line", name, n)
		}
		if strings.HasSuffix(f[1], "/go.mod") || !strings.HasPrefix(f[2], "h1:") {
			continue
		}
		sums[f[0]+" "+f[1]] = f[2]
	}
	return sums, sc.Err()
}

func readBounded(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, max)
	}
	return data, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
