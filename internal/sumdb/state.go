package sumdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/modgate/modgate/internal/store"
)

// tileHeight is the height of the tiles the go command and the databases
// use (x/mod's Client default).
const tileHeight = 8

// state is what modgate has verified of one database, in storage, so that
// it survives restarts, is shared by replicas, and answers clients when the
// database cannot be reached:
//
//	sumdb/<name>/latest                the latest signed tree head verified
//	sumdb/<name>/lookup/<path>@<ver>   lookups verified against an accepted tree
//	sumdb/<name>/tile/<H>/<L>/...      tiles authenticated against an accepted tree
//
// An accepted tree is one that was stored as latest, each consistent with
// the one before. Tiles and lookups are written only once they belong to an
// accepted tree, so whatever is stored is trusted as it is: the tile of a
// position at one width is the prefix of any wider one stored there.
//
// File names are the x/mod Client's cache and configuration names
// ("<name>/latest", "<name>/tile/8/0/000.p/5"), under "sumdb/".
type state struct {
	db        DB
	store     store.Store
	verifiers note.Verifiers // nil when the key does not parse
	keyErr    error

	// The last stored tree head whose signature was checked, so that
	// serving it again costs a comparison, not a signature verification.
	treeMu  sync.Mutex
	treeMsg []byte
	tree    tlog.Tree
}

func newState(db DB, st store.Store) *state {
	s := &state{db: db, store: st}
	v, err := note.NewVerifier(db.Key)
	if err != nil {
		s.keyErr = fmt.Errorf("checksum database %s: invalid key: %v", db.Name, err)
	} else {
		s.verifiers = note.VerifierList(v)
	}
	return s
}

// errNotStored means storage holds nothing from which to answer.
var errNotStored = errors.New("not stored")

func (s *state) key(file string) string { return "sumdb/" + file }

func (s *state) latestFile() string { return s.db.Name + "/latest" }

func (s *state) tileFile(t tlog.Tile) string { return s.db.Name + "/" + t.Path() }

// lookupFile is the x/mod Client's cache file name for a lookup.
func (s *state) lookupFile(path, version string) (string, error) {
	ep, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return "", err
	}
	return s.db.Name + "/lookup/" + ep + "@" + ev, nil
}

func (s *state) read(ctx context.Context, file string) ([]byte, error) {
	data, _, err := s.readVersion(ctx, file)
	return data, err
}

// readVersion is read that also returns the ETag of what it read.
func (s *state) readVersion(ctx context.Context, file string) ([]byte, string, error) {
	data, info, err := store.ReadAll(ctx, s.store, s.key(file), maxRemoteSize)
	if err != nil {
		return nil, "", err
	}
	return data, info.ETag, nil
}

func (s *state) put(ctx context.Context, file string, data []byte) error {
	return s.store.Put(ctx, s.key(file), bytes.NewReader(data))
}

// latest returns the stored signed tree head, empty when there is none.
func (s *state) latest(ctx context.Context) ([]byte, error) {
	data, _, err := s.latestVersion(ctx)
	return data, err
}

// latestVersion returns the stored signed tree head and its ETag, which a
// compare-and-swap (replaceLatest) replaces: empty and store.IfAbsent when
// there is none.
func (s *state) latestVersion(ctx context.Context) ([]byte, string, error) {
	data, etag, err := s.readVersion(ctx, s.latestFile())
	if errors.Is(err, store.ErrNotExist) {
		return []byte{}, store.IfAbsent, nil
	}
	return data, etag, err
}

// swapLatest replaces the stored tree head old by new, or returns
// sumdb.ErrWriteConflict when old is no longer what is stored. Callers
// check that new is consistent with old first.
func (s *state) swapLatest(ctx context.Context, old, new []byte) error {
	cur, etag, err := s.latestVersion(ctx)
	if err != nil {
		return err
	}
	if !bytes.Equal(cur, old) {
		return sumdb.ErrWriteConflict
	}
	return s.replaceLatest(ctx, etag, new)
}

// replaceLatest stores new as the tree head if the stored one is still the
// version etag (store.IfAbsent: none is stored), or returns
// sumdb.ErrWriteConflict. It is the store's conditional put, so that of the
// lookups that checked new trees against one stored head, in this process
// or in another sharing the storage, exactly one moves it; the others read
// the new head and check against that.
func (s *state) replaceLatest(ctx context.Context, etag string, new []byte) error {
	err := store.PutIf(ctx, s.store, s.key(s.latestFile()), bytes.NewReader(new), etag)
	if errors.Is(err, store.ErrPreconditionFailed) {
		return sumdb.ErrWriteConflict
	}
	return err
}

// openTree checks a signed tree head against the database's key.
func (s *state) openTree(msg []byte) (tlog.Tree, error) {
	if s.keyErr != nil {
		return tlog.Tree{}, s.keyErr
	}
	n, err := note.Open(msg, s.verifiers)
	if err != nil {
		return tlog.Tree{}, err
	}
	return tlog.ParseTree([]byte(n.Text))
}

// verifiedTree returns the stored tree head, checked against the key, and
// its signed note (nil, with the empty tree, when none is stored yet).
func (s *state) verifiedTree(ctx context.Context) (tlog.Tree, []byte, error) {
	msg, err := s.latest(ctx)
	if err != nil {
		return tlog.Tree{}, nil, err
	}
	if len(msg) == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return tlog.Tree{N: 0, Hash: h}, nil, nil
	}
	s.treeMu.Lock()
	if bytes.Equal(msg, s.treeMsg) {
		t := s.tree
		s.treeMu.Unlock()
		return t, msg, nil
	}
	s.treeMu.Unlock()
	t, err := s.openTree(msg)
	if err != nil {
		return tlog.Tree{}, nil, fmt.Errorf("stored tree head of checksum database %s does not verify: %v", s.db.Name, err)
	}
	s.treeMu.Lock()
	s.treeMsg, s.tree = msg, t
	s.treeMu.Unlock()
	return t, msg, nil
}

// lookup returns a stored (verified) lookup answer.
func (s *state) lookup(ctx context.Context, path, version string) ([]byte, error) {
	file, err := s.lookupFile(path, version)
	if err != nil {
		return nil, err
	}
	return s.read(ctx, file)
}

// answer is what the proxy serves for a verified lookup: the record with
// the stored tree head, as the database answers a lookup with its current
// tree. Every client then checks every record against one tree, whose tiles
// storage holds (see the top of tiles.go); the record with the tree stored
// with it would make the client prove that older tree consistent with
// newer ones, from tiles modgate may never have needed.
func (s *state) answer(ctx context.Context, rec *record) []byte {
	tree, msg, err := s.verifiedTree(ctx)
	if err != nil || msg == nil || rec.id >= tree.N {
		return rec.raw
	}
	out, err := tlog.FormatRecord(rec.id, rec.text)
	if err != nil {
		return rec.raw
	}
	return append(out, msg...)
}

// tile returns tile t from storage: stored as it is, or cut from a wider
// stored tile of the same position (the complete one, or a wider partial
// one). errNotStored when there is neither.
func (s *state) tile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	if data, err := s.read(ctx, s.tileFile(t)); err == nil {
		if cut, ok := tilePrefix(t, t.W, data); ok {
			return cut, nil
		}
	}
	full := t
	full.W = 1 << uint(t.H)
	if t.W == full.W {
		return nil, errNotStored
	}
	if data, err := s.read(ctx, s.tileFile(full)); err == nil {
		if cut, ok := tilePrefix(t, full.W, data); ok {
			return cut, nil
		}
	}
	// Partial tiles of this position are "<...>/NNN.p/<width>".
	dir := s.key(s.tileFile(t))
	dir = dir[:strings.LastIndexByte(dir, '/')+1]
	wider := 0
	err := s.store.List(ctx, dir, func(key string) error {
		w, err := strconv.Atoi(path.Base(key))
		if err == nil && w > t.W && w < full.W && (wider == 0 || w < wider) {
			wider = w
		}
		return nil
	})
	if err != nil || wider == 0 {
		return nil, errNotStored
	}
	wt := t
	wt.W = wider
	data, err := s.read(ctx, s.tileFile(wt))
	if err != nil {
		return nil, errNotStored
	}
	if cut, ok := tilePrefix(t, wider, data); ok {
		return cut, nil
	}
	return nil, errNotStored
}

// putTile stores an authenticated tile.
func (s *state) putTile(ctx context.Context, t tlog.Tile, data []byte) error {
	return s.put(ctx, s.tileFile(t), data)
}

// tilePrefix returns the first t.W entries of data, a stored tile of t's
// position holding width entries; ok is false when data is malformed.
func tilePrefix(t tlog.Tile, width int, data []byte) ([]byte, bool) {
	if t.L >= 0 {
		if len(data) != width*tlog.HashSize {
			return nil, false
		}
		return data[:t.W*tlog.HashSize], true
	}
	recs, err := splitDataTile(data, width)
	if err != nil {
		return nil, false
	}
	n := 0
	for _, r := range recs[:t.W] {
		n += len(r) + 1
	}
	return data[:n], true
}

// splitDataTile splits a data tile into the texts of its w records. The
// database writes each record's text (lines ending in "\n", no blank line)
// followed by a blank line.
func splitDataTile(data []byte, w int) ([][]byte, error) {
	recs := make([][]byte, 0, w)
	rest := data
	for range w {
		i := bytes.Index(rest, []byte("\n\n"))
		if i < 0 {
			return nil, fmt.Errorf("data tile has %d records, want %d", len(recs), w)
		}
		recs = append(recs, rest[:i+1])
		rest = rest[i+2:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("data tile has more than %d records", w)
	}
	return recs, nil
}

// record is a verified lookup answer.
type record struct {
	raw  []byte // as the database answered: the record, then a signed tree
	id   int64
	text []byte // the record's go.sum lines
}

func parseRecord(raw []byte) (*record, error) {
	id, text, _, err := tlog.ParseRecord(raw)
	if err != nil {
		return nil, err
	}
	return &record{raw: raw, id: id, text: text}, nil
}

// lines returns the go.sum lines of the record for path and version (which
// ends in "/go.mod" for the go.mod hash).
func (r *record) lines(path, version string) []string {
	prefix := path + " " + version + " "
	var out []string
	for line := range strings.SplitSeq(string(r.text), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return out
}
