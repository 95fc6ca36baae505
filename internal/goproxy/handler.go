package goproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/sumdb"
)

// Cache-Control values: canonical versions never change; lists, @latest
// and queries change when modules are published, so clients may keep them
// only briefly.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheMutable   = "public, max-age=60"
)

// degradedHeader marks an answer made from stored module files alone
// because the upstream failed (protocol.File.Degraded); such answers are
// also sent with Cache-Control: no-store.
const degradedHeader = "X-Modgate-Degraded"

// Handler serves the GOPROXY protocol from Modules: the module cache, or
// any wrapper of it.
type Handler struct {
	Modules protocol.Modules
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		WriteError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; the module proxy protocol uses GET")
		return
	}
	req, err := ParseRequest(r.URL.Path)
	if err != nil {
		WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	// Lookups the cache must send upstream are rate-limited per client: the
	// connection's address, not a header any client can forge.
	ctx := protocol.WithClient(r.Context(), r.RemoteAddr)
	f, err := h.ask(ctx, req)
	if err == nil {
		err = serveFile(w, r, contentType(req.Kind), f)
	}
	if err != nil {
		h.fail(w, r, req, err)
	}
}

// ask puts req to h.Modules, after the checks that protocol.Modules leaves
// to its caller.
func (h *Handler) ask(ctx context.Context, req Request) (*protocol.File, error) {
	switch req.Kind {
	case KindList:
		vs, err := h.Modules.List(ctx, req.Path)
		if err != nil {
			return nil, err
		}
		return vs.File(), nil
	case KindLatest:
		return h.Modules.Latest(ctx, req.Path)
	case KindInfo:
		if module.CanonicalVersion(req.Version) == req.Version {
			// A canonical-looking version must also suit the path (v2+ needs /v2).
			if err := module.Check(req.Path, req.Version); err != nil {
				return nil, &invalidVersionError{msg: err.Error()}
			}
		}
		return h.Modules.Info(ctx, req.Path, req.Version)
	case KindMod, KindZip:
		if !protocol.IsCanonical(req.Path, req.Version) {
			return nil, notCanonical(req)
		}
		if req.Kind == KindMod {
			return h.Modules.GoMod(ctx, req.Path, req.Version)
		}
		return h.Modules.Zip(ctx, req.Path, req.Version)
	}
	return nil, fmt.Errorf("unknown request kind %q", req.Kind) // ParseRequest makes none
}

func contentType(k Kind) string {
	switch k {
	case KindList, KindMod:
		return "text/plain; charset=utf-8"
	case KindZip:
		return "application/zip"
	}
	return "application/json" // .info and @latest
}

type invalidVersionError struct{ msg string }

func (e *invalidVersionError) Error() string { return e.msg }

func notCanonical(req Request) error {
	if err := module.Check(req.Path, req.Version); err != nil {
		return &invalidVersionError{msg: err.Error()}
	}
	return &invalidVersionError{msg: fmt.Sprintf("%s@%s: invalid version: .%s files are served only for canonical versions (such as %s)",
		req.Path, req.Version, req.Kind, module.CanonicalVersion(req.Version))}
}

// serveFile sends f with the Cache-Control its kind of answer allows. A
// file with validators (ETag, modification time: the stored files of
// canonical versions) is sent by http.ServeContent, with Range and
// conditional GET support; for disk storage its content is an *os.File, so
// net/http can use sendfile. A file without them (lists, @latest, queries:
// small answers held in memory) has nothing to revalidate against and is
// sent whole, without the cost of that machinery. An error means that
// nothing was sent.
func serveFile(w http.ResponseWriter, r *http.Request, ctype string, f *protocol.File) error {
	defer f.Content.Close()
	whole := f.ETag == "" && f.ModTime.IsZero()
	var size int64
	if whole {
		var err error
		if size, err = f.Content.Seek(0, io.SeekEnd); err != nil {
			return err
		}
		if _, err = f.Content.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	switch {
	case f.Degraded:
		// Made from stored files while the upstream fails: it may lack
		// versions, so neither clients nor caches between may keep it.
		hdr.Set("Cache-Control", "no-store")
		hdr.Set(degradedHeader, "upstream unavailable; answered from the versions stored in modgate only")
	case f.Mutable:
		hdr.Set("Cache-Control", cacheMutable)
	default:
		hdr.Set("Cache-Control", cacheImmutable)
	}
	if whole {
		hdr.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			io.Copy(w, f.Content) // a bytes.Reader writes itself: no copy buffer
		}
		return nil
	}
	if f.ETag != "" {
		hdr.Set("ETag", f.ETag)
	}
	http.ServeContent(w, r, "", f.ModTime, f.Content)
	return nil
}

// fail maps an error to a status and a one-line reason that tells the
// developer what happened and what to do.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, req Request, err error) {
	what := req.Path
	if req.Version != "" {
		what += "@" + req.Version
	}
	var (
		inv    *protocol.InvalidError
		fetch  *source.FetchError
		badV   *invalidVersionError
		ver    *sumdb.VerifyError
		limit  *protocol.RateLimitError
		unauth *protocol.UnauthorizedError
		forbid *protocol.ForbiddenError
		policy *protocol.PolicyError
	)
	switch {
	case errors.As(err, &unauth):
		// The challenge makes the go command send its GOAUTH or .netrc
		// credentials and retry.
		w.Header().Set("WWW-Authenticate", `Basic realm="modgate"`)
		WriteError(w, r, http.StatusUnauthorized, unauth.Msg)
	case errors.As(err, &forbid):
		WriteError(w, r, http.StatusForbidden, forbid.Msg)
	case errors.As(err, &policy):
		WriteError(w, r, http.StatusForbidden, policy.Error())
	case errors.As(err, &limit):
		secs := int((limit.RetryAfter + time.Second - 1) / time.Second)
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		WriteError(w, r, http.StatusTooManyRequests, fmt.Sprintf("%s: %v; retry in %ds, or ask modgate's operator to raise --upstream-rate", what, limit, secs))
	case errors.As(err, &ver) && ver.Kind == sumdb.Unavailable:
		// Not a verdict: the database could not be asked. Not 404, so that
		// the go command does not fall through to an unverified source.
		WriteError(w, r, http.StatusBadGateway, fmt.Sprintf("%s: %v; try again later", what, err))
	case errors.As(err, &ver):
		// A verdict against the module or the database: 403 stops the go
		// command instead of letting it fall through to another source.
		WriteError(w, r, http.StatusForbidden, fmt.Sprintf("%s: %v", what, err))
	case errors.As(err, &badV):
		WriteError(w, r, http.StatusNotFound, badV.msg)
	case errors.As(err, &inv):
		WriteError(w, r, http.StatusBadGateway, fmt.Sprintf("%s: %v; ask the module's owner or try again later", what, inv))
	case errors.Is(err, source.ErrNotFound):
		WriteError(w, r, http.StatusNotFound, fmt.Sprintf("%s: not found (%v); check the module path and version", what, err))
	case errors.As(err, &fetch) && fetch.Timeout, errors.Is(err, context.DeadlineExceeded):
		WriteError(w, r, http.StatusGatewayTimeout, fmt.Sprintf("%s: upstream timed out (%v); try again, or %s", what, err, advice(fetch)))
	case errors.As(err, &fetch):
		WriteError(w, r, http.StatusBadGateway, fmt.Sprintf("%s: upstream failed (%v); try again later, or %s", what, err, advice(fetch)))
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		WriteError(w, r, 499, "request canceled")
	case errors.Is(err, store.ErrInvalidKey):
		WriteError(w, r, http.StatusBadRequest, fmt.Sprintf("%s: %v", what, err))
	default:
		// The cause may name files of the server: it goes to the request's
		// log line, and the client gets the request id to quote (first, so
		// that a long module path cannot push it out of the message).
		noteError(r, err, "module", logPath(req.Path), "version", logPath(req.Version))
		WriteError(w, r, http.StatusInternalServerError, fmt.Sprintf("internal error in modgate (request id %s) serving %s; ask its operator to check the logs for that request id", w.Header().Get("X-Request-Id"), logPath(what)))
	}
}

// WriteError writes a one-line text/plain reason: the go command shows the
// body of an error response only when it is text/plain.
func WriteError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	msg = strings.Join(strings.Fields(msg), " ") // one line, whatever the cause said
	// Causes quote upstream URLs, which may carry credentials.
	msg = redact.Text(msg)
	// The go command shows at most 648 bytes of an error body.
	if len(msg) > 600 {
		msg = strings.ToValidUTF8(msg[:600], "") + "..."
	}
	hdr := w.Header()
	hdr.Del("ETag")
	hdr.Del("Content-Length")
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintln(w, "modgate: "+msg)
	}
}

// WriteJSON writes v as a JSON answer with status, as the admin API and
// the other JSON endpoints answer: indented (operators read them with
// curl), never cached, with its length, and no body for HEAD. An answer
// that cannot be encoded is a 500 line instead.
func WriteJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		WriteError(w, r, http.StatusInternalServerError, "encoding the answer failed: "+err.Error())
		return
	}
	body = append(body, '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// advice is what the client's error line says to check after a failed
// fetch: what the origin said (a git host's credentials), else modgate's
// upstream list and network.
func advice(fetch *source.FetchError) string {
	if fetch != nil && fetch.Advice != "" {
		return fetch.Advice
	}
	return "check modgate's --upstream and network"
}
