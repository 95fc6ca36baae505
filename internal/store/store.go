// Package store is modgate's blob storage: a flat namespace of keys holding
// immutable module files (.info, .mod, .zip) and small mutable documents
// (cached lists, checksum-database state).
//
// The interface is deliberately small so that an object store (S3) can
// implement it with one request per call. Every backend must pass the
// compliance suite in package storetest.
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
	// PutFile stores the file at name under key and consumes the file.
	PutFile(ctx context.Context, key, name string) error
}
