package warmup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/jobs"
	"github.com/modgate/modgate/internal/modgraph"
)

// Request bounds: a go.mod or go.sum of a large project is a few hundred
// KiB at most.
const (
	// MaxFile bounds each uploaded file (gomod, gosum) and a JSON body.
	MaxFile = 1 << 20
	// MaxModules bounds the entries of a JSON list.
	MaxModules = 10000
	// maxForm bounds a whole multipart body: two files and their headers.
	maxForm = 2*MaxFile + 64<<10
)

// Handler serves POST /admin/v1/prefetch:
//
//   - multipart/form-data with the file fields gomod (required) and gosum
//     (optional): the module graph of that main module, with every go.sum
//     entry and its hash checked;
//   - application/json, a list of "path@version" strings, or an object
//     {"modules": [...]} holding one: each version's zip and the graph of
//     its go.mod (what `go install path@version` needs). A version is
//     canonical, or "latest", which the job resolves as a client's
//     @latest would (through the policy).
//
// Everything is checked before a job starts; a bad request is refused
// with one text/plain line. The answer is 202 with the job's id and URL;
// 429 while too many jobs run.
func (w *Warmer) Handler() http.Handler {
	return http.HandlerFunc(w.serve)
}

func (w *Warmer) serve(rw http.ResponseWriter, r *http.Request) {
	req, status, err := readRequest(rw, r)
	if err != nil {
		goproxy.WriteError(rw, r, status, "prefetch: "+err.Error())
		return
	}
	st, err := w.cfg.Jobs.Start(r.Context(), "prefetch", w.run(req))
	switch {
	case errors.Is(err, jobs.ErrBusy):
		rw.Header().Set("Retry-After", "60")
		goproxy.WriteError(rw, r, http.StatusTooManyRequests, "prefetch: too many jobs are running on this modgate; wait for one to end (GET /admin/v1/jobs/<id>) and try again")
		return
	case errors.Is(err, jobs.ErrClosed):
		goproxy.WriteError(rw, r, http.StatusServiceUnavailable, "prefetch: modgate is shutting down; try again")
		return
	case err != nil:
		w.cfg.Logger.Error("prefetch: the job could not start", "err", err)
		goproxy.WriteError(rw, r, http.StatusInternalServerError, "prefetch: the job could not be recorded in storage; see modgate's log")
		return
	}
	what := fmt.Sprintf("go.mod of %d bytes, go.sum of %d bytes", len(req.gomod), len(req.gosum))
	if req.gomod == nil {
		what = fmt.Sprintf("%d modules", len(req.modules))
	}
	w.cfg.Logger.Info("prefetch job started", "job", st.ID, "input", what)
	url := "/admin/v1/jobs/" + st.ID
	rw.Header().Set("Location", url)
	goproxy.WriteJSON(rw, r, http.StatusAccepted, map[string]string{"id": st.ID, "state": string(st.State), "url": url})
}

// readRequest reads and checks a prefetch request; on error, the status
// to answer with.
func readRequest(rw http.ResponseWriter, r *http.Request) (request, int, error) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mediaType = ""
	}
	switch mediaType {
	case "multipart/form-data":
		r.Body = http.MaxBytesReader(rw, r.Body, maxForm)
		return readForm(multipart.NewReader(r.Body, params["boundary"]))
	case "application/json":
		r.Body = http.MaxBytesReader(rw, r.Body, MaxFile)
		return readList(r.Body)
	}
	return request{}, http.StatusUnsupportedMediaType, errors.New("send multipart/form-data with a gomod file (and a gosum file), or application/json with a list of module@version")
}

// readForm reads the gomod and gosum files of a multipart form.
func readForm(mr *multipart.Reader) (request, int, error) {
	var req request
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return request{}, statusOf(err), fmt.Errorf("reading the form: %v", err)
		}
		name := part.FormName()
		var dst *[]byte
		switch name {
		case "gomod":
			dst = &req.gomod
		case "gosum":
			dst = &req.gosum
		default:
			return request{}, http.StatusBadRequest, fmt.Errorf("unknown form field %.40q: want gomod and, optionally, gosum", name)
		}
		if *dst != nil {
			return request{}, http.StatusBadRequest, fmt.Errorf("form field %s given twice", name)
		}
		data, err := io.ReadAll(io.LimitReader(part, MaxFile+1))
		if err != nil {
			return request{}, statusOf(err), fmt.Errorf("reading %s: %v", name, err)
		}
		if len(data) > MaxFile {
			return request{}, http.StatusRequestEntityTooLarge, fmt.Errorf("%s is larger than %d bytes", name, MaxFile)
		}
		*dst = append([]byte{}, data...) // not nil, even when empty
	}
	if req.gomod == nil {
		return request{}, http.StatusBadRequest, errors.New("the form has no gomod file")
	}
	if err := modgraph.CheckGoMod(req.gomod); err != nil {
		return request{}, http.StatusBadRequest, err
	}
	if req.gosum != nil {
		if _, err := modgraph.FromGoSum(req.gosum); err != nil {
			return request{}, http.StatusBadRequest, err
		}
	}
	return req, 0, nil
}

// readList reads a JSON list of module versions.
func readList(body io.Reader) (request, int, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return request{}, statusOf(err), fmt.Errorf("reading the body: %v", err)
	}
	var list []string
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		var obj struct {
			Modules []string `json:"modules"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&obj); err != nil {
			return request{}, http.StatusBadRequest, fmt.Errorf(`want {"modules": ["path@version", ...]}: %v`, err)
		}
		list = obj.Modules
	} else if err := json.Unmarshal(data, &list); err != nil {
		return request{}, http.StatusBadRequest, fmt.Errorf(`want a JSON list ["path@version", ...]: %v`, err)
	}
	if len(list) == 0 {
		return request{}, http.StatusBadRequest, errors.New("the list of modules is empty")
	}
	if len(list) > MaxModules {
		return request{}, http.StatusRequestEntityTooLarge, fmt.Errorf("%d modules listed, at most %d per job", len(list), MaxModules)
	}
	seen := map[module.Version]bool{}
	var req request
	for _, s := range list {
		m, err := parseModule(s)
		if err != nil {
			return request{}, http.StatusBadRequest, err
		}
		if !seen[m] {
			seen[m] = true
			req.modules = append(req.modules, m)
		}
	}
	return req, 0, nil
}

// parseModule checks one "path@version" of a list: a valid module path
// with a canonical version that suits it, or "latest".
func parseModule(s string) (module.Version, error) {
	path, version, ok := strings.Cut(s, "@")
	if !ok {
		return module.Version{}, fmt.Errorf("%.200q: want path@version", s)
	}
	// The errors of CheckPath and Check quote the path and version.
	if err := module.CheckPath(path); err != nil {
		return module.Version{}, err
	}
	if version == "latest" {
		return module.Version{Path: path, Version: version}, nil
	}
	if err := module.Check(path, version); err != nil {
		return module.Version{}, err
	}
	if module.CanonicalVersion(version) != version {
		return module.Version{}, fmt.Errorf("%.200q: want a canonical version (v1.2.3, a pseudo-version) or latest", s)
	}
	return module.Version{Path: path, Version: version}, nil
}

// statusOf is the status for a failed read of the body: 413 when it was
// over the bound.
func statusOf(err error) int {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}
