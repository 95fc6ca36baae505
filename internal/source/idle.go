package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"
)

// ErrIdleTimeout is returned (wrapped) when a response body sent no byte for
// the client's idle timeout (WithIdleTimeout).
var ErrIdleTimeout = errors.New("upstream stopped sending data")

// idleTimeoutError says how long the body was silent. It is a net.Error
// whose Timeout is true, so that every caller that classifies timeouts
// (FetchError.Timeout, the checksum-database client) sees one.
type idleTimeoutError struct{ d time.Duration }

func (e *idleTimeoutError) Error() string {
	return fmt.Sprintf("%v: no data for %v (modgate's --upstream-idle-timeout)", ErrIdleTimeout, e.d)
}
func (e *idleTimeoutError) Is(target error) bool { return target == ErrIdleTimeout }
func (e *idleTimeoutError) Timeout() bool        { return true }
func (e *idleTimeoutError) Temporary() bool      { return true }

// idleTransport gives every response body an idle-read timeout. An upstream
// that sends headers and then stalls, or drips, would otherwise hold the
// fetch (and the go command waiting on it) for the whole total timeout.
//
// The request runs under its own cancelable context: cancelling it is the
// one way to abort a body read in progress (closing the body concurrently
// does not unblock an HTTP/1 read), and it also closes the connection.
type idleTransport struct {
	base http.RoundTripper
	idle time.Duration
}

func (t *idleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	b := &idleBody{rc: resp.Body, idle: t.idle, ctx: ctx, cancel: cancel}
	// Armed by each Read (Reset), disarmed when it returns.
	b.timer = time.AfterFunc(math.MaxInt64, func() { cancel(&idleTimeoutError{t.idle}) })
	resp.Body = b
	return resp, nil
}

// idleBody aborts a Read that waits longer than idle for data. Only time
// spent inside Read counts: a slow consumer is not the upstream's fault.
type idleBody struct {
	rc     io.ReadCloser
	idle   time.Duration
	timer  *time.Timer // runs only while a Read waits
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	// The transport reports the abort as a cancellation; say why instead.
	var idle *idleTimeoutError
	if cause := context.Cause(b.ctx); errors.As(cause, &idle) && err != nil && err != io.EOF {
		return n, cause
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
