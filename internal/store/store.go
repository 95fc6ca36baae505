// Package store is modgate's blob storage: a flat namespace of keys holding
// immutable module files (.info, .mod, .zip) and small mutable documents
// (cached lists, checksum-database state).
//
// The interface is deliberately small so that an object store (S3) can
// implement it with one request per call. What a backend can do better than
// the interface allows (a put that knows the size, a conditional put, a
// listing with metadata, taking a local file) are optional capabilities,
// discovered by type assertion in helpers that fall back to the plain
// interface (capability.go). Every backend must pass the compliance suite in
// package storetest; New builds the backend the configuration names.
package store

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// ErrNotExist is returned (possibly wrapped) when a key has no object.
var ErrNotExist = errors.New("object does not exist")

// ErrInvalidKey is returned when a key is not a clean relative slash path.
var ErrInvalidKey = errors.New("invalid storage key")

// ErrPreconditionFailed is returned (possibly wrapped) by a conditional put
// whose condition does not hold: nothing was stored.
var ErrPreconditionFailed = errors.New("precondition failed")

// ErrSizeMismatch is returned (possibly wrapped) by a sized put whose reader
// yields more or fewer bytes than announced: nothing was stored.
var ErrSizeMismatch = errors.New("content size differs from the announced size")

// Info describes a stored object.
type Info struct {
	Size    int64
	ModTime time.Time
	// ETag is a strong validator: it changes whenever the content changes.
	ETag string
}

// Store holds objects by key. Keys are clean slash-separated relative paths
// ("a/b/c.zip"): no empty, "." or ".." elements, no leading slash, no
// backslash, elements of at most MaxKeyElemLen bytes and at most MaxKeyLen
// bytes in all (CheckKey). Callers build keys with the helpers in keys.go.
type Store interface {
	// Open returns the object's content and metadata, or ErrNotExist.
	// Disk backends return an *os.File so net/http can use sendfile.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error)
	// Stat returns the object's metadata, or ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)
	// Put stores the content of r under key, replacing any previous object.
	// It is atomic: readers see either the old object or the complete new one,
	// never a partial write, even if the process dies mid-write.
	Put(ctx context.Context, key string, r io.Reader) error
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn with every key that starts with prefix, in lexical order.
	// Returning an error from fn stops the walk and returns that error.
	List(ctx context.Context, prefix string, fn func(key string) error) error
	// Ping checks that the backend is usable (for readiness probes).
	Ping(ctx context.Context) error
}

// Optional capabilities. A backend implements the ones it can do better
// than the fallback that the helper of the same name (capability.go) uses
// with any Store; callers use the helpers, never a type assertion of their
// own, so that the request path is the same for every backend. The
// compliance suite (storetest) tests each capability a store implements
// and the fallbacks over every store.

// SizedPutter is implemented by stores that do better when they know an
// object's size before reading it: an object store streams a multipart
// upload in parts of a size chosen from it instead of buffering, or sends
// one request with a Content-Length.
type SizedPutter interface {
	// PutSized is Put for content of exactly size bytes. If r yields more
	// or fewer, it stores nothing and returns an error that is
	// ErrSizeMismatch (a previous object is intact).
	PutSized(ctx context.Context, key string, r io.Reader, size int64) error
}

// IfAbsent is the ETag to give a conditional put that must create the
// object: the key must have none.
const IfAbsent = ""

// ConditionalPutter is implemented by stores that can replace an object
// only if it is still the one the caller read: the compare-and-swap of
// small mutable documents (the checksum database's tree head) between
// processes that share the storage.
type ConditionalPutter interface {
	// PutIf is Put on condition. With ifMatch == IfAbsent the key must
	// have no object; otherwise its object's ETag (Info.ETag) must be
	// ifMatch. If the condition does not hold when the new object would
	// replace the old one, it stores nothing and returns an error that is
	// ErrPreconditionFailed.
	//
	// Conditional puts of one key are atomic with respect to each other,
	// in all processes using the storage: of two that read the same
	// object and race to replace it, exactly one succeeds. A plain Put or
	// Delete of the same key is not ordered with them on every backend:
	// keep a document that needs the compare-and-swap to conditional puts.
	PutIf(ctx context.Context, key string, r io.Reader, ifMatch string) error
}

// InfoLister is implemented by stores whose listing carries each object's
// metadata at no extra cost (an object store's list pages do; a directory
// read needs one stat per entry, but no open).
type InfoLister interface {
	// ListInfo is List with each key's Info, as Stat would return it. An
	// object removed between the listing and its Stat is left out.
	ListInfo(ctx context.Context, prefix string, fn func(key string, info Info) error) error
}

// FilePutter is implemented by stores that can take a local file as an
// object more cheaply than by reading it (the disk store renames it).
type FilePutter interface {
	// StagingDir is the directory CreateTemp creates files in.
	StagingDir() string
	// CreateTemp creates a new file in StagingDir (pattern as for
	// os.CreateTemp) that the store's cleanup of interrupted writes leaves
	// alone while it is open. Keep it open until PutFile returns, then
	// close it; if the process dies, the cleanup removes it.
	CreateTemp(pattern string) (*os.File, error)
	// PutFile stores the file at name under key and consumes it: on
	// success name is gone, moved or removed, except where a file still
	// open cannot be removed (Windows). The caller removes name afterwards
	// in any case, which also covers the failures after which it remains.
	PutFile(ctx context.Context, key, name string) error
}

// StagingCleaner is implemented by stores whose interrupted writes (a
// process killed in the middle of a Put) leave debris behind that takes
// space: the disk store's staging files. A server calls it periodically.
type StagingCleaner interface {
	// CleanStaging removes what interrupted writes left, never a write in
	// progress (in this process or another), and says how many files and
	// bytes it removed.
	CleanStaging(ctx context.Context) (removed int, bytes int64, err error)
}
