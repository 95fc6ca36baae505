package source

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/modgate/modgate/internal/redact"
)

// Size limits for what an upstream may send. Zips and go.mod files use the
// go command's own limits; anything larger could never be used by a client.
const (
	maxInfoSize = 64 << 10
	maxListSize = 16 << 20
	maxModSize  = modzip.MaxGoMod
	MaxZipSize  = modzip.MaxZipFile
)

// maxReasonLen bounds the part of an upstream's error body passed on in an
// error: enough for a reason, short enough for the go command's one line.
const maxReasonLen = 200

// Upstream is one GOPROXY-protocol server.
type Upstream struct {
	// base is the URL as configured, credentials included: requests use it,
	// nothing shows it.
	base string
	url  *url.URL // base parsed; nil when it does not parse (urlErr)
	// name is base with credentials redacted: String, errors, logs.
	name   string
	urlErr error
	client *http.Client
	// health is what its recent answers say (Chain.Entries).
	health healthRecord
}

// DefaultIdleTimeout is the idle-read timeout of NewHTTPClient without
// WithIdleTimeout.
const DefaultIdleTimeout = 30 * time.Second

// A ClientOption tunes NewHTTPClient.
type ClientOption func(*clientOptions)

type clientOptions struct {
	idle time.Duration
}

// WithIdleTimeout sets how long a response body may go without sending a
// byte before the download is aborted with an ErrIdleTimeout error; d <= 0
// disables the idle timeout. It is separate from the total time a fetch may
// take (its context), which for a large zip over a slow link is long.
func WithIdleTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.idle = d }
}

// NewHTTPClient returns the client upstreams share: bounded connection
// set-up, time to first byte and time between bytes of a body, but no
// overall timeout, since a large zip may legitimately take minutes; callers
// bound whole fetches with contexts.
func NewHTTPClient(opts ...ClientOption) *http.Client {
	o := clientOptions{idle: DefaultIdleTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	t.MaxIdleConnsPerHost = 32
	var rt http.RoundTripper = t
	if o.idle > 0 {
		rt = &idleTransport{base: t, idle: o.idle}
	}
	return &http.Client{Transport: rt}
}

// NewUpstream returns a source for the proxy at base, an http(s) URL that
// may carry credentials (user information, a token query parameter): they
// are sent with every request, as the go command does, and shown nowhere.
func NewUpstream(base string, client *http.Client) *Upstream {
	u := &Upstream{base: base, name: redactedName(base), client: client}
	pu, err := url.Parse(base)
	switch {
	case err != nil:
		// url.Error quotes the URL: keep only what it says is wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		u.urlErr = fmt.Errorf("invalid upstream URL %s: %v", u.name, redact.Text(err.Error()))
	case pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "":
		u.urlErr = fmt.Errorf("invalid upstream URL %s: want http(s)://host[/path]", u.name)
	default:
		u.url = pu
	}
	return u
}

// String names the upstream, without its credentials.
func (u *Upstream) String() string { return u.name }

func (u *Upstream) List(ctx context.Context, path string) ([]string, error) {
	body, err := u.getSmall(ctx, path, "@v/list", path+" @v/list", maxListSize)
	if err != nil {
		return nil, err
	}
	return ParseVersionList(body), nil
}

// ParseVersionList parses an @v/list answer: one version per line, possibly
// followed by the time the origin gives for it (which the go command reads
// when it looks for the newest pseudo-version) and more fields, which are
// ignored. Each entry is the version, or the version, a space and the
// line's second field. Blank lines are skipped. Nothing is validated: that
// is the caller's job, with the rules of the path the versions belong to.
func ParseVersionList(body []byte) []string {
	var versions []string
	for line := range strings.SplitSeq(string(body), "\n") {
		switch f := strings.Fields(line); len(f) {
		case 0:
		case 1:
			versions = append(versions, f[0])
		default:
			versions = append(versions, f[0]+" "+f[1])
		}
	}
	return versions
}

func (u *Upstream) Latest(ctx context.Context, path string) ([]byte, error) {
	return u.getSmall(ctx, path, "@latest", path+"@latest", maxInfoSize)
}

func (u *Upstream) Info(ctx context.Context, path, query string) ([]byte, error) {
	ev, err := module.EscapeVersion(query)
	if err != nil {
		return nil, err
	}
	return u.getSmall(ctx, path, "@v/"+ev+".info", path+"@"+query+" .info", maxInfoSize)
}

func (u *Upstream) GoMod(ctx context.Context, path, version string) ([]byte, error) {
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return nil, err
	}
	return u.getSmall(ctx, path, "@v/"+ev+".mod", path+"@"+version+" .mod", maxModSize)
}

func (u *Upstream) Zip(ctx context.Context, path, version string) (io.ReadCloser, error) {
	ev, err := module.EscapeVersion(version)
	if err != nil {
		return nil, err
	}
	op := path + "@" + version + " .zip"
	resp, err := u.get(ctx, path, "@v/"+ev+".zip", op)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > MaxZipSize {
		resp.Body.Close()
		return nil, &FetchError{Source: u.name, Op: op, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, int64(MaxZipSize))}
	}
	return &limitedBody{rc: resp.Body, left: MaxZipSize, src: u.name, op: op}, nil
}

// requestURL is the URL of a file of the module: the base URL with the
// escaped module path and suffix appended to its path, and its query (a
// token) kept, the way the go command joins GOPROXY entries and paths.
func (u *Upstream) requestURL(escPath, suffix string) *url.URL {
	target := *u.url
	rel := escPath + "/" + suffix
	basePath := strings.TrimSuffix(u.url.Path, "/")
	target.Path = basePath + "/" + rel
	if u.url.RawPath != "" {
		// The base path has escapes of its own (a %2F): keep them.
		target.RawPath = strings.TrimSuffix(u.url.RawPath, "/") + "/" + (&url.URL{Path: rel}).EscapedPath()
	}
	return &target
}

// get issues one GET and classifies the answer. On success the caller owns
// resp.Body. The outcome goes into the upstream's health record.
func (u *Upstream) get(ctx context.Context, path, suffix, op string) (*http.Response, error) {
	resp, err := u.request(ctx, path, suffix, op)
	u.health.note(err, time.Now())
	return resp, err
}

func (u *Upstream) request(ctx context.Context, path, suffix, op string) (*http.Response, error) {
	if u.url == nil {
		err := u.urlErr
		if err == nil {
			err = errors.New("upstream not configured") // a zero Upstream
		}
		return nil, &FetchError{Source: u.name, Op: op, Err: err}
	}
	ep, err := module.EscapePath(path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "", nil)
	if err != nil {
		return nil, err
	}
	req.URL = u.requestURL(ep, suffix)
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, &FetchError{Source: u.name, Op: op, Timeout: isTimeout(err), Err: sanitize(err)}
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	msg := firstLine(resp.Body)
	switch resp.StatusCode {
	// 404 and 410 are the protocol's "not found". Upstreams also refuse
	// modules they will not serve: 403 ("not available") and 400 (a mirror's
	// "module host not permitted"). The go command stops on those, but they
	// are permanent answers about the module, not failures: for a chain of
	// upstreams they mean "not here", and "try again later" would be wrong.
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden, http.StatusBadRequest:
		if msg == "" {
			msg = fmt.Sprintf("%s not found (%d)", op, resp.StatusCode)
		}
		return nil, &NotFoundError{Source: u.name, Msg: msg}
	}
	// Everything else is a failure worth retrying or fixing on our side:
	// 401 and 407 (modgate's credentials), 429 (rate limits), 5xx.
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return nil, &FetchError{Source: u.name, Op: op, Status: resp.StatusCode,
		Timeout: resp.StatusCode == http.StatusGatewayTimeout, Err: errors.New(msg)}
}

func (u *Upstream) getSmall(ctx context.Context, path, suffix, op string, limit int64) ([]byte, error) {
	resp, err := u.get(ctx, path, suffix, op)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		// Refuse at once rather than download up to the limit.
		return nil, &FetchError{Source: u.name, Op: op, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, limit)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &FetchError{Source: u.name, Op: op, Timeout: isTimeout(err), Err: sanitize(err)}
	}
	if int64(len(body)) > limit {
		return nil, &FetchError{Source: u.name, Op: op, Err: fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)}
	}
	return body, nil
}

// limitedBody fails a zip download that grows past the size limit instead of
// silently truncating it.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
	src  string
	op   string
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, &FetchError{Source: l.src, Op: l.op, Err: fmt.Errorf("%w of %d bytes", ErrTooLarge, int64(MaxZipSize))}
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, &FetchError{Source: l.src, Op: l.op, Err: fmt.Errorf("%w of %d bytes", ErrTooLarge, int64(MaxZipSize))}
	}
	if err != nil && err != io.EOF {
		err = &FetchError{Source: l.src, Op: l.op, Timeout: isTimeout(err), Err: sanitize(err)}
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// firstLine returns the first non-empty line of an error body, made fit to
// pass on: one line, credentials redacted, at most maxReasonLen bytes.
// Upstreams quote request URLs (with their query tokens) in error pages.
func firstLine(r io.Reader) string {
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	for sc.Scan() {
		if line := redact.Line(sc.Text(), maxReasonLen); line != "" {
			return line
		}
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// sanitizedError is an error from the HTTP client with its text redacted:
// Go's url.Error quotes the request URL, user name and query token
// included. Unwrap keeps errors.Is and errors.As working on the original
// (timeouts, *net.OpError, ErrIdleTimeout).
type sanitizedError struct {
	msg string
	err error
}

func sanitize(err error) error {
	return &sanitizedError{msg: redact.Line(err.Error(), 0), err: err}
}

func (e *sanitizedError) Error() string { return e.msg }
func (e *sanitizedError) Unwrap() error { return e.err }
