package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"sync"
)

// The helpers below are how callers use the optional capabilities: each
// calls the store's own implementation when it has one, and otherwise does
// the same with the plain Store methods, as well as they allow.

// PutSized stores the content of r, exactly size bytes, under key, like
// SizedPutter.PutSized. Without the capability it is Put with the size
// checked as r is read: too few or too many bytes fail the Put, which then
// stores nothing.
func PutSized(ctx context.Context, s Store, key string, r io.Reader, size int64) error {
	if sp, ok := s.(SizedPutter); ok {
		return sp.PutSized(ctx, key, r, size)
	}
	if size < 0 {
		return fmt.Errorf("store: put %q: negative size %d", key, size)
	}
	return s.Put(ctx, key, &exactReader{r: r, size: size})
}

// exactReader passes on the content of r and fails the read, with
// ErrSizeMismatch, as soon as r turns out to hold more or fewer than size
// bytes. A Put reading it stores nothing then, as for any failing reader.
type exactReader struct {
	r    io.Reader
	size int64 // announced
	n    int64 // read so far
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n == e.size {
		return 0, e.atEnd()
	}
	if rest := e.size - e.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := e.r.Read(p)
	e.n += int64(k)
	if err == io.EOF && e.n < e.size {
		return k, fmt.Errorf("%w: %d bytes, announced %d", ErrSizeMismatch, e.n, e.size)
	}
	return k, err
}

// atEnd checks, once size bytes have been read, that r has no more.
func (e *exactReader) atEnd() error {
	var one [1]byte
	// As io.ReadAtLeast: a reader that keeps returning nothing is broken.
	for range 100 {
		k, err := e.r.Read(one[:])
		if k > 0 {
			return fmt.Errorf("%w: more than the announced %d bytes", ErrSizeMismatch, e.size)
		}
		if err != nil {
			return err // io.EOF: exactly size bytes
		}
	}
	return io.ErrNoProgress
}

// PutIf stores the content of r under key if the key's object has the ETag
// ifMatch, or if the key has no object when ifMatch is IfAbsent, like
// ConditionalPutter.PutIf; otherwise it returns an error that is
// ErrPreconditionFailed.
//
// Without the capability it compares the Stat of the key and then Puts,
// serialized with the other fallback PutIfs of this process only: another
// process sharing the storage may replace the object in between. Stores
// that processes share implement ConditionalPutter.
func PutIf(ctx context.Context, s Store, key string, r io.Reader, ifMatch string) error {
	if cp, ok := s.(ConditionalPutter); ok {
		return cp.PutIf(ctx, key, r, ifMatch)
	}
	if err := CheckKey(key); err != nil {
		return err
	}
	mu := &fallbackPutIfLocks[maphash.String(fallbackPutIfSeed, key)%uint64(len(fallbackPutIfLocks))]
	mu.Lock()
	defer mu.Unlock()
	info, err := s.Stat(ctx, key)
	switch {
	case errors.Is(err, ErrNotExist):
		info = Info{} // its ETag is IfAbsent
	case err != nil:
		return err
	}
	if err := checkCondition(key, info.ETag, ifMatch); err != nil {
		return err
	}
	return s.Put(ctx, key, r)
}

// fallbackPutIfLocks serialize the fallback of PutIf in this process, by
// key (different keys may share a lock: a conditional put is rare and short).
var (
	fallbackPutIfLocks [64]sync.Mutex
	fallbackPutIfSeed  = maphash.MakeSeed()
)

// checkCondition returns ErrPreconditionFailed, explained, unless the
// object's ETag (IfAbsent when there is none) is ifMatch.
func checkCondition(key, etag, ifMatch string) error {
	switch {
	case etag == ifMatch:
		return nil
	case ifMatch == IfAbsent:
		return fmt.Errorf("store: put %q: %w: the object exists", key, ErrPreconditionFailed)
	case etag == IfAbsent:
		return fmt.Errorf("store: put %q: %w: the object does not exist", key, ErrPreconditionFailed)
	default:
		return fmt.Errorf("store: put %q: %w: the object has changed (ETag %s, not %s)", key, ErrPreconditionFailed, etag, ifMatch)
	}
}

// ListInfo calls fn with every key that starts with prefix, in lexical
// order, and its Info, like InfoLister.ListInfo. Without the capability it
// Stats each listed key; keys removed in between are left out.
func ListInfo(ctx context.Context, s Store, prefix string, fn func(key string, info Info) error) error {
	if il, ok := s.(InfoLister); ok {
		return il.ListInfo(ctx, prefix, fn)
	}
	return s.List(ctx, prefix, func(key string) error {
		info, err := s.Stat(ctx, key)
		if errors.Is(err, ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(key, info)
	})
}

// PutFile stores the local file at name under key, like
// FilePutter.PutFile. Without the capability it reads the file into the
// store with PutSized, then removes it. The caller removes name afterwards
// in any case, for the failures after which it remains.
func PutFile(ctx context.Context, s Store, key, name string) error {
	if fp, ok := s.(FilePutter); ok {
		return fp.PutFile(ctx, key, name)
	}
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	if err := PutSized(ctx, s, key, f, fi.Size()); err != nil {
		return err
	}
	os.Remove(name) // where an open file can be removed; else the caller's
	return nil
}
