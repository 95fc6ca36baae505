package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/protocol"
)

// The policy check API (POST /policy/check) answers, for a list of module
// versions, what the policy says of each, without downloading any zip: CI
// runs "modgate scan" against it to fail a build whose build list holds a
// version the proxy would refuse.
const (
	// MaxCheckModules bounds one request; a build list of thousands of
	// modules fits, a client with more sends several requests.
	MaxCheckModules = 10000
	maxCheckBody    = 4 << 20
)

// CheckRequest is the body of POST /policy/check.
type CheckRequest struct {
	Modules []CheckModule `json:"modules"`
}

// CheckModule is one module version to check.
type CheckModule struct {
	Path    string `json:"path"`
	Version string `json:"version"`
}

// CheckResponse is the answer of POST /policy/check: one result per module
// of the request, in its order.
type CheckResponse struct {
	// DryRun reports a server that only records what it would deny: the
	// verdicts are the policy's, but the server serves those versions.
	DryRun  bool          `json:"dry_run,omitempty"`
	Results []CheckResult `json:"results"`
}

// CheckResult is the policy's verdict on one module version. Rule and
// Reason are as in Verdict. Notes name the rules that could not be
// applied (the version's time or the module's retractions unreadable):
// such a version is reported allowed as far as the other rules go.
type CheckResult struct {
	Path    string   `json:"path"`
	Version string   `json:"version"`
	Allowed bool     `json:"allowed"`
	Rule    string   `json:"rule,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// MinAgeApplies reports whether a minimum age applies to module: only
// then does a verdict depend on the version's time.
func (e *Engine) MinAgeApplies(module string) bool {
	return e.cur.Load().ageRule(module) != nil
}

// BlocksRetracted reports whether the policy refuses retracted versions.
func (e *Engine) BlocksRetracted() bool {
	return e.cur.Load().blockRetracted
}

// CheckHandler answers POST /policy/check with the policy's verdicts.
// m must be the modules without the policy (the cache): the handler reads
// a version's .info for its time when a minimum age applies, and the
// latest go.mod of a module for its retractions when block-retracted is
// on, both metadata; no zip is read. Authentication is the caller's.
func (e *Engine) CheckHandler(m protocol.Modules) http.Handler {
	g := &gate{Modules: m, e: e, retracts: newRetractTable()}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			checkError(w, http.StatusMethodNotAllowed, "use POST with a JSON body {\"modules\":[{\"path\":...,\"version\":...}]}")
			return
		}
		req, err := readCheckRequest(w, r)
		if err != nil {
			checkError(w, http.StatusBadRequest, err.Error())
			return
		}
		resp := CheckResponse{DryRun: e.cfg.DryRun, Results: make([]CheckResult, 0, len(req.Modules))}
		for _, mod := range req.Modules {
			if err := r.Context().Err(); err != nil {
				return // the client is gone
			}
			resp.Results = append(resp.Results, g.checkOne(r.Context(), mod.Path, mod.Version))
		}
		goproxy.WriteJSON(w, r, http.StatusOK, resp)
	})
}

func readCheckRequest(w http.ResponseWriter, r *http.Request) (*CheckRequest, error) {
	body := http.MaxBytesReader(w, r.Body, maxCheckBody)
	var req CheckRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("body larger than %d bytes: send at most %d modules a request", maxCheckBody, MaxCheckModules)
		}
		return nil, fmt.Errorf("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON body: more than one value")
	}
	if len(req.Modules) > MaxCheckModules {
		return nil, fmt.Errorf("%d modules: at most %d a request", len(req.Modules), MaxCheckModules)
	}
	for i, mod := range req.Modules {
		if !protocol.IsCanonical(mod.Path, mod.Version) {
			return nil, fmt.Errorf("modules[%d]: %q@%q is not a module path with a canonical version", i, mod.Path, mod.Version)
		}
	}
	return &req, nil
}

// checkOne decides like the wrapper does on a download, reporting the
// rules it could not apply instead of leaving them out silently.
func (g *gate) checkOne(ctx context.Context, path, version string) CheckResult {
	res := CheckResult{Path: path, Version: version}
	p := g.e.cur.Load()
	now := g.e.cfg.Now()
	v := p.decide(path, version, time.Time{}, now)
	if v.Allowed && p.blockRetracted {
		// Read the retractions here to learn why they are unreadable;
		// retracted then finds them in the table.
		var err error
		if e, ok := g.retracts.Get(path); !ok || now.Sub(e.fetched) > retractTTL {
			var list []retraction
			if list, err = g.readRetractions(ctx, path); err == nil {
				g.retracts.Add(path, retractEntry{list: list, fetched: now})
			}
		}
		if err != nil {
			res.Notes = append(res.Notes, "retractions not checked: "+err.Error())
		} else if r, ok := g.retracted(ctx, p, path, version); ok {
			v = r
		}
	}
	if v.Allowed && p.ageRule(path) != nil {
		if f, err := g.Modules.Info(ctx, path, version); err != nil {
			res.Notes = append(res.Notes, "min-age not checked: the version's time is unknown: "+err.Error())
		} else {
			t := infoTime(f)
			f.Content.Close()
			if t.IsZero() {
				res.Notes = append(res.Notes, "min-age not checked: the version's .info has no time")
			}
			v = p.decide(path, version, t, now)
		}
	}
	res.Allowed, res.Rule, res.Reason = v.Allowed, v.Rule, v.Reason
	return res
}

func checkError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, "modgate: policy check: "+msg+"\n")
}
