package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pollInterval is how often a Store looks at its file: the longest a
// revoked token keeps working.
const pollInterval = time.Second

// Store is the tokens file as the server uses it: a table by digest,
// replaced whenever the file changes (checked once a second by size,
// modification time and inode, so that both an atomic replace by
// `modgate token` and an edit in place are seen). A file that does not
// parse on reload is logged and the previous table stays in use: a typo
// must not lock every client out, nor let anyone in.
type Store struct {
	path  string
	log   *slog.Logger
	table atomic.Pointer[table]

	info os.FileInfo // of the file the table was read from; poller only
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type table struct {
	byDigest map[[sha256.Size]byte]*grant
}

// grant is a token of the table with what the gate needs of it.
type grant struct {
	Token
	digest   [sha256.Size]byte
	patterns string // Allow, comma-separated, for module.MatchPrefixPatterns
}

// Open reads the tokens file path and starts watching it. A missing or
// broken file is an error: a server must not start with authentication
// on and no way to authenticate. Close stops the watching.
func Open(path string, log *slog.Logger) (*Store, error) {
	return open(path, log, pollInterval)
}

func open(path string, log *slog.Logger, interval time.Duration) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	t, info, err := load(path)
	if err != nil {
		return nil, err
	}
	s.table.Store(t)
	s.info = info
	if info.Mode().Perm()&0o022 != 0 {
		// Whoever can write the file can give themselves a token.
		log.Warn("tokens file is writable by others than its owner; chmod 600 it", "file", path, "mode", info.Mode().Perm().String())
	}
	log.Info("tokens loaded", "file", path, "tokens", len(t.byDigest))
	go s.watch(interval)
	return s, nil
}

// load reads the file and returns its table and the FileInfo of the very
// file it read (the one opened, not whatever the path names a moment
// later).
func load(path string) (*table, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	entries, err := parseFile(path, f)
	if err != nil {
		return nil, info, err
	}
	t := &table{byDigest: make(map[[sha256.Size]byte]*grant, len(entries))}
	for _, e := range entries {
		t.byDigest[e.digest] = &grant{Token: e.Token, digest: e.digest, patterns: strings.Join(e.Allow, ",")}
	}
	return t, info, nil
}

func (s *Store) watch(interval time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			s.reloadIfChanged()
		}
	}
}

// reloadIfChanged re-reads the file when it is not the one last read.
func (s *Store) reloadIfChanged() {
	info, err := os.Stat(s.path)
	if err != nil {
		if !sameFile(s.info, nil) {
			s.log.Error("tokens file unreadable; keeping the tokens loaded before", "file", s.path, "err", scrub(err.Error()))
			s.info = nil
		}
		return
	}
	if sameFile(s.info, info) {
		return
	}
	t, read, err := load(s.path)
	if read != nil {
		// Remember even a broken file, so that it is logged once and the
		// next change (the fix) is seen.
		s.info = read
	}
	if err != nil {
		s.log.Error("tokens file changed but is not valid; keeping the tokens loaded before", "file", s.path, "err", scrub(err.Error()))
		return
	}
	s.table.Store(t)
	s.log.Info("tokens file reloaded", "file", s.path, "tokens", len(t.byDigest))
}

// sameFile reports whether a and b describe the same file in the same
// state.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// secretPattern finds something that looks like a token in text, so that
// a token pasted into the file by mistake is not repeated into the log.
var secretPattern = regexp.MustCompile(SecretPrefix + `[A-Za-z0-9_-]+`)

func scrub(s string) string {
	return secretPattern.ReplaceAllString(s, SecretPrefix+"[redacted]")
}

// Authenticate returns the token whose secret is secret.
func (s *Store) Authenticate(secret string) (Token, bool) {
	g, ok := s.lookup(secret)
	if !ok {
		return Token{}, false
	}
	return g.Token, true
}

// lookup finds the grant of secret. The map lookup by digest reveals, by
// its timing, at most something about the digest of a guess, which is
// worthless without the secret; the final comparison is constant-time
// all the same, so that no code path compares secret material byte by
// byte with an early exit.
func (s *Store) lookup(secret string) (*grant, bool) {
	if secret == "" {
		return nil, false
	}
	d := digest(secret)
	g, ok := s.table.Load().byDigest[d]
	if !ok || subtle.ConstantTimeCompare(g.digest[:], d[:]) != 1 {
		return nil, false
	}
	return g, true
}

// Close stops watching the file. Authenticate keeps answering from the
// last table.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
	})
	return nil
}
