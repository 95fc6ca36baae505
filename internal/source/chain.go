package source

import (
	"context"
	"errors"
	"io"
	"strings"
	"unicode"

	"github.com/modgate/modgate/internal/proxylist"
)

// Chain tries sources in order, like the go command walks GOPROXY: after an
// entry followed by "," it moves on only when the module was not found
// there; after "|" it moves on after any error.
type Chain struct {
	entries []chainEntry
}

type chainEntry struct {
	src Source
	// anyError: fall through on any error, not only on not-found ("|").
	anyError bool
	// direct: the entry is "direct", whatever source answers for it.
	direct bool
}

// ParseList parses a GOPROXY-syntax list (package proxylist, strictly:
// every entry must be an http(s) URL, "direct" or "off"). newUpstream builds
// the source for an http(s) URL, given as configured: credentials included,
// since the requests need them (the source's String must not show them).
// "off" answers not found and ends the walk (lookups disabled); "direct"
// answers that direct fetching is not configured.
func ParseList(list string, newUpstream func(baseURL string) Source) (*Chain, error) {
	return ParseListDirect(list, newUpstream, nil)
}

// ParseListDirect is ParseList with direct as the source of "direct"
// entries (fetching from version control), unless it is nil.
func ParseListDirect(list string, newUpstream func(baseURL string) Source, direct Source) (*Chain, error) {
	entries, err := proxylist.Parse(list)
	if err != nil {
		return nil, err
	}
	c := &Chain{}
	for _, e := range entries {
		var src Source
		switch e.Keyword {
		case proxylist.Off:
			src = off{}
		case proxylist.Direct:
			src = direct
			if src == nil {
				src = unconfiguredDirect{}
			}
		default:
			src = newUpstream(baseURL(e.URL))
		}
		c.entries = append(c.entries, chainEntry{src: src, anyError: e.FallThroughOnAnyError, direct: e.Keyword == proxylist.Direct})
	}
	return c, nil
}

// baseURL is a proxy entry's URL as a base for requests: without a
// fragment, which is never sent (url.Parse also cuts at the first "#"), and
// without trailing slashes, nor the spaces between them that parsing trims,
// so that a Chain's String parses back to the same list.
func baseURL(entry string) string {
	entry, _, _ = strings.Cut(entry, "#")
	return strings.TrimRightFunc(entry, func(r rune) bool { return r == '/' || unicode.IsSpace(r) })
}

// String returns the list in GOPROXY syntax, as the entries name
// themselves: an Upstream's credentials are redacted.
func (c *Chain) String() string {
	var b strings.Builder
	for i, e := range c.entries {
		if i > 0 {
			if c.entries[i-1].anyError {
				b.WriteByte('|')
			} else {
				b.WriteByte(',')
			}
		}
		if e.direct {
			b.WriteString(proxylist.Direct)
		} else {
			b.WriteString(e.src.String())
		}
	}
	return b.String()
}

// try runs fn on each entry until one answers or the chain stops. An "off"
// entry stops it, as it stops the go command: what lies past it is never
// asked. When every entry asked says not found, the not-found errors are
// joined so the client learns what each origin said.
func try[T any](ctx context.Context, c *Chain, fn fetch[T]) (T, error) {
	var zero T
	var notFound []string
	for _, e := range c.entries {
		v, err := answer(ctx, e.src, fn)
		if err == nil {
			return v, nil
		}
		if errors.Is(err, ErrNotFound) {
			notFound = append(notFound, err.Error())
			if _, isOff := e.src.(off); isOff {
				break
			}
			continue
		}
		if e.anyError {
			continue
		}
		return zero, err
	}
	return zero, &NotFoundError{Msg: strings.Join(notFound, "; ")}
}

// fetch is one Source method call with its arguments bound.
type fetch[T any] func(ctx context.Context, src Source) (T, error)

// answer runs fn on src and, when src answers and ctx asks (WithOrigin),
// records the origin that answered: the one src records itself (a chain
// inside a route names its entry), else src.
func answer[T any](ctx context.Context, src Source, fn fetch[T]) (T, error) {
	if _, ok := ctx.Value(originKey{}).(*Origin); !ok {
		return fn(ctx, src)
	}
	ictx, inner := WithOrigin(ctx)
	v, err := fn(ictx, src)
	if err == nil {
		name := inner.String()
		if name == "" {
			name = src.String()
		}
		setOrigin(ctx, name)
	}
	return v, err
}

func (c *Chain) List(ctx context.Context, path string) ([]string, error) {
	return try(ctx, c, func(ctx context.Context, s Source) ([]string, error) { return s.List(ctx, path) })
}

func (c *Chain) Latest(ctx context.Context, path string) ([]byte, error) {
	return try(ctx, c, func(ctx context.Context, s Source) ([]byte, error) { return s.Latest(ctx, path) })
}

func (c *Chain) Info(ctx context.Context, path, query string) ([]byte, error) {
	return try(ctx, c, func(ctx context.Context, s Source) ([]byte, error) { return s.Info(ctx, path, query) })
}

func (c *Chain) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	return try(ctx, c, func(ctx context.Context, s Source) ([]byte, error) { return s.GoMod(ctx, path, version) })
}

func (c *Chain) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	return try(ctx, c, func(ctx context.Context, s Source) (io.ReadCloser, error) { return s.Zip(ctx, path, version) })
}

// off is the "off" entry: lookups are disabled beyond this point.
type off struct{}

func (off) String() string { return "off" }
func (off) err() error {
	return &NotFoundError{Source: "off", Msg: "module lookups disabled by upstream=off"}
}
func (o off) List(context.Context, string) ([]string, error)        { return nil, o.err() }
func (o off) Latest(context.Context, string) ([]byte, error)        { return nil, o.err() }
func (o off) Info(context.Context, string, string) ([]byte, error)  { return nil, o.err() }
func (o off) GoMod(context.Context, string, string) ([]byte, error) { return nil, o.err() }
func (o off) Zip(context.Context, string, string) (io.ReadCloser, error) {
	return nil, o.err()
}

// unconfiguredDirect stands for "direct" until a git source is configured.
type unconfiguredDirect struct{}

func (unconfiguredDirect) String() string { return "direct" }
func (unconfiguredDirect) err() error {
	return &NotFoundError{Source: "direct", Msg: "fetching from version control is not configured in modgate"}
}
func (d unconfiguredDirect) List(context.Context, string) ([]string, error) { return nil, d.err() }
func (d unconfiguredDirect) Latest(context.Context, string) ([]byte, error) { return nil, d.err() }
func (d unconfiguredDirect) Info(context.Context, string, string) ([]byte, error) {
	return nil, d.err()
}
func (d unconfiguredDirect) GoMod(context.Context, string, string) ([]byte, error) {
	return nil, d.err()
}
func (d unconfiguredDirect) Zip(context.Context, string, string) (io.ReadCloser, error) {
	return nil, d.err()
}

// UpstreamURLs returns the base URLs of the chain's proxy entries, in order,
// as configured: with their credentials, for making requests only.
func (c *Chain) UpstreamURLs() []string {
	var urls []string
	for _, e := range c.entries {
		if u, ok := e.src.(*Upstream); ok {
			urls = append(urls, u.base)
		}
	}
	return urls
}
