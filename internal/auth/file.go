package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The tokens file is JSON, written only by `modgate token` (or an admin's
// editor), read by the server:
//
//	{"tokens": [
//	  {"name": "ci", "hash": "sha256:<64 hex>", "allow": ["*"], "admin": false,
//	   "created": "2026-01-02T03:04:05Z"}
//	]}
//
// Every write replaces the file atomically (temporary file, fsync,
// rename), so that a reader sees the old table or the new one, never half
// of one, and is made under an exclusive lock of the sibling file
// FILE.lock, so that two `modgate token` runs at once cannot lose an
// entry.

// maxFileSize bounds what is read from a tokens file: about 50,000
// tokens, far more than any deployment, and a bound on the memory a
// mistaken path (a log file, a disk image) can take.
const maxFileSize = 16 << 20

type fileData struct {
	Tokens []fileEntry `json:"tokens"`
}

type fileEntry struct {
	Name    string   `json:"name"`
	Hash    string   `json:"hash"`
	Allow   []string `json:"allow"`
	Admin   bool     `json:"admin"`
	Created string   `json:"created"`
}

// entry is a checked token of the file with its digest.
type entry struct {
	Token
	digest [sha256.Size]byte
}

// readFile reads and checks a tokens file. Errors name the file and the
// entry, never a hash.
func readFile(name string) ([]entry, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseFile(name, f)
}

func parseFile(name string, r io.Reader) ([]entry, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading tokens file %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("tokens file %s is larger than %d bytes", name, maxFileSize)
	}
	var fd fileData
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fd); err != nil {
		// A decoding error may quote a key of the file: a token pasted
		// there by mistake must not reach a log.
		return nil, fmt.Errorf("tokens file %s: %s", name, scrub(jsonError(data, err).Error()))
	}
	if dec.More() {
		return nil, fmt.Errorf("tokens file %s: data after the JSON object", name)
	}
	entries := make([]entry, 0, len(fd.Tokens))
	names := make(map[string]bool, len(fd.Tokens))
	digests := make(map[[sha256.Size]byte]bool, len(fd.Tokens))
	for i, fe := range fd.Tokens {
		e, err := fe.check()
		if err != nil {
			return nil, fmt.Errorf("tokens file %s: token %d: %v", name, i+1, err)
		}
		if names[e.Name] {
			return nil, fmt.Errorf("tokens file %s: token name %q appears twice", name, e.Name)
		}
		if digests[e.digest] {
			return nil, fmt.Errorf("tokens file %s: token %q has the hash of an earlier token", name, e.Name)
		}
		names[e.Name], digests[e.digest] = true, true
		entries = append(entries, e)
	}
	return entries, nil
}

// jsonError says where in data a decoding error is, as a line number.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var off int64
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	default:
		return err
	}
	line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
	return fmt.Errorf("line %d: %v", line, err)
}

func (fe fileEntry) check() (entry, error) {
	if err := CheckName(fe.Name); err != nil {
		return entry{}, err
	}
	d, err := parseDigest(fe.Hash)
	if err != nil {
		return entry{}, fmt.Errorf("token %q: %v", fe.Name, err)
	}
	for _, p := range fe.Allow {
		if err := checkPattern(p); err != nil {
			return entry{}, fmt.Errorf("token %q: %v", fe.Name, err)
		}
	}
	created, err := time.Parse(time.RFC3339, fe.Created)
	if err != nil {
		return entry{}, fmt.Errorf("token %q: created is not an RFC 3339 time", fe.Name)
	}
	return entry{
		Token:  Token{Name: fe.Name, Allow: slices.Clone(fe.Allow), Admin: fe.Admin, Created: created},
		digest: d,
	}, nil
}

// writeFile replaces the tokens file name with entries, atomically. The
// caller holds the lock.
func writeFile(name string, entries []entry) error {
	fd := fileData{Tokens: make([]fileEntry, 0, len(entries))}
	for _, e := range entries {
		fd.Tokens = append(fd.Tokens, fileEntry{
			Name:    e.Name,
			Hash:    formatDigest(e.digest),
			Allow:   e.Allow,
			Admin:   e.Admin,
			Created: e.Created.UTC().Format(time.RFC3339),
		})
	}
	data, err := json.MarshalIndent(fd, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	// CreateTemp makes the file 0600 already; say it, in case a umask or
	// a future change thinks otherwise.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// update runs change on the tokens of file name under the file's lock and
// writes the result. A missing file is an empty table when create is
// true, an error otherwise.
func update(name string, create bool, change func([]entry) ([]entry, error)) error {
	unlock, err := lockFile(name + ".lock")
	if err != nil {
		return fmt.Errorf("locking tokens file: %w", err)
	}
	defer unlock()
	entries, err := readFile(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		entries = nil
	case err != nil:
		return err
	}
	entries, err = change(entries)
	if err != nil {
		return err
	}
	return writeFile(name, entries)
}

// Add creates a token named name that may read the modules allow matches
// (see ParsePatterns) and the admin endpoints when admin is true, stores
// its digest in the tokens file (created if missing) and returns the
// token. The token is not stored anywhere: this is the only time it is
// seen.
func Add(file, name string, allow []string, admin bool, now time.Time) (secret string, err error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if len(allow) == 0 {
		return "", errors.New(`a token needs at least one allowed pattern ("*" for every module)`)
	}
	for _, p := range allow {
		if err := checkPattern(p); err != nil {
			return "", err
		}
	}
	secret, err = newSecret()
	if err != nil {
		return "", err
	}
	e := entry{
		Token:  Token{Name: name, Allow: slices.Clone(allow), Admin: admin, Created: now.UTC().Truncate(time.Second)},
		digest: digest(secret),
	}
	err = update(file, true, func(entries []entry) ([]entry, error) {
		for _, old := range entries {
			if old.Name == name {
				return nil, fmt.Errorf("a token named %q exists already (revoke it first, or choose another name)", name)
			}
		}
		return append(entries, e), nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// ErrUnknownToken is Revoke's error for a name the file does not hold.
var ErrUnknownToken = errors.New("no such token")

// Revoke removes the token named name from the tokens file.
func Revoke(file, name string) error {
	return update(file, false, func(entries []entry) ([]entry, error) {
		i := slices.IndexFunc(entries, func(e entry) bool { return e.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("%w named %q in %s", ErrUnknownToken, name, file)
		}
		return slices.Delete(entries, i, i+1), nil
	})
}

// List returns the tokens of the tokens file, in the file's order.
func List(file string) ([]Token, error) {
	entries, err := readFile(file)
	if err != nil {
		return nil, err
	}
	out := make([]Token, len(entries))
	for i, e := range entries {
		out[i] = e.Token
	}
	return out, nil
}

// AllowString is t.Allow as --allow takes it.
func (t Token) AllowString() string { return strings.Join(t.Allow, ",") }
