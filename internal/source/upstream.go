package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// Size limits for what an upstream may send. Zips and go.mod files use the
// go command's own limits; anything larger could never be used by a client.
const (
	maxInfoSize = 64 << 10
	maxListSize = 16 << 20
	maxModSize  = modzip.MaxGoMod
	MaxZipSize  = modzip.MaxZipFile
)

// Upstream is one GOPROXY-protocol server.
type Upstream struct {
	base   string
	client *http.Client
}

// NewHTTPClient returns the client upstreams share: bounded connection
// set-up and time to first byte, but no overall timeout, since a large zip
// may legitimately take minutes; callers bound whole fetches with contexts.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}

// NewUpstream returns a source for the proxy at base (no trailing slash).
func NewUpstream(base string, client *http.Client) *Upstream {
	return &Upstream{base: base, client: client}
}

func (u *Upstream) String() string { return u.base }

func (u *Upstream) List(ctx context.Context, path string) ([]string, error) {
	body, err := u.getSmall(ctx, path, "@v/list", path+" @v/list", maxListSize)
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, line := range strings.Split(string(body), "\n") {
		// Each line is "version" optionally followed by more fields.
		if f := strings.Fields(line); len(f) > 0 {
			versions = append(versions, f[0])
		}
	}
	return versions, nil
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
		return nil, &FetchError{Source: u.base, Op: op, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, int64(MaxZipSize))}
	}
	return &limitedBody{rc: resp.Body, left: MaxZipSize, src: u.base, op: op}, nil
}

// get issues one GET and classifies the answer. On success the caller owns
// resp.Body.
func (u *Upstream) get(ctx context.Context, path, suffix, op string) (*http.Response, error) {
	ep, err := module.EscapePath(path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+"/"+ep+"/"+suffix, nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, &FetchError{Source: u.base, Op: op, Timeout: isTimeout(err), Err: err}
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	msg := firstLine(resp.Body)
	switch resp.StatusCode {
	// 404 and 410 are the protocol's "not found". Some proxies also answer 403
	// ("not available") for modules they do not have; the go command stops on
	// 403, but for a chain of upstreams it means "not here".
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden:
		if msg == "" {
			msg = fmt.Sprintf("%s not found (%d)", op, resp.StatusCode)
		}
		return nil, &NotFoundError{Source: u.base, Msg: msg}
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return nil, &FetchError{Source: u.base, Op: op, Status: resp.StatusCode,
		Timeout: resp.StatusCode == http.StatusGatewayTimeout, Err: errors.New(msg)}
}

func (u *Upstream) getSmall(ctx context.Context, path, suffix, op string, limit int64) ([]byte, error) {
	resp, err := u.get(ctx, path, suffix, op)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &FetchError{Source: u.base, Op: op, Timeout: isTimeout(err), Err: err}
	}
	if int64(len(body)) > limit {
		return nil, &FetchError{Source: u.base, Op: op, Err: fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)}
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
		err = &FetchError{Source: l.src, Op: l.op, Timeout: isTimeout(err), Err: err}
	}
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// firstLine returns the first non-empty line of an error body, for messages.
func firstLine(r io.Reader) string {
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return string(bytes.ToValidUTF8([]byte(line), []byte("?")))
		}
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
