package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/modgate/modgate/internal/redact"
)

// The S3 backend keeps each key as one object, named Prefix + key, in one
// bucket of any S3-compatible server (AWS S3, Ceph RGW, SeaweedFS,
// versitygw, the S3 APIs of Aliyun OSS and Tencent COS), through minio-go.
//
// Atomicity comes from S3 itself: an object appears only when its PUT, or
// the completion of its multipart upload, succeeds. A process that dies in
// the middle of an upload leaves an incomplete multipart upload (parts the
// server keeps but never serves), which CleanStaging aborts later.
//
// Memory per upload in progress is bounded by the part size: content is
// read into a pooled buffer of singlePutMax (1 MiB) first; if it ends
// there, it is sent in one PUT, otherwise as a multipart upload that reads
// one part at a time into one buffer of PartSize bytes (16 MiB by default:
// about 17 MiB per large upload in progress). Reads stream ranges of the
// object and never hold one in memory.
//
// A write of up to 1 MiB always changes the ETag, also when the content is
// the same (see putSmall; larger objects are immutable module zips), and
// conditional puts use S3's own conditional writes (If-None-Match and
// If-Match, on AWS S3 since 2024, on versitygw; the compliance suite's
// race tests prove them on the server they run against).

// Defaults and bounds of S3Config.PartSize. S3 requires parts of at least
// 5 MiB (except the last) and at most 10,000 parts per upload: 16 MiB
// parts allow objects of up to 156 GiB, far beyond any module zip (the
// go command's limit is 500 MiB).
const (
	DefaultS3PartSize = 16 << 20
	MinS3PartSize     = 5 << 20
	MaxS3PartSize     = 5 << 30
)

// Read windows. The first GET of an object asks for its first
// firstReadWindow bytes, the next ones for twice as many each time up to
// maxReadWindow, and a Seek starts again from firstReadWindow. Objects
// smaller than the first window (most .info, .mod and many zips) take one
// request; a Range request served by http.ServeContent (a Seek, then a
// read of the range's length) reads only the range from the connection,
// however large the object, and abandons the rest of its last window.
const (
	firstReadWindow = 1 << 20
	maxReadWindow   = 64 << 20
)

// singlePutMax is the largest content that Put sends as one PUT request:
// it is read into a pooled buffer of this size first. Larger content goes
// out as a multipart upload in parts of PartSize.
const singlePutMax = 1 << 20

// staleUploadAge is how old an incomplete multipart upload must be before
// CleanStaging aborts it: far longer than any upload in progress takes
// (between two parts), so that a live upload is never aborted.
const staleUploadAge = time.Hour

// S3Config describes an S3 bucket to store objects in.
type S3Config struct {
	// Endpoint is the server's base URL, "https://s3.example.com" or
	// "http://127.0.0.1:7070"; the scheme decides TLS. It must not carry
	// credentials, a path, a query or a fragment.
	Endpoint string
	// Bucket holds the objects; it must exist.
	Bucket string
	// Prefix is put before every key ("modgate/"), so that several
	// installations, or other data, can share a bucket. A trailing slash
	// is added when missing. Empty means the whole bucket.
	Prefix string
	// Region is the bucket's region (signatures include it); "us-east-1"
	// when empty, which S3-compatible servers generally accept.
	Region string
	// PathStyle addresses the bucket as endpoint/bucket/key rather than
	// bucket.endpoint/key (virtual-host style, which AWS prefers).
	PathStyle bool
	// AccessKey and SecretKey are static credentials. When AccessKey is
	// empty, the standard AWS chain is used: AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY, the shared credentials file, then the
	// instance or pod role.
	AccessKey, SecretKey string
	// PartSize is the size of the parts of multipart uploads, and the
	// memory each upload in progress takes; DefaultS3PartSize when zero.
	PartSize int64
	// Transport carries the requests; minio-go's default transport when
	// nil (use it for a private CA, or to count requests in tests).
	Transport http.RoundTripper
}

// S3 is the S3 backend. It implements Store, SizedPutter,
// ConditionalPutter (with S3's conditional writes), InfoLister and
// StagingCleaner.
type S3 struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string
	partSize int64
	where    string // for errors: "s3://bucket/prefix at endpoint"
	now      func() time.Time
	heads    sync.Pool // of *[]byte, singlePutMax long
}

var (
	_ SizedPutter       = (*S3)(nil)
	_ ConditionalPutter = (*S3)(nil)
	_ InfoLister        = (*S3)(nil)
	_ StagingCleaner    = (*S3)(nil)
)

// NewS3 returns the store for the bucket that cfg describes. It makes no
// request: Ping checks that the bucket is reachable.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("store: s3 endpoint %q is not an http(s) URL", redact.URL(cfg.Endpoint))
	}
	if u.User != nil {
		return nil, fmt.Errorf("store: s3 endpoint %s carries credentials: give them as the access and secret key instead", redact.URL(cfg.Endpoint))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("store: s3 endpoint %s must be a scheme and host only", redact.URL(cfg.Endpoint))
	}
	if cfg.Bucket == "" {
		return nil, errors.New("store: s3 storage needs a bucket")
	}
	prefix := cfg.Prefix
	if prefix != "" {
		prefix = strings.TrimSuffix(prefix, "/")
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("store: s3 prefix %q is not a clean relative path", cfg.Prefix)
		}
		prefix += "/"
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultS3PartSize
	}
	if partSize < MinS3PartSize || partSize > MaxS3PartSize {
		return nil, fmt.Errorf("store: s3 part size %d is outside [%d, %d]", partSize, MinS3PartSize, MaxS3PartSize)
	}
	var creds *credentials.Credentials
	switch {
	case cfg.AccessKey != "" && cfg.SecretKey == "":
		return nil, errors.New("store: s3 access key given without a secret key")
	case cfg.AccessKey != "":
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	default:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        creds,
		Secure:       u.Scheme == "https",
		Region:       region,
		BucketLookup: lookup,
		Transport:    cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("store: s3 client for %s: %v", redact.URL(cfg.Endpoint), err)
	}
	s := &S3{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   cfg.Bucket,
		prefix:   prefix,
		partSize: partSize,
		where:    fmt.Sprintf("s3://%s/%s at %s", cfg.Bucket, prefix, u.Scheme+"://"+u.Host),
		now:      time.Now,
	}
	s.heads.New = func() any { b := make([]byte, singlePutMax); return &b }
	return s, nil
}

// String describes the store for logs: bucket, prefix and endpoint.
func (s *S3) String() string { return s.where }

// object returns the object name of a key.
func (s *S3) object(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// fail wraps an error of an operation on key: ErrNotExist for a missing
// object, the context's error when it ended, and always where the store is.
// minio-go's errors carry the server's message, never the credentials.
func (s *S3) fail(ctx context.Context, op, key string, err error) error {
	if code := errorCode(err); code == "NoSuchKey" || code == "NotFound" {
		return fmt.Errorf("store: %s %q in %s: %w", op, key, s.where, ErrNotExist)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("store: %s %q in %s: %w (%v)", op, key, s.where, cerr, err)
	}
	return fmt.Errorf("store: %s %q in %s: %w", op, key, s.where, err)
}

// errorCode returns the S3 error code of err ("NoSuchKey"), or "" when it
// is not an answer of the server. A HEAD answer has no body: its code is
// made from the status.
func errorCode(err error) string {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return ""
	}
	if er.Code == "" {
		switch er.StatusCode {
		case http.StatusNotFound:
			return "NoSuchKey"
		case http.StatusPreconditionFailed:
			return "PreconditionFailed"
		}
	}
	return er.Code
}

func errorStatus(err error) int {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// s3Info converts the metadata of an object. S3 dates have a resolution of
// a second in HEAD and GET answers and finer in listings: they are cut to
// the second so that Stat and ListInfo agree. minio-go strips the ETag's
// quotes; Info.ETag is an HTTP entity tag, with them.
func s3Info(size int64, modTime time.Time, etag string) Info {
	return Info{Size: size, ModTime: modTime.Truncate(time.Second).UTC(), ETag: `"` + etag + `"`}
}

// Stat returns the object's metadata with one HEAD request.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	name, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.fail(ctx, "stat", key, err)
	}
	return s3Info(oi.Size, oi.LastModified, oi.ETag), nil
}

// Delete removes the object; S3 does not mind a missing one.
func (s *S3) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.fail(ctx, "delete", key, err), ErrNotExist) {
			return nil
		}
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// Ping checks that the bucket exists and the credentials may use it.
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("store: ping %s: %w", s.where, err)
	}
	if !ok {
		return fmt.Errorf("store: ping %s: the bucket does not exist", s.where)
	}
	return nil
}

// List calls fn with every key under prefix, in lexical order (S3 lists in
// the order of the keys' UTF-8 bytes), one page of up to 1,000 keys per
// request.
func (s *S3) List(ctx context.Context, prefix string, fn func(key string) error) error {
	return s.ListInfo(ctx, prefix, func(key string, _ Info) error { return fn(key) })
}

// ListInfo is List with the metadata each listing page carries.
func (s *S3) ListInfo(ctx context.Context, prefix string, fn func(key string, info Info) error) error {
	// A prefix is a key cut anywhere: it is valid when some key extends it.
	if prefix != "" {
		if err := CheckKey(prefix + "x"); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx) // stops minio-go's lister on an early return
	defer cancel()
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return s.fail(ctx, "list", prefix, oi.Err)
		}
		key, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || CheckKey(key) != nil {
			continue // not one of ours (a directory marker, a foreign object)
		}
		if err := fn(key, s3Info(oi.Size, oi.LastModified, oi.ETag)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Put stores the content of r. Content of up to singlePutMax bytes goes out
// in one PUT (after a HEAD, see putSmall); longer content as a multipart
// upload, read one part at a time.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	return s.put(ctx, key, r, -1, nil)
}

// PutSized stores exactly size bytes of r, checked as they are read: as
// Put, with the size known up front.
func (s *S3) PutSized(ctx context.Context, key string, r io.Reader, size int64) error {
	if size < 0 {
		return fmt.Errorf("store: put %q: negative size %d", key, size)
	}
	return s.put(ctx, key, r, size, nil)
}

// PutIf stores the content of r on condition, with S3's conditional
// writes (If-None-Match: * to create, If-Match: etag to replace), which
// the server checks atomically as the object is replaced. The content is
// read into memory first and sent in one request: conditional puts are for
// small documents, and content longer than the part size is refused.
func (s *S3) PutIf(ctx context.Context, key string, r io.Reader, ifMatch string) error {
	c := &condition{ifMatch: strings.Trim(ifMatch, `"`)}
	if ifMatch == IfAbsent {
		c.opts.SetMatchETagExcept("*")
	} else {
		c.opts.SetMatchETag(c.ifMatch)
	}
	err := s.put(ctx, key, r, -1, c)
	if err == nil || errors.Is(err, ErrInvalidKey) || ctx.Err() != nil {
		return err
	}
	switch code := errorCode(err); {
	case code == "PreconditionFailed",
		code == "ConditionalRequestConflict", // AWS: a concurrent conditional write won
		errors.Is(err, ErrNotExist) && ifMatch != IfAbsent,
		errorStatus(err) == http.StatusPreconditionFailed:
		return fmt.Errorf("store: put %q in %s: %w", key, s.where, ErrPreconditionFailed)
	}
	return err
}

// condition is what a conditional put sends and expects.
type condition struct {
	opts    minio.PutObjectOptions // with the If-Match or If-None-Match header
	ifMatch string                 // the S3 ETag (no quotes) the object must have, or ""
}

// put uploads r as the object of key. size is the announced size, -1 when
// unknown; c is the condition of a conditional put, or nil.
func (s *S3) put(ctx context.Context, key string, r io.Reader, size int64, c *condition) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: put %q: %w", key, err)
	}
	rec := &recordingReader{r: r}

	switch {
	case c != nil:
		b, err := io.ReadAll(io.LimitReader(rec, s.partSize+1))
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return s.readFailed(ctx, key, err)
		}
		if int64(len(b)) > s.partSize {
			return fmt.Errorf("store: conditional put %q: content longer than the part size (%d bytes)", key, s.partSize)
		}
		return s.putSmall(ctx, key, name, b, c)

	case size < 0 || size <= singlePutMax:
		// Read the head: short content is sent from memory.
		bp := s.heads.Get().(*[]byte)
		defer s.heads.Put(bp)
		head := *bp
		if size >= 0 {
			head = head[:size]
		}
		n, err := io.ReadFull(rec, head)
		switch {
		case size >= 0 && err == nil:
			if err := atEOF(rec, size); err != nil {
				return s.readFailed(ctx, key, err)
			}
			return s.putSmall(ctx, key, name, head[:n], nil)
		case size >= 0:
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("%w: %d bytes, announced %d", ErrSizeMismatch, n, size)
			}
			return s.readFailed(ctx, key, err)
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return s.putSmall(ctx, key, name, head[:n], nil)
		case err != nil:
			return s.readFailed(ctx, key, err)
		}
		// Longer than the head: a multipart upload of unknown size,
		// which minio-go reads one part at a time.
		return s.putStream(ctx, key, name, io.MultiReader(bytes.NewReader(head), rec), -1, rec)

	default:
		return s.putStream(ctx, key, name, &strictReader{r: rec, size: size}, size, rec)
	}
}

// putStream uploads content that is not in memory: one streaming PUT when
// size is known and at most a part, otherwise a multipart upload in parts
// of s.partSize, each read into one buffer before it is sent. minio-go
// aborts the upload when it fails.
func (s *S3) putStream(ctx context.Context, key, name string, body io.Reader, size int64, rec *recordingReader) error {
	opts := minio.PutObjectOptions{
		PartSize:    uint64(s.partSize),
		NumThreads:  1,
		ContentType: "application/octet-stream",
	}
	if _, err := s.client.PutObject(ctx, s.bucket, name, body, size, opts); err != nil {
		if rec.err != nil {
			return s.readFailed(ctx, key, rec.err)
		}
		return s.fail(ctx, "put", key, err)
	}
	return nil
}

// putSmall stores content held in memory so that the object's ETag
// changes, also when the content is the same as before.
//
// S3 makes the ETag of a single PUT the MD5 of the content, so rewriting
// the same content keeps the ETag: a reader holding it could not tell
// that the object was written, and two compare-and-swaps from the same
// read could both succeed (Store's ETags change with every write). The
// ETag of a multipart upload is different ("<MD5 of the parts' MD5s>-1"
// for one part), so content whose MD5 is the current ETag is sent as a
// one-part upload instead. The current ETag is the condition's for a
// conditional put, and asked with a HEAD for a plain one: small puts are
// the mutable documents and the metadata of new versions, a request more
// is cheap beside what produced them.
func (s *S3) putSmall(ctx context.Context, key, name string, content []byte, c *condition) error {
	sum := md5.Sum(content)
	md5hex := hex.EncodeToString(sum[:])
	var opts minio.PutObjectOptions
	var current string
	if c != nil {
		opts, current = c.opts, c.ifMatch
	} else {
		oi, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		switch {
		case err == nil:
			current = oi.ETag
		case !errors.Is(s.fail(ctx, "put", key, err), ErrNotExist):
			return s.fail(ctx, "put", key, err)
		}
	}
	opts.ContentType = "application/octet-stream"
	opts.SendContentMd5 = true // the server checks what it received
	if len(content) == 0 {
		// minio-go's streaming signature (plain http) of an empty body
		// makes a request the server reads as two, the second broken, on a
		// connection that is then reused: sign the (empty) payload instead.
		opts.DisableContentSha256 = true
	}
	if current != md5hex {
		if _, err := s.client.PutObject(ctx, s.bucket, name, bytes.NewReader(content), int64(len(content)), opts); err != nil {
			return s.fail(ctx, "put", key, err)
		}
		return nil
	}
	return s.putOnePart(ctx, key, name, content, opts)
}

// putOnePart stores content as a multipart upload of one part. The
// conditions of opts apply when the upload is completed, which is when the
// object is replaced.
func (s *S3) putOnePart(ctx context.Context, key, name string, content []byte, opts minio.PutObjectOptions) error {
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, name, minio.PutObjectOptions{ContentType: opts.ContentType})
	if err != nil {
		return s.fail(ctx, "put", key, err)
	}
	part, err := s.core.PutObjectPart(ctx, s.bucket, name, id, 1, bytes.NewReader(content), int64(len(content)), minio.PutObjectPartOptions{})
	if err == nil {
		_, err = s.core.CompleteMultipartUpload(ctx, s.bucket, name, id, []minio.CompletePart{{PartNumber: 1, ETag: part.ETag}}, opts)
	}
	if err != nil {
		// Not left for CleanStaging: abort now, even if ctx has ended.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		s.core.AbortMultipartUpload(actx, s.bucket, name, id)
		return s.fail(ctx, "put", key, err)
	}
	return nil
}

// readFailed is the error of a put whose reader failed: the reader's
// error, so that callers can tell it from a storage failure.
func (s *S3) readFailed(ctx context.Context, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("store: put %q: %w (%w)", key, cerr, err)
	}
	return fmt.Errorf("store: put %q: %w", key, err)
}

// recordingReader remembers the first error of r other than io.EOF: the
// put returns it rather than the error minio-go made of it.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// strictReader passes on exactly size bytes of r and fails, with
// ErrSizeMismatch, if r holds fewer or more. The check for more happens in
// the Read that returns the last byte: minio-go reads no further than the
// announced size, and must not complete the upload when there is more.
type strictReader struct {
	r    io.Reader
	size int64
	n    int64
}

func (s *strictReader) Read(p []byte) (int, error) {
	if s.n == s.size {
		return 0, io.EOF
	}
	if rest := s.size - s.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := s.r.Read(p)
	s.n += int64(k)
	switch {
	case err == io.EOF && s.n < s.size:
		return k, fmt.Errorf("%w: %d bytes, announced %d", ErrSizeMismatch, s.n, s.size)
	case err != nil && err != io.EOF:
		return k, err
	case s.n == s.size:
		if err := atEOF(s.r, s.size); err != nil {
			return k, err
		}
		return k, io.EOF
	}
	return k, nil
}

// atEOF checks, once size bytes have been read from r, that it has no more.
func atEOF(r io.Reader, size int64) error {
	var one [1]byte
	for range 100 { // as io.ReadAtLeast: a reader that keeps returning nothing is broken
		k, err := r.Read(one[:])
		if k > 0 {
			return fmt.Errorf("%w: more than the announced %d bytes", ErrSizeMismatch, size)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// CleanStaging aborts the incomplete multipart uploads under the prefix
// that began more than staleUploadAge ago: uploads of processes that died
// (or whose abort failed), whose parts take space but are never served.
// removed counts uploads, size their parts' bytes.
func (s *S3) CleanStaging(ctx context.Context) (removed int, size int64, err error) {
	cutoff := s.now().Add(-staleUploadAge)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix, true) {
		if u.Err != nil {
			return removed, size, fmt.Errorf("store: listing incomplete uploads in %s: %w", s.where, u.Err)
		}
		if !strings.HasPrefix(u.Key, s.prefix) || !u.Initiated.Before(cutoff) {
			continue
		}
		n := s.uploadSize(ctx, u.Key, u.UploadID)
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil {
			if errorCode(err) == "NoSuchUpload" {
				continue // completed or aborted meanwhile
			}
			return removed, size, fmt.Errorf("store: aborting the upload of %q in %s: %w", strings.TrimPrefix(u.Key, s.prefix), s.where, err)
		}
		removed++
		size += n
	}
	return removed, size, ctx.Err()
}

// uploadSize sums the sizes of an upload's parts, as far as the server
// lists them; it is for the report of CleanStaging only.
func (s *S3) uploadSize(ctx context.Context, name, uploadID string) int64 {
	var size int64
	marker := 0
	for range 100 { // at most 100,000 parts; an upload has at most 10,000
		res, err := s.core.ListObjectParts(ctx, s.bucket, name, uploadID, marker, 1000)
		if err != nil {
			return size
		}
		for _, p := range res.ObjectParts {
			size += p.Size
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return size
		}
		marker = res.NextPartNumberMarker
	}
	return size
}
