// Package source is where module files come from when they are not stored
// yet: an upstream proxy chain in GOPROXY syntax (Chain of Upstreams), and
// in front of it a Router that sends the modules matching a route's path
// patterns to that route's source instead (the git source of --private,
// package gitsource).
//
// A Source returns raw bytes exactly as the origin served them; checking
// that they are what they claim to be is the caller's job (package modcheck).
package source

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/modgate/modgate/internal/proxylist"
	"github.com/modgate/modgate/internal/redact"
)

// Source fetches module files from one origin or a chain of them.
type Source interface {
	// List returns the versions the origin knows, unfiltered, one entry per
	// version: the version, followed by a space and the time the origin
	// gave for it when its @v/list line had one ("v1.0.0 2019-03-01T12:00:00Z").
	List(ctx context.Context, path string) ([]string, error)
	// Latest returns the .info JSON of the origin's idea of the latest version.
	Latest(ctx context.Context, path string) ([]byte, error)
	// Info returns the .info JSON for a version or a query (branch, commit prefix).
	Info(ctx context.Context, path, query string) ([]byte, error)
	// GoMod returns the go.mod of a canonical version.
	GoMod(ctx context.Context, path, version string) ([]byte, error)
	// Zip streams the module zip of a canonical version. The caller closes it.
	Zip(ctx context.Context, path, version string) (io.ReadCloser, error)
	// String names the source in error messages and logs.
	String() string
}

// ErrNotFound marks answers meaning "this origin does not have it, or will
// not serve it" (an upstream's 404 and 410, and its refusals: 403 "not
// available", 400 "module host not permitted"). The chain falls through to
// its next entry on them, and the HTTP layer turns them into 404 so that the
// go command falls through to its next GOPROXY.
var ErrNotFound = errors.New("not found")

// NotFoundError is an ErrNotFound with the origin's explanation.
type NotFoundError struct {
	Source string // which origin said so; empty when Msg already says
	Msg    string // its one-line reason, may be empty
}

// Error redacts credentials once more: Msg may come from storage (a cached
// not-found answer written by an older modgate) or from a caller that did
// not redact. Source is redacted as the URL it is, like Upstream.String,
// not as free text, which would take the ":" after it for part of the URL.
func (e *NotFoundError) Error() string {
	switch {
	case e.Source == "":
		return redact.Text(e.Msg)
	case e.Msg == "":
		return redactedName(e.Source) + ": not found"
	}
	return redactedName(e.Source) + ": " + redact.Text(e.Msg)
}

func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// FetchError is a failure to get an answer from an origin: it was
// unreachable, timed out, or answered with a status that is not about the
// module (401, 407, 429, 5xx).
type FetchError struct {
	Source  string
	Op      string // what was being fetched, e.g. "golang.org/x/mod@v0.1.0 .zip"
	Status  int    // HTTP status, 0 when no response arrived
	Timeout bool
	Err     error
	// Advice says what to do about it, for the client's error line:
	// "check modgate's credentials for git.corp.example.com". Empty: check
	// the upstream list and the network.
	Advice string
}

// Error never shows credentials, whoever filled in the fields: Source is
// an upstream's name and Err may quote a request URL.
func (e *FetchError) Error() string {
	src, cause := redactedName(e.Source), redact.Text(fmt.Sprint(e.Err))
	if e.Status != 0 {
		return fmt.Sprintf("%s answered %d for %s: %s", src, e.Status, e.Op, cause)
	}
	return fmt.Sprintf("fetching %s from %s: %s", e.Op, src, cause)
}

func (e *FetchError) Unwrap() error { return e.Err }

// redactedName is an origin's name or URL with its credentials masked, in a
// form that redacts to itself (proxylist.Redact): a Chain's String must
// parse back to the same list.
func redactedName(base string) string { return proxylist.Redact(base) }

// ErrTooLarge is returned when an origin sends more than a file may hold.
var ErrTooLarge = errors.New("response exceeds the size limit")
