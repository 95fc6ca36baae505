// Package protocol is the module proxy protocol as a Go interface: the five
// questions a GOPROXY answers (Modules), and answers that say where they
// came from (File, Versions, Provenance).
//
// The HTTP handler (package goproxy) talks to a Modules and to nothing else;
// the module cache (package cache) is the Modules that answers from storage
// and fetches what is missing. What comes between the two (authentication,
// policy, audit, metrics, speculative prefetch) is a wrapper: a
// func(Modules) Modules whose result answers by asking the Modules it wraps,
// as Go's cmd/go/internal/modfetch wraps any Repo in a cachingRepo. A
// wrapper embeds the Modules it wraps and overrides only what it changes:
//
//	type audited struct {
//		protocol.Modules // List, Latest, Info and GoMod pass through
//		log *slog.Logger
//	}
//
//	func (a *audited) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
//		f, err := a.Modules.Zip(ctx, path, version)
//		if err == nil {
//			a.log.Info("zip", "module", path, "version", version, "stored", f.Stored, "origin", f.Origin)
//		}
//		return f, err
//	}
//
// # Filtering versions
//
// A policy that hides versions (a deny list, a minimum release age) must
// hide them from @v/list and from the choice of @latest, answers the cache
// already holds included. It needs nothing from the cache but this
// interface:
//
//   - List: the inner List, less the hidden versions (Tagged and Pseudo are
//     the caller's to modify).
//   - Latest: the inner Latest when its Version is not hidden: with nothing
//     hidden, the wrapper changes nothing. Otherwise close it, take the
//     filtered List, let PickLatest choose among what is left as the go
//     command would, and answer with the inner Info of that version, marked
//     Mutable (and Degraded when the list was).
//   - Info, GoMod, Zip of a hidden version: refused with the policy's error;
//     for a query (a branch), once the inner Info has resolved it: the
//     File's Version is the version it names.
//
// filter_test.go is such a wrapper, over a real cache.
//
// # Contract
//
// Callers check requests before asking: path is a valid module path
// (module.CheckPath), a canonical-looking query suits the path
// (module.Check), and GoMod and Zip are asked only for versions for which
// IsCanonical holds. The caller of a method that returns a File closes its
// Content. Not-found answers satisfy errors.Is(err, source.ErrNotFound);
// InvalidError and RateLimitError (errors.go) are the other answers the
// HTTP layer turns into statuses of their own.
package protocol

import (
	"bytes"
	"context"
	"io"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Modules answers the questions of the module proxy protocol.
type Modules interface {
	// List answers @v/list: the versions of path that modgate knows.
	List(ctx context.Context, path string) (*Versions, error)
	// Latest answers @latest: the .info JSON of the version a client gets
	// for "latest". The File is Mutable and names that version.
	Latest(ctx context.Context, path string) (*File, error)
	// Info answers @v/query.info: the .info JSON of a canonical version, or
	// of the version a query (branch, commit prefix, non-canonical semver)
	// resolves to; a query's answer is Mutable.
	Info(ctx context.Context, path, query string) (*File, error)
	// GoMod answers @v/version.mod for a canonical version.
	GoMod(ctx context.Context, path, version string) (*File, error)
	// Zip answers @v/version.zip for a canonical version.
	Zip(ctx context.Context, path, version string) (*File, error)
}

// Provenance says where an answer came from.
type Provenance struct {
	// Stored reports an answer modgate already held (in storage, or in its
	// in-memory table of query answers): no origin was asked for it on
	// behalf of this request.
	Stored bool
	// Origin is the credential-free name of the origin that sent the
	// answer, "" when unknown (a module file stored by an earlier request:
	// storage does not record its origin).
	Origin string
	// Fetched is when the answer came from its origin: the time a module
	// file was stored, or a list or query answer was fetched. Zero for an
	// answer made from stored files alone.
	Fetched time.Time
}

// File is one answer served as a file: a module's .info, go.mod or zip, or
// the .info answering @latest or a query.
type File struct {
	// Content is the file; the caller closes it. For disk storage it is an
	// *os.File, so that net/http can send it with sendfile.
	Content io.ReadSeekCloser
	Size    int64
	// ModTime and ETag, when set, let clients revalidate (Last-Modified,
	// ETag). Mutable answers have neither.
	ModTime time.Time
	ETag    string
	// Version is the canonical version the file is for: the one asked for,
	// or the one @latest or a query resolved to.
	Version string
	// Mutable marks an answer that may change (@latest, a query): clients
	// may keep it only briefly. Files of canonical versions never change.
	Mutable bool
	// Degraded marks an answer made from stored files alone because the
	// origin failed: it may be missing newer versions, so nobody should
	// keep it.
	Degraded bool
	// H1, when not nil, returns the file's h1: hash as go.sum records it
	// (go.mod and zip files only), or "" when it is not known. It is a
	// function because finding it may cost a read of storage, which the
	// warm path should pay only for callers that use it.
	H1 func(context.Context) (string, error)
	Provenance
}

// Version is one version in a list, with the time its origin gave for it.
type Version struct {
	Version string
	// Time is the time the origin's @v/list line gave after the version
	// ("v1.0.0 2019-03-01T12:00:00Z"), zero when the line had none.
	Time time.Time
}

// Versions is the answer to @v/list, and what @latest is chosen from.
// The caller owns it and may modify it.
type Versions struct {
	// Tagged are the canonical release and pre-release versions, in
	// ascending semver order: @v/list serves these.
	Tagged []Version
	// Pseudo are the pseudo-versions known for the module (listed by an
	// origin or stored), ascending. @v/list leaves them out, as the go
	// command ignores them there; @latest of a module without tags picks
	// from them.
	Pseudo []Version
	// Degraded marks a list made from stored files alone because the
	// origin failed and never answered this list: it may lack versions.
	Degraded bool
	Provenance
}

// File returns the @v/list file of v: the tagged versions one per line,
// each followed by its time when the origin gave one. The go command reads
// only the first field of each line (cmd/go/internal/modfetch/proxy.go),
// and takes the second for a time when it looks for the newest
// pseudo-version.
func (v *Versions) File() *File {
	var body []byte
	for _, t := range v.Tagged {
		body = append(body, t.Version...)
		if !t.Time.IsZero() {
			body = append(body, ' ')
			body = t.Time.AppendFormat(body, time.RFC3339Nano)
		}
		body = append(body, '\n')
	}
	f := BytesFile(body)
	f.Mutable, f.Degraded, f.Provenance = true, v.Degraded, v.Provenance
	return f
}

// PickLatest returns the version the go command takes for "latest" from
// v: the highest release, else the highest pre-release, else the newest
// pseudo-version; "" when v has none. Tagged and Pseudo are in ascending
// order, as List returns them (filtering keeps that order).
func PickLatest(v *Versions) string {
	for i := len(v.Tagged) - 1; i >= 0; i-- {
		if semver.Prerelease(v.Tagged[i].Version) == "" {
			return v.Tagged[i].Version
		}
	}
	if n := len(v.Tagged); n > 0 {
		return v.Tagged[n-1].Version
	}
	if n := len(v.Pseudo); n > 0 {
		return v.Pseudo[n-1].Version
	}
	return ""
}

// IsCanonical reports whether version names exactly one immutable version
// of path (a tag or pseudo-version in canonical form), as opposed to a
// query such as a branch name or commit prefix.
func IsCanonical(path, version string) bool {
	return module.CanonicalVersion(version) == version && module.Check(path, version) == nil
}

// BytesFile returns a File holding data in memory, for answers built or
// kept in memory; the caller fills in the other fields. (File and Content
// share one allocation: the warm path of lists and @latest makes one.)
func BytesFile(data []byte) *File {
	m := &struct {
		file    File
		content bytesContent
	}{}
	m.content.Reset(data)
	m.file.Content = &m.content
	m.file.Size = int64(len(data))
	return &m.file
}

type bytesContent struct{ bytes.Reader }

func (*bytesContent) Close() error { return nil }
