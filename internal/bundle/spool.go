package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
)

// spool keeps small files (go.mod, .info, the database's answers) in one
// scratch file while a bundle is written or checked, so that memory does
// not grow with the size of a build graph: only an index is held.
type spool struct {
	f *os.File

	mu    sync.Mutex
	end   int64
	index map[string]span
}

type span struct{ off, n int64 }

// scratchSpace makes a directory for one export or import under parent
// ("" for the system's temporary directory), with a spool in it; done
// removes both.
func scratchSpace(parent string) (dir string, sp *spool, done func(), err error) {
	dir, err = os.MkdirTemp(parent, "modgate-bundle-")
	if err != nil {
		return "", nil, nil, fmt.Errorf("scratch space: %w", err)
	}
	if sp, err = newSpool(dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, err
	}
	return dir, sp, func() {
		sp.close()
		os.RemoveAll(dir)
	}, nil
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "bundle-spool-*")
	if err != nil {
		return nil, fmt.Errorf("scratch space: %w", err)
	}
	return &spool{f: f, index: map[string]span{}}, nil
}

// put keeps data under name, unless name is kept already.
func (s *spool) put(name string, data []byte) error {
	s.mu.Lock()
	if _, ok := s.index[name]; ok {
		s.mu.Unlock()
		return nil
	}
	off := s.end
	s.end += int64(len(data))
	s.mu.Unlock()
	if _, err := s.f.WriteAt(data, off); err != nil {
		return fmt.Errorf("scratch space: %w", err)
	}
	s.mu.Lock()
	s.index[name] = span{off, int64(len(data))}
	s.mu.Unlock()
	return nil
}

// get returns what is kept under name; ok is false when nothing is.
func (s *spool) get(name string) (data []byte, ok bool, err error) {
	s.mu.Lock()
	sp, ok := s.index[name]
	s.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	data = make([]byte, sp.n)
	if _, err := s.f.ReadAt(data, sp.off); err != nil {
		return nil, true, fmt.Errorf("scratch space: %w", err)
	}
	return data, true, nil
}

// close removes the scratch file.
func (s *spool) close() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// digest is the hex SHA-256 of data.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
