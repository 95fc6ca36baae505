package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
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
}

// ParseList parses a GOPROXY-syntax list. newUpstream builds the source for
// an http(s) URL, given as configured: credentials included, since the
// requests need them (the source's String must not show them). "direct" and
// "off" are accepted: "off" answers not found (lookups disabled), "direct"
// answers that direct fetching is not configured.
func ParseList(list string, newUpstream func(baseURL string) Source) (*Chain, error) {
	c := &Chain{}
	for list != "" {
		var entry string
		anyError := false
		if i := strings.IndexAny(list, ",|"); i >= 0 {
			entry, anyError, list = list[:i], list[i] == '|', list[i+1:]
		} else {
			entry, list = list, ""
		}
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var src Source
		switch entry {
		case "off":
			src = off{}
		case "direct":
			src = unconfiguredDirect{}
		default:
			u, err := url.Parse(entry)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
				// A host ending in ":" is a doubled scheme ("https://https://h").
				strings.HasSuffix(u.Host, ":") {
				// The entry may carry credentials: quote it redacted.
				return nil, fmt.Errorf("upstream entry %q: want an http(s) URL, \"direct\" or \"off\"", redactedName(entry))
			}
			// Without trailing slashes, so that String() parses back to
			// the same list.
			src = newUpstream(strings.TrimRight(entry, "/"))
		}
		c.entries = append(c.entries, chainEntry{src: src, anyError: anyError})
	}
	if len(c.entries) == 0 {
		return nil, errors.New("upstream list is empty")
	}
	return c, nil
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
		b.WriteString(e.src.String())
	}
	return b.String()
}

// try runs fn on each entry until one answers or the chain stops.
// When every entry says not found, the not-found errors are joined so the
// client learns what each origin said.
func try[T any](ctx context.Context, c *Chain, fn func(Source) (T, error)) (T, error) {
	var zero T
	var notFound []string
	for _, e := range c.entries {
		v, err := fn(e.src)
		if err == nil {
			setOrigin(ctx, e.src.String())
			return v, nil
		}
		if errors.Is(err, ErrNotFound) {
			notFound = append(notFound, err.Error())
			continue
		}
		if e.anyError {
			continue
		}
		return zero, err
	}
	return zero, &NotFoundError{Msg: strings.Join(notFound, "; ")}
}

func (c *Chain) List(ctx context.Context, path string) ([]string, error) {
	return try(ctx, c, func(s Source) ([]string, error) { return s.List(ctx, path) })
}

func (c *Chain) Latest(ctx context.Context, path string) ([]byte, error) {
	return try(ctx, c, func(s Source) ([]byte, error) { return s.Latest(ctx, path) })
}

func (c *Chain) Info(ctx context.Context, path, query string) ([]byte, error) {
	return try(ctx, c, func(s Source) ([]byte, error) { return s.Info(ctx, path, query) })
}

func (c *Chain) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	return try(ctx, c, func(s Source) ([]byte, error) { return s.GoMod(ctx, path, version) })
}

func (c *Chain) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	return try(ctx, c, func(s Source) (io.ReadCloser, error) { return s.Zip(ctx, path, version) })
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
