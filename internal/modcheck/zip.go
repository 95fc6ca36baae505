package modcheck

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// A module zip is checked and hashed here in one pass: its central
// directory is read once, its names are checked as the go command checks
// them before extracting (golang.org/x/mod/zip.CheckZip), and each file is
// decompressed once, straight into its SHA-256, to give the h1: hash the go
// command records in go.sum (golang.org/x/mod/sumdb/dirhash.HashZip).
// Decompressing and hashing are nearly all of the cost (the 36 MB zip of
// aws-sdk-go, 309 MB of files, takes about a second of CPU), so they are
// done once, and only when a hash is needed: CheckZipNoHash leaves them out,
// HashZip does them alone, later.

// CheckZip checks the module zip file of path@version the way the go
// command does before it extracts one, and returns its h1: hash for go.sum.
// Every file is decompressed (which also checks its CRC-32 and declared
// size): a zip whose content is damaged is refused.
func CheckZip(file, path, version string) (h1 string, err error) {
	z, err := openZip(file, path, version)
	if err != nil {
		return "", err
	}
	defer z.close()
	h1, err = hashEntries(z.File, hashWorkers(z.File))
	if errors.As(err, new(*fs.PathError)) {
		return "", localError(err)
	}
	if err != nil {
		return "", fmt.Errorf("invalid module zip: %v", err)
	}
	return h1, nil
}

// CheckZipNoHash checks the names, sizes and layout of the module zip file
// of path@version as CheckZip does, from the zip's central directory alone:
// no file is decompressed, so it costs a few milliseconds where CheckZip may
// take a second. It does not find damaged file content (a bad CRC-32,
// a corrupt deflate stream, a size that lies); HashZip does, and the go
// command itself refuses such a zip when it hashes it after downloading.
// Use it when nothing needs the hash before the zip is served.
func CheckZipNoHash(file, path, version string) error {
	z, err := openZip(file, path, version)
	if err != nil {
		return err
	}
	z.close()
	return nil
}

// HashZip returns the h1: hash of the module zip of size bytes in r, as
// golang.org/x/mod/sumdb/dirhash.HashZip computes it (every entry is
// hashed, whatever its name), and an error if the zip or any file's content
// is damaged. It takes an io.ReaderAt rather than a name so that a caller
// can hash a file it still holds open after having moved it into storage
// or removed it.
//
// A failure to read r that is the reader's, not the zip's (an
// *fs.PathError, as an *os.File's ReadAt gives), is returned wrapping
// ErrUnreadable: the zip may be fine, and must not be discarded for it.
func HashZip(r io.ReaderAt, size int64) (h1 string, err error) {
	zr, err := newZipReader(r, size)
	if err == nil {
		h1, err = hashEntries(zr.File, hashWorkers(zr.File))
	}
	if errors.As(err, new(*fs.PathError)) {
		return "", localError(err)
	}
	return h1, err
}

// checkedZip is a zip file whose central directory passed the checks.
type checkedZip struct {
	*zip.Reader
	f *os.File
}

func (z *checkedZip) close() { z.f.Close() }

// openZip opens file and checks it and its central directory as
// golang.org/x/mod/zip.CheckZip does, with the same errors (prefixed
// "invalid module zip: "); a file it cannot open or read gives a
// localError instead.
func openZip(file, path, version string) (*checkedZip, error) {
	invalid := func(err error) (*checkedZip, error) {
		return nil, fmt.Errorf("invalid module zip: %v", err)
	}
	if v := module.CanonicalVersion(version); v != version {
		return invalid(fmt.Errorf("version %q is not canonical (should be %q)", version, v))
	}
	if err := module.Check(path, version); err != nil {
		return invalid(err)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, localError(err)
	}
	z, err := checkCentralDirectory(f, path, version)
	if err != nil {
		f.Close()
		if errors.As(err, new(*fs.PathError)) {
			return nil, localError(err)
		}
		return invalid(err)
	}
	return &checkedZip{Reader: z, f: f}, nil
}

// localError is the error of a zip file that could not be opened or read
// (too many open files, an I/O error): the fault of the machine checking
// it, not of the zip. It keeps the *fs.PathError, whose path is a file of
// the caller's, so that the caller can tell it from an invalid zip and
// keep the path to itself.
func localError(err error) error {
	return fmt.Errorf("%w: %w", ErrUnreadable, err)
}

// ErrUnreadable marks a zip that could not be opened or read, as opposed
// to one that is invalid or damaged.
var ErrUnreadable = errors.New("reading the module zip to check it")

func checkCentralDirectory(f *os.File, path, version string) (*zip.Reader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size > modzip.MaxZipFile {
		return nil, fmt.Errorf("module zip file is too large (%d bytes; limit is %d bytes)", size, modzip.MaxZipFile)
	}
	z, err := newZipReader(f, size)
	if err != nil {
		return nil, err
	}
	if err := checkNames(z.File, path+"@"+version+"/"); err != nil {
		return nil, err
	}
	return z, nil
}

// checkNames applies the per-file rules of golang.org/x/mod/zip.CheckZip
// (x/mod v0.43.0, zip.go, checkZip) to a zip's entries: the path@version/
// prefix, clean and valid file paths, no two paths equal under Unicode case
// folding, no file that is also a directory, go.mod only at the root and in
// lower case, and the size limits. x/mod exports these rules only as
// CheckZip, which opens the file and reads its central directory itself,
// and as CheckFiles, whose rules are those for creating a zip from a source
// tree (it omits vendored and nested-module files where CheckZip refuses
// them). The loop is therefore a transcription of checkZip's, built on the
// exported pieces (module.CheckFilePath, the limits, the error types), and
// FuzzCheckZip holds it to modzip.CheckZip's verdict.
func checkNames(files []*zip.File, prefix string) error {
	var cf modzip.CheckedFiles
	addError := func(zf *zip.File, err error) {
		cf.Invalid = append(cf.Invalid, modzip.FileError{Path: zf.Name, Err: err})
	}
	collisions := make(collisionChecker)
	var size int64
	for _, zf := range files {
		if !strings.HasPrefix(zf.Name, prefix) {
			addError(zf, fmt.Errorf("path does not have prefix %q", prefix))
			continue
		}
		name := zf.Name[len(prefix):]
		if name == "" {
			continue
		}
		isDir := strings.HasSuffix(name, "/")
		if isDir {
			name = name[:len(name)-1]
		}
		if path.Clean(name) != name {
			addError(zf, errors.New("file path is not clean"))
			continue
		}
		if err := module.CheckFilePath(name); err != nil {
			addError(zf, err)
			continue
		}
		if err := collisions.check(name, isDir); err != nil {
			addError(zf, err)
			continue
		}
		if isDir {
			continue
		}
		if base := path.Base(name); strings.EqualFold(base, "go.mod") {
			if base != name {
				addError(zf, errors.New("go.mod file not in module root directory"))
				continue
			}
			if name != "go.mod" {
				addError(zf, errors.New("go.mod files must have lowercase names"))
				continue
			}
		}
		sz := int64(zf.UncompressedSize64)
		if sz >= 0 && modzip.MaxZipFile-size >= sz {
			size += sz
		} else if cf.SizeError == nil {
			cf.SizeError = fmt.Errorf("total uncompressed size of module contents too large (max size is %d bytes)", modzip.MaxZipFile)
		}
		if name == "go.mod" && sz > modzip.MaxGoMod {
			addError(zf, fmt.Errorf("go.mod file too large (max size is %d bytes)", modzip.MaxGoMod))
			continue
		}
		if name == "LICENSE" && sz > modzip.MaxLICENSE {
			addError(zf, fmt.Errorf("LICENSE file too large (max size is %d bytes)", modzip.MaxLICENSE))
			continue
		}
	}
	return cf.Err()
}

// collisionChecker finds paths equal under Unicode case folding, and paths
// used both as a file and as a directory; a transcription of the unexported
// type of the same name in golang.org/x/mod/zip.
type collisionChecker map[string]pathInfo

type pathInfo struct {
	path  string
	isDir bool
}

func (cc collisionChecker) check(p string, isDir bool) error {
	fold := strToFold(p)
	if other, ok := cc[fold]; ok {
		if p != other.path {
			return fmt.Errorf("case-insensitive file name collision: %q and %q", other.path, p)
		}
		if isDir != other.isDir {
			return fmt.Errorf("entry %q is both a file and a directory", p)
		}
		if !isDir {
			return fmt.Errorf("multiple entries for file %q", p)
		}
		// The same directory is checked again for each file under it.
	} else {
		cc[fold] = pathInfo{path: p, isDir: isDir}
	}
	if parent := path.Dir(p); parent != "." {
		return cc.check(parent, true)
	}
	return nil
}

// strToFold returns a string with the property that
// strings.EqualFold(s, t) iff strToFold(s) == strToFold(t).
func strToFold(s string) string {
	// Fast path: all ASCII, no upper case, as most paths are.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return strToFoldSlow(s)
		}
	}
	return s
}

func strToFoldSlow(s string) string {
	var buf bytes.Buffer
	for _, r := range s {
		// SimpleFold(x) cycles to the next equivalent rune > x or wraps
		// around to smaller values: iterate until it wraps, to the
		// smallest.
		for {
			r0 := r
			r = unicode.SimpleFold(r0)
			if r <= r0 {
				break
			}
		}
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		buf.WriteRune(r)
	}
	return buf.String()
}

const (
	// parallelHashBytes is the declared uncompressed size from which a
	// zip's files are hashed by several goroutines: a few milliseconds of
	// work, where starting them costs microseconds. Below it, one.
	parallelHashBytes = 1 << 20
	// maxHashWorkers bounds the goroutines hashing one zip. A cold fetch
	// waits for its zip's hash; the go command keeps only GOMAXPROCS
	// downloads in flight, so while one zip is hashed the other cores
	// mostly wait on the network.
	maxHashWorkers = 4
)

// inflaters are deflate decompressors with their input buffers, reused
// from file to file. archive/zip's own reads the compressed data 4 KiB at a
// time, each read a system call: hashing the 36 MB aws-sdk-go zip spent
// 260 ms of its second of CPU in them, and 120 ms with 64 KiB reads (what
// is left are the reads of each file's local header).
var inflaters sync.Pool

const inflateBufferSize = 64 << 10

// inflater is one pooled decompressor, handed out by newInflater.
type inflater struct {
	br *bufio.Reader
	fr io.ReadCloser // a flate.Resetter
}

// newInflater is a zip.Decompressor that reuses pooled decompressors.
func newInflater(r io.Reader) io.ReadCloser {
	inf, _ := inflaters.Get().(*inflater)
	if inf == nil {
		inf = &inflater{br: bufio.NewReaderSize(r, inflateBufferSize)}
		inf.fr = flate.NewReader(inf.br)
	} else {
		inf.br.Reset(r)
		inf.fr.(flate.Resetter).Reset(inf.br, nil)
	}
	return &pooledInflater{inf: inf}
}

// pooledInflater gives its inflater back to the pool on the first Close.
type pooledInflater struct {
	inf *inflater
}

func (p *pooledInflater) Read(b []byte) (int, error) {
	if p.inf == nil {
		return 0, errors.New("read after close")
	}
	return p.inf.fr.Read(b)
}

func (p *pooledInflater) Close() error {
	if p.inf == nil {
		return nil
	}
	err := p.inf.fr.Close()
	p.inf.br.Reset(nil)
	inflaters.Put(p.inf)
	p.inf = nil
	return err
}

// newZipReader opens the zip of size bytes in r, decompressing with the
// pooled decompressors.
func newZipReader(r io.ReaderAt, size int64) (*zip.Reader, error) {
	z, err := zip.NewReader(r, size)
	if err != nil {
		return nil, err
	}
	z.RegisterDecompressor(zip.Deflate, newInflater)
	return z, nil
}

// hashWorkers returns how many goroutines should hash files.
func hashWorkers(files []*zip.File) int {
	var total uint64
	for _, zf := range files {
		total += min(zf.UncompressedSize64, parallelHashBytes)
		if total >= parallelHashBytes {
			return min(runtime.GOMAXPROCS(0), maxHashWorkers)
		}
	}
	return 1
}

// hashEntries returns the h1: hash of a zip's entries, equal to what
// golang.org/x/mod/sumdb/dirhash.HashZip returns for the zip: the SHA-256
// of one line "<hex SHA-256 of the content>  <name>\n" per entry, in sorted
// name order, in base64 after "h1:". An entry name that occurs twice is
// listed twice, with the content of its last occurrence (HashZip looks
// names up in a map). Files are decompressed in the zip's own order, which
// reads the file front to back, by up to workers goroutines.
func hashEntries(files []*zip.File, workers int) (string, error) {
	last := make(map[string]int, len(files))
	for i, zf := range files {
		if strings.Contains(zf.Name, "\n") {
			return "", errors.New("dirhash: filenames with newlines are not supported")
		}
		last[zf.Name] = i
	}
	todo := make([]int, 0, len(last))
	for i, zf := range files {
		if last[zf.Name] == i {
			todo = append(todo, i)
		}
	}
	sums := make([][sha256.Size]byte, len(files))
	if err := hashContents(files, todo, sums, workers); err != nil {
		return "", err
	}

	names := make([]string, len(files))
	for i, zf := range files {
		names[i] = zf.Name
	}
	slices.Sort(names)
	summary := sha256.New()
	line := make([]byte, 0, 2*sha256.Size+2+256)
	for _, name := range names {
		sum := sums[last[name]]
		line = hex.AppendEncode(line[:0], sum[:])
		line = append(line, "  "...)
		line = append(line, name...)
		line = append(line, '\n')
		summary.Write(line)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(summary.Sum(nil)), nil
}

// hashContents sets sums[i] to the SHA-256 of the decompressed content of
// files[i] for each i in todo, in that order, by up to workers goroutines
// (archive/zip reads files concurrently). On failure it returns the error
// of the first failing file in todo's order, so that the message does not
// depend on scheduling: workers stop taking files after a failure, and
// every file before it has been taken already.
func hashContents(files []*zip.File, todo []int, sums [][sha256.Size]byte, workers int) error {
	workers = max(1, min(workers, len(todo)))
	errs := make([]error, len(todo))
	var next atomic.Int64
	var failed atomic.Bool
	work := func() {
		buf := make([]byte, 32<<10)
		h := sha256.New()
		for !failed.Load() {
			k := int(next.Add(1) - 1)
			if k >= len(todo) {
				return
			}
			zf := files[todo[k]]
			h.Reset()
			if err := hashFile(h, zf, buf); err != nil {
				errs[k] = fmt.Errorf("%s: %w", zf.Name, err)
				failed.Store(true)
				return
			}
			h.Sum(sums[todo[k]][:0])
		}
	}
	if workers == 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(work)
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// hashFile writes the decompressed content of zf to w. archive/zip checks
// the content's CRC-32 and its declared size as it is read.
func hashFile(w io.Writer, zf *zip.File, buf []byte) error {
	rc, err := zf.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.CopyBuffer(w, rc, buf)
	return err
}
