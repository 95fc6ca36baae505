package audit

import (
	"context"
	"errors"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/modgate/modgate/internal/protocol"
)

// Wrap returns inner with every download and every refusal written to l;
// with a nil l, inner itself. It must be the outermost wrapper, outside
// authorization and policy: it gives each request a protocol.Decision
// (protocol.WithDecision) for the policy to fill in, and sees their
// refusals.
//
// Recorded:
//   - a served .info of a canonical version, .mod or .zip: a download, with
//     the policy's decision ("allow", or "would-deny" in dry run), where it
//     came from, its size and, for .mod and .zip, its h1: hash;
//   - a request of any kind refused by the policy (*protocol.PolicyError:
//     "deny" and its rule) or because the token may not read the module
//     (*protocol.ForbiddenError: "deny", rule "token");
//   - a list, @latest or query (.info of a branch or commit) that the
//     policy would deny in dry run.
//
// Not recorded: lists, @latest and queries that are allowed (they are not
// downloads), 401 challenges (*protocol.UnauthorizedError: the go command
// always gets one before it sends credentials), not-found answers and
// origin failures.
func Wrap(inner protocol.Modules, l *Log) protocol.Modules {
	if l == nil {
		return inner
	}
	h1s, _ := lru.New[h1Key, string](h1Memo) // errs only for a size <= 0
	return &audited{inner: inner, log: l, h1s: h1s, h1Slots: make(chan struct{}, h1Concurrency)}
}

type audited struct {
	inner protocol.Modules
	log   *Log
	// h1s remembers the h1: hashes of files already recorded: files of a
	// canonical version never change, and reading the hash from storage
	// would cost a warm hit more than the rest of the event.
	h1s *lru.Cache[h1Key, string]
	// h1Slots bounds the File.H1 calls in flight (see h1).
	h1Slots chan struct{}
}

type h1Key struct{ path, version, file string }

func (a *audited) List(ctx context.Context, path string) (*protocol.Versions, error) {
	ctx, d := protocol.WithDecision(ctx)
	vs, err := a.inner.List(ctx, path)
	if err != nil {
		a.refused(ctx, "list", path, "", err)
		return nil, err
	}
	if d.Outcome == WouldDeny {
		a.write(ctx, d, Event{Module: path, File: "list", Source: source(vs.Provenance)})
	}
	return vs, nil
}

func (a *audited) Latest(ctx context.Context, path string) (*protocol.File, error) {
	ctx, d := protocol.WithDecision(ctx)
	f, err := a.inner.Latest(ctx, path)
	if err != nil {
		a.refused(ctx, "latest", path, "", err)
		return nil, err
	}
	if d.Outcome == WouldDeny {
		a.write(ctx, d, Event{Module: path, Version: f.Version, File: "latest", Source: source(f.Provenance), Bytes: f.Size})
	}
	return f, nil
}

func (a *audited) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	ctx, d := protocol.WithDecision(ctx)
	f, err := a.inner.Info(ctx, path, query)
	if err != nil {
		a.refused(ctx, "info", path, query, err)
		return nil, err
	}
	// A query's answer is not a download, unless the policy would deny it.
	if protocol.IsCanonical(path, query) || d.Outcome == WouldDeny {
		a.write(ctx, d, Event{Module: path, Version: f.Version, File: "info", Source: source(f.Provenance), Bytes: f.Size})
	}
	return f, nil
}

func (a *audited) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	return a.download(ctx, "mod", path, version, a.inner.GoMod)
}

func (a *audited) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	return a.download(ctx, "zip", path, version, a.inner.Zip)
}

func (a *audited) download(ctx context.Context, file, path, version string, get func(context.Context, string, string) (*protocol.File, error)) (*protocol.File, error) {
	ctx, d := protocol.WithDecision(ctx)
	f, err := get(ctx, path, version)
	if err != nil {
		a.refused(ctx, file, path, version, err)
		return nil, err
	}
	a.write(ctx, d, Event{Module: path, Version: version, File: file, Source: source(f.Provenance), Bytes: f.Size,
		H1: a.h1(ctx, h1Key{path, version, file}, f)})
	return f, nil
}

// refused records err if it is a refusal by the policy or by
// authorization.
func (a *audited) refused(ctx context.Context, file, path, version string, err error) {
	var (
		policy *protocol.PolicyError
		forbid *protocol.ForbiddenError
	)
	switch {
	case errors.As(err, &policy):
		if policy.Version != "" { // what @latest or a query resolved to
			version = policy.Version
		}
		a.write(ctx, &protocol.Decision{Outcome: Deny, Rule: policy.Rule}, Event{Module: path, Version: version, File: file})
	case errors.As(err, &forbid):
		a.write(ctx, &protocol.Decision{Outcome: Deny, Rule: "token"}, Event{Module: path, Version: version, File: file})
	}
}

// write completes e with what ctx and d say and writes it. A failed write
// has been counted and logged by Log.Write; the answer is served anyway.
func (a *audited) write(ctx context.Context, d *protocol.Decision, e Event) {
	e.RequestID = protocol.RequestID(ctx)
	e.Principal = protocol.Anonymous
	if p, ok := protocol.PrincipalFrom(ctx); ok && p.Name != "" {
		e.Principal = p.Name
	}
	e.Client, _ = protocol.ClientAddr(ctx)
	e.Decision, e.Rule = d.Outcome, d.Rule
	if e.Decision == "" { // no policy, or one that had nothing to say
		e.Decision = Allow
	}
	a.log.Write(e)
}

// source names where an answer came from.
func source(p protocol.Provenance) string {
	switch {
	case p.Stored:
		return "cache"
	case p.Origin == "git":
		return "git"
	default:
		return "upstream"
	}
}

// The h1: hash of a stored file is usually cheap (the cache reads its
// .ziphash, or hashes a small go.mod), but a zip stored without one (no
// checksum database verified it and the background hasher has not got to
// it yet) is hashed whole when asked, up to a second of CPU that nothing
// can interrupt. The audit waits at most h1Wait for it and records an
// empty h1 otherwise; the computation goes on in the background, bounded
// by h1Timeout, and stores the .ziphash for the next request. At most
// h1Concurrency run at once, so that a burst of such downloads cannot
// start a hash each. Hashes are remembered (h1Memo of them, about 200
// bytes each), so that a warm hit pays a map lookup, not a read of
// storage and a goroutine.
const (
	h1Timeout     = time.Minute
	h1Concurrency = 8
	h1Memo        = 8192
)

// h1Wait is a variable only so that tests which expect an h1 can wait
// longer on a loaded machine (export_test.go).
var h1Wait = 100 * time.Millisecond

// h1 returns f's h1: hash, or "" when f has none or it is not had within
// h1Wait.
func (a *audited) h1(ctx context.Context, key h1Key, f *protocol.File) string {
	if f.H1 == nil {
		return ""
	}
	if h, ok := a.h1s.Get(key); ok {
		return h
	}
	wait := time.NewTimer(h1Wait)
	defer wait.Stop()
	select {
	case a.h1Slots <- struct{}{}:
	case <-wait.C:
		return ""
	}
	// Not the request's context: a client that goes away does not stop a
	// hash whose result the cache keeps.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h1Timeout)
	done := make(chan string, 1)
	go func() {
		defer func() { <-a.h1Slots }()
		defer cancel()
		h, err := f.H1(hctx)
		if err != nil || h == "" {
			done <- ""
			return
		}
		a.h1s.Add(key, h)
		done <- h
	}()
	select {
	case h := <-done:
		return h
	case <-wait.C:
		return ""
	}
}
