package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// The checksum database's answers reach the Verifier through its Remote,
// an HTTP client. On export a recorder sits in that client's transport and
// keeps every answer the Verifier got; on import a replayer is the whole
// transport and answers from the bundle alone.

// recorder is an http.RoundTripper that passes requests on and keeps the
// successful answers to lookup and tile requests under one of its bases
// (the database reached through the proxy, or directly).
type recorder struct {
	next  http.RoundTripper
	bases []*url.URL
	spool *spool

	mu    sync.Mutex
	order []string          // proof names, first request first
	sums  map[string]string // proof name → content digest, to spot a changed answer
	err   error             // first inconsistency seen
}

func newRecorder(next http.RoundTripper, sp *spool, bases ...string) (*recorder, error) {
	r := &recorder{next: next, spool: sp, sums: map[string]string{}}
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil {
			return nil, err
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		r.bases = append(r.bases, u)
	}
	return r, nil
}

// proofName returns the proof a request asks for, or "" when it is none
// (the proxy's "supported" probe, anything else).
func (r *recorder) proofName(u *url.URL) string {
	for _, b := range r.bases {
		if u.Scheme != b.Scheme || u.Host != b.Host {
			continue
		}
		rest, ok := strings.CutPrefix(u.Path, b.Path+"/")
		if ok && checkProofName(rest) == nil {
			return rest
		}
	}
	return ""
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	name := r.proofName(req.URL)
	if name != "" {
		// Asked before (a lookup prefetched): the same answer, as import
		// will replay it.
		if body, ok, err := r.spool.get("proof:" + name); ok || err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			if err != nil {
				return nil, err
			}
			return answer(req, http.StatusOK, body), nil
		}
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK || name == "" {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProofSize+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxProofSize {
		return nil, fmt.Errorf("checksum database answer %s is larger than %d bytes", name, maxProofSize)
	}
	if err := r.keep(name, body); err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// keep records the answer to name. Answers do not change (a tile of a
// given width, the record of a version); one that does would make import
// replay an answer export did not check, so it fails the export.
func (r *recorder) keep(name string, body []byte) error {
	sum := digest(body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.sums[name]; ok {
		if prev != sum && r.err == nil {
			r.err = fmt.Errorf("the checksum database answered %s twice, differently", name)
		}
		return r.err
	}
	if err := r.spool.put("proof:"+name, body); err != nil {
		return err
	}
	r.sums[name] = sum
	r.order = append(r.order, name)
	return nil
}

// proofs returns the names recorded so far, in order, or the first
// inconsistency.
func (r *recorder) proofs() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...), r.err
}

// replayer is the transport of the import's Verifier: it answers lookups
// and tiles from the bundle's proofs, 404 for anything else, and never
// touches the network.
type replayer struct {
	base   string // the URL path the Remote puts before each proof name
	answer func(ctx context.Context, name string) ([]byte, error)

	mu     sync.Mutex
	missed []string // asked for but not in the bundle
}

var errNoProof = errors.New("not in the bundle")

func (p *replayer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	name, ok := strings.CutPrefix(req.URL.Path, p.base+"/")
	var body []byte
	err := errNoProof
	if ok && checkProofName(name) == nil {
		body, err = p.answer(req.Context(), name)
	}
	status := http.StatusOK
	switch {
	case errors.Is(err, errNoProof):
		p.mu.Lock()
		p.missed = append(p.missed, strings.TrimPrefix(req.URL.Path, p.base+"/"))
		p.mu.Unlock()
		status, body = http.StatusNotFound, []byte("not in the bundle\n")
	case err != nil:
		return nil, err
	}
	return answer(req, status, body), nil
}

// answer is a response to req made in this process.
func answer(req *http.Request, status int, body []byte) *http.Response {
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/octet-stream"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// missing returns what the Verifier asked for that the bundle lacks.
func (p *replayer) missing() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.missed...)
}

// refuser is the transport of a Verifier that must answer from storage
// alone.
type refuser struct{}

func (refuser) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, errors.New("no network: answering from verified state only")
}
