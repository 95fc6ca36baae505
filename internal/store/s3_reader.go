package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Open returns a reader of the object that fetches it in ranged GETs (see
// firstReadWindow): the first one is made here, and tells whether the
// object exists and its metadata. Later GETs are made on condition that
// the object is still the one opened (If-Match), so that a reader never
// mixes two versions of a key; one that was replaced meanwhile fails the
// Read.
func (s *S3) Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, Info{}, err
	}
	// ctx bounds the opening; the reader lives until Close, as a file
	// does: its later GETs must not fail because the caller's context
	// ended after Open returned.
	octx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	o := &s3Object{s: s, ctx: octx, cancel: cancel, key: key, name: name, window: firstReadWindow}
	body, total, oi, err := o.get(0, firstReadWindow, "")
	if errorStatus(err) == http.StatusRequestedRangeNotSatisfiable {
		// Only an empty object has no first byte.
		body, total, oi, err = o.get(0, 0, "")
	}
	if err != nil {
		cancel()
		return nil, Info{}, s.fail(ctx, "open", key, err)
	}
	o.etag = oi.ETag
	o.size = total
	o.setBody(body, 0, min(firstReadWindow, total))
	o.window = min(2*firstReadWindow, maxReadWindow)
	return o, s3Info(total, oi.LastModified, oi.ETag), nil
}

// s3Object reads one version of an object, in windows.
type s3Object struct {
	s      *S3
	ctx    context.Context // of the GETs: ends with Close
	cancel context.CancelFunc
	key    string
	name   string
	etag   string // without quotes, as minio-go has it
	size   int64

	off    int64 // offset of the next Read
	window int64 // length of the next GET

	body    io.ReadCloser // the current GET's, or nil
	bodyOff int64         // offset body is at
	bodyEnd int64         // offset where body's range ends
	closed  bool
}

// get makes a GET of length bytes at off (the whole object when length
// is 0), on condition that the object's ETag is etag unless it is empty,
// and returns the body, the object's total size and its metadata.
func (o *s3Object) get(off, length int64, etag string) (io.ReadCloser, int64, minio.ObjectInfo, error) {
	var opts minio.GetObjectOptions
	if length > 0 {
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, 0, minio.ObjectInfo{}, err
		}
	}
	if etag != "" {
		if err := opts.SetMatchETag(etag); err != nil {
			return nil, 0, minio.ObjectInfo{}, err
		}
	}
	body, oi, hdr, err := o.s.core.GetObject(o.ctx, o.s.bucket, o.name, opts)
	if err != nil {
		return nil, 0, oi, err
	}
	total := oi.Size // a 200 answer: the whole object
	if cr := hdr.Get("Content-Range"); cr != "" {
		if total, err = rangeTotal(cr); err != nil {
			body.Close()
			return nil, 0, oi, err
		}
	}
	return body, total, oi, nil
}

// rangeTotal returns the complete length from a Content-Range header
// ("bytes 0-99/1234").
func rangeTotal(cr string) (int64, error) {
	_, total, ok := strings.Cut(cr, "/")
	n, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("unexpected Content-Range %q", cr)
	}
	return n, nil
}

func (o *s3Object) setBody(body io.ReadCloser, off, end int64) {
	if o.body != nil {
		o.body.Close()
	}
	o.body, o.bodyOff, o.bodyEnd = body, off, end
}

// Read reads from the current GET's body, or makes the next GET when that
// body is used up or not at the offset of the read.
func (o *s3Object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, errors.New("store: read of a closed object")
	}
	if o.off >= o.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if o.body == nil || o.bodyOff != o.off || o.bodyOff == o.bodyEnd {
		length := min(o.window, o.size-o.off)
		body, total, _, err := o.get(o.off, length, o.etag)
		if err != nil {
			if errorStatus(err) == http.StatusPreconditionFailed {
				err = errors.New("the object was replaced while being read")
			}
			return 0, o.s.fail(o.ctx, "read", o.key, err)
		}
		if total != o.size {
			body.Close()
			return 0, fmt.Errorf("store: read %q in %s: the object's size changed from %d to %d", o.key, o.s.where, o.size, total)
		}
		o.setBody(body, o.off, o.off+length)
		o.window = min(2*o.window, maxReadWindow)
	}
	if rest := o.bodyEnd - o.bodyOff; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := o.body.Read(p)
	o.bodyOff += int64(n)
	o.off += int64(n)
	switch {
	case err == io.EOF && o.bodyOff < o.bodyEnd:
		return n, o.s.fail(o.ctx, "read", o.key, io.ErrUnexpectedEOF)
	case err == io.EOF || o.bodyOff == o.bodyEnd:
		// The window is done: free its connection for the next GET.
		o.setBody(nil, o.off, o.off)
		if o.off == o.size {
			return n, io.EOF
		}
		return n, nil
	case err != nil:
		return n, o.s.fail(o.ctx, "read", o.key, err)
	}
	return n, nil
}

// Seek moves the offset of the next Read. It makes no request: the next
// Read does, starting again with a small window when the offset moved
// away from where the current GET is.
func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.off + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, fmt.Errorf("store: seek %q: invalid whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("store: seek %q: negative position %d", o.key, abs)
	}
	if abs != o.off && (o.body == nil || abs != o.bodyOff) {
		o.window = firstReadWindow
	}
	o.off = abs
	return abs, nil
}

// Close ends the current GET.
func (o *s3Object) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	o.cancel()
	o.setBody(nil, 0, 0)
	return nil
}
