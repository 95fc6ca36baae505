package discover

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// metaImport is one <meta name="go-import" content="prefix vcs url [subdir]">.
type metaImport struct {
	Prefix, VCS, RepoRoot, SubDir string
}

// parseMetaGoImports reads the go-import meta tags of an HTML page as the
// go command does (cmd/go/internal/vcs/discovery.go, in the mode that
// ignores "mod" entries): a lenient XML tokenizer; only UTF-8 or ASCII
// declared as the document's charset; reading stops at <body> or </head>;
// tags with 3 or 4 fields count, others are passed over; a syntax error
// fails the page only if no tag came before it.
func parseMetaGoImports(r io.Reader) ([]metaImport, error) {
	d := xml.NewDecoder(r)
	d.Strict = false
	d.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "ascii":
			// ASCII is read as UTF-8, as the go command does.
			return input, nil
		}
		return nil, fmt.Errorf("can't decode XML document using charset %q", charset)
	}
	var imports []metaImport
	for {
		tok, err := d.RawToken()
		if err != nil {
			if err != io.EOF && len(imports) == 0 {
				return nil, err
			}
			return imports, nil
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if strings.EqualFold(t.Name.Local, "head") {
				return imports, nil
			}
		case xml.StartElement:
			if strings.EqualFold(t.Name.Local, "body") {
				return imports, nil
			}
			if !strings.EqualFold(t.Name.Local, "meta") || attr(t.Attr, "name") != "go-import" {
				continue
			}
			f := strings.Fields(attr(t.Attr, "content"))
			if len(f) != 3 && len(f) != 4 {
				continue
			}
			// "mod" entries point at a module proxy; modgate reads the
			// repository itself, so they are left out, as by the go
			// command when it does not prefer modules.
			if f[1] == "mod" {
				continue
			}
			mi := metaImport{Prefix: f[0], VCS: f[1], RepoRoot: f[2]}
			if len(f) == 4 {
				mi.SubDir = f[3]
			}
			imports = append(imports, mi)
		}
	}
}

// attr returns the value of the attribute named name, whatever its case.
func attr(attrs []xml.Attr, name string) string {
	for _, a := range attrs {
		if strings.EqualFold(a.Name.Local, name) {
			return a.Value
		}
	}
	return ""
}

// errNoMatch: meta tags were found, none for the path.
var errNoMatch = errors.New("no go-import meta tag matches")

// matchGoImport returns the one tag whose prefix is a path prefix of
// modPath; two such tags are an error, as for the go command.
func matchGoImport(imports []metaImport, modPath string) (metaImport, error) {
	match := -1
	for i, mi := range imports {
		if !hasPathPrefix(modPath, mi.Prefix) {
			continue
		}
		if match >= 0 {
			return metaImport{}, fmt.Errorf("multiple go-import meta tags match %s (%q and %q)", modPath, imports[match].Prefix, mi.Prefix)
		}
		match = i
	}
	if match < 0 {
		return metaImport{}, errNoMatch
	}
	return imports[match], nil
}

// maxMetaBody bounds what is read of a "?go-get=1" page; the tags are in
// its head, a few hundred bytes in.
const maxMetaBody = 1 << 20

// lookupMeta asks the module path's host for go-import meta tags. When
// the matching tag is for a shorter prefix than the path, the prefix's own
// page must say the same (the go command's check that a page under a
// repository cannot speak for the whole repository's path).
func (r *Resolver) lookupMeta(ctx context.Context, modPath string) (Repo, error) {
	page, err := r.fetchMeta(ctx, modPath, modPath)
	if err != nil {
		return Repo{}, err
	}
	mi, err := matchGoImport(page.imports, modPath)
	if err != nil {
		return Repo{}, page.noMatch(modPath, err)
	}
	if mi.Prefix != modPath {
		root, err := r.fetchMeta(ctx, modPath, mi.Prefix)
		if err != nil {
			return Repo{}, err
		}
		again, err := matchGoImport(root.imports, modPath)
		if err != nil || again != mi {
			return Repo{}, newError(modPath, true, nil, "%s and %s disagree about the go-import meta tag for %s", page.url, root.url, mi.Prefix)
		}
	}
	if mi.VCS != "git" {
		if name, known := vcsNames[mi.VCS]; known {
			return Repo{}, newError(modPath, true, nil, "%s names a %s repository; modgate serves git repositories only", page.url, name)
		}
		return Repo{}, newError(modPath, true, nil, "%s names an unknown version control system %q", page.url, mi.VCS)
	}
	if err := checkSubdir(mi.SubDir); err != nil {
		return Repo{}, newError(modPath, true, nil, "%s: invalid subdirectory %q: %v", page.url, mi.SubDir, err)
	}
	if err := checkRepoURL(mi.RepoRoot, r.insecure(modPath)); err != nil {
		return Repo{}, newError(modPath, true, nil, "%s: %v", page.url, err)
	}
	return Repo{Root: mi.Prefix, URL: mi.RepoRoot, Subdir: mi.SubDir}, nil
}

// checkSubdir accepts what the go command accepts (no leading "/" nor
// "-") and, since the directory is handed to git, only a clean relative
// path that stays inside the repository.
func checkSubdir(dir string) error {
	switch {
	case dir == "":
		return nil
	case dir[0] == '/':
		return errors.New("leading slash")
	case dir[0] == '-':
		return errors.New("leading hyphen")
	case strings.ContainsAny(dir, "\\:"):
		return errors.New("backslash or colon")
	case path.Clean(dir) != dir:
		return errors.New("not a clean path")
	}
	for _, elem := range strings.Split(dir, "/") {
		if elem == "." || elem == ".." {
			return errors.New("dot or dot-dot element")
		}
	}
	return nil
}

// metaPage is a fetched "?go-get=1" page.
type metaPage struct {
	url     string // as fetched, after redirects
	status  int
	imports []metaImport
}

func (p *metaPage) noMatch(modPath string, err error) error {
	if !errors.Is(err, errNoMatch) {
		return newError(modPath, true, nil, "%s: %v", p.url, err)
	}
	var prefixes []string
	for i, mi := range p.imports {
		if i == 3 {
			prefixes = append(prefixes, fmt.Sprintf("and %d more", len(p.imports)-3))
			break
		}
		prefixes = append(prefixes, fmt.Sprintf("%q", mi.Prefix))
	}
	return newError(modPath, true, nil, "%s has go-import meta tags, none for %s (they name %s)", p.url, modPath, strings.Join(prefixes, ", "))
}

// fetchMeta fetches https://<importPrefix>?go-get=1, and when that fails
// to connect and modPath is insecure, the same over http (as the go
// command: a server's answer, whatever its status, is never retried over
// http). The page's tags are returned even with a non-200 status, as the
// go command uses them.
func (r *Resolver) fetchMeta(ctx context.Context, modPath, importPrefix string) (*metaPage, error) {
	host, p, _ := strings.Cut(importPrefix, "/")
	u := &url.URL{Scheme: "https", Host: host, Path: "/" + p, RawQuery: "go-get=1"}
	page, err := r.fetchOnce(ctx, modPath, u)
	if err != nil && r.insecure(modPath) {
		plain := *u
		plain.Scheme = "http"
		var errHTTP error
		page, errHTTP = r.fetchOnce(ctx, modPath, &plain)
		if errHTTP != nil {
			return nil, newError(modPath, false, errHTTP, "fetching %s: %v; then %s: %v", u, reason(err), &plain, reason(errHTTP))
		}
		err = nil
	}
	if err != nil {
		return nil, newError(modPath, false, err, "fetching %s: %v", u, reason(err))
	}
	if len(page.imports) == 0 && page.truncated {
		return nil, newError(modPath, false, nil, "%s has no go-import meta tag in its first %d bytes", page.url, maxMetaBody)
	}
	if len(page.imports) == 0 && page.status != http.StatusOK {
		return nil, r.statusError(modPath, host, page)
	}
	if page.parseErr != nil {
		return nil, newError(modPath, false, nil, "parsing %s: %v", page.url, page.parseErr)
	}
	if len(page.imports) == 0 {
		return nil, newError(modPath, true, nil, "%s has no go-import meta tag", page.url)
	}
	return &page.metaPage, nil
}

type fetched struct {
	metaPage
	parseErr  error
	truncated bool // the read limit cut the page
}

// fetchOnce makes one request and reads the page's tags, all within
// Config.Timeout. An error means no answer (no connection, TLS, a refused
// redirect, a timeout); a status is an answer.
func (r *Resolver) fetchOnce(ctx context.Context, modPath string, u *url.URL) (*fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "modgate (go-import discovery)")
	// Credentials go to the module path's own host, which is u's: on
	// https, or on http for a path the operator marked insecure (git will
	// send them there too). Redirects never leave the host.
	if r.cfg.Credentials != nil && (u.Scheme == "https" || r.insecure(modPath)) {
		if c, ok := r.cfg.Credentials(u.Host); ok {
			c.AddTo(req)
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	f := &fetched{metaPage: metaPage{url: resp.Request.URL.String(), status: resp.StatusCode}}
	body := &io.LimitedReader{R: resp.Body, N: maxMetaBody}
	f.imports, f.parseErr = parseMetaGoImports(body)
	f.truncated = body.N == 0
	if ctx.Err() != nil && f.imports == nil {
		return nil, ctx.Err()
	}
	return f, nil
}

func (r *Resolver) statusError(modPath, host string, page *fetched) error {
	status := fmt.Sprintf("%d %s", page.status, http.StatusText(page.status))
	switch page.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		creds := "no credentials are configured for " + host
		if r.cfg.Credentials != nil {
			if _, ok := r.cfg.Credentials(host); ok {
				creds = "authentication with the credentials configured for " + host + " failed"
			}
		}
		return newError(modPath, false, nil, "%s answered %s to %s: %s", host, status, page.url, creds)
	case http.StatusNotFound, http.StatusGone:
		return newError(modPath, true, nil, "%s answered %s to %s, without a go-import meta tag", host, status, page.url)
	}
	return newError(modPath, false, nil, "%s answered %s to %s, without a go-import meta tag", host, status, page.url)
}

// reason makes a client error short: the URL it quotes is already in the
// message, and a timeout is said as one.
func reason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timed out"
		}
		return ue.Err.Error()
	}
	return err.Error()
}

// sameHostClient returns a copy of base whose redirects stay on the host
// of the first request and never go from https to http.
func sameHostClient(base *http.Client) *http.Client {
	c := *base
	next := base.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if !strings.EqualFold(req.URL.Host, first.Host) {
			return fmt.Errorf("redirect from %s to another host, %s, refused", first.Host, req.URL.Host)
		}
		if first.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect from https to %s refused", req.URL.Scheme)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &c
}
