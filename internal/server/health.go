package server

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
)

// healthTimeout bounds each check of GET /admin/v1/health: a store or a
// Redis that hangs is reported as failing, not waited for.
const healthTimeout = 5 * time.Second

// maxHealthError bounds an error quoted in the health report.
const maxHealthError = 300

// HealthReport is the answer of GET /admin/v1/health: the state of every
// part modgate depends on, for operators (the web UI's Health page).
// Unlike /readyz, which load balancers ask, it always answers 200 and
// says what is wrong in the parts' fields. It carries no credential: URLs
// are redacted, git hosts are named without what they are given.
type HealthReport struct {
	// OK is true when every part below is.
	OK      bool      `json:"ok"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`

	Storage   StorageHealth    `json:"storage"`
	SumDB     SumDBHealth      `json:"checksum_db"`
	Upstreams []UpstreamStatus `json:"upstreams"`
	Git       GitHealth        `json:"git"`
	// Redis is present with --redis only.
	Redis *RedisHealth `json:"redis,omitempty"`
}

// StorageHealth is the store's answer to a ping.
type StorageHealth struct {
	OK    bool   `json:"ok"`
	Kind  string `json:"kind"` // "disk" or "s3"
	Error string `json:"error,omitempty"`
}

// SumDBHealth is the checksum database verifier's state.
type SumDBHealth struct {
	// Enabled is false with --sumdb off; OK is then true (nothing fails)
	// and the UI warns instead.
	Enabled bool   `json:"enabled"`
	OK      bool   `json:"ok"`
	Name    string `json:"name,omitempty"`
	// Error is a security problem (a forked log: verification stopped)
	// or a stored tree head that cannot be read or does not verify.
	Error string `json:"error,omitempty"`
	// LatestTreeSize is the size of the newest verified tree head stored
	// (0 before the first lookup).
	LatestTreeSize *int64 `json:"latest_tree_size,omitempty"`
}

// UpstreamStatus is one entry of --upstream. For proxies, ok and the times
// come from the requests modgate sent them (none are sent for the report).
type UpstreamStatus struct {
	URL         string     `json:"url"`  // redacted; "direct" or "off" for those entries
	Kind        string     `json:"kind"` // "proxy", "direct" or "off"
	OK          bool       `json:"ok"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

// GitHealth describes the git sources (--private, "direct" entries).
type GitHealth struct {
	Enabled bool   `json:"enabled"`
	OK      bool   `json:"ok"`
	Private string `json:"private,omitempty"`
	// Hosts are the git hosts modgate has credentials for, names only.
	Hosts []string `json:"hosts"`
	// Warnings are what loading the credentials found worth saying.
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// RedisHealth is Redis's answer to a ping.
type RedisHealth struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// serveHealth answers GET /admin/v1/health. The checks that talk to
// something (storage, Redis, the stored tree head) run at once, each
// bounded by healthTimeout.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) != 0 {
		goproxy.WriteError(w, r, http.StatusBadRequest, "GET /admin/v1/health takes no parameters")
		return
	}
	goproxy.WriteJSON(w, r, http.StatusOK, s.health(r.Context()))
}

func (s *Server) health(ctx context.Context) *HealthReport {
	rep := &HealthReport{Version: s.version, Time: time.Now().UTC()}
	var wg sync.WaitGroup
	wg.Go(func() { rep.Storage = s.storageHealth(ctx) })
	wg.Go(func() { rep.SumDB = s.sumDBHealth(ctx) })
	if s.coord.client != nil {
		wg.Go(func() { rep.Redis = s.redisHealth(ctx) })
	}
	rep.Upstreams = s.upstreamHealth()
	rep.Git = s.gitHealth()
	wg.Wait()

	rep.OK = rep.Storage.OK && rep.SumDB.OK && rep.Git.OK && (rep.Redis == nil || rep.Redis.OK)
	for _, u := range rep.Upstreams {
		rep.OK = rep.OK && u.OK
	}
	return rep
}

func (s *Server) storageHealth(ctx context.Context) StorageHealth {
	h := StorageHealth{Kind: s.cfg.Storage}
	if h.Kind == "" {
		h.Kind = store.KindDisk
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		// The cause names files of this machine (or an endpoint): the log
		// gets it, the answer says where to look, as /readyz does.
		s.log.Error("health: storage not usable", "err", err)
		h.Error = "storage not usable; the cause is in modgate's log (health: storage not usable)"
		return h
	}
	h.OK = true
	return h
}

func (s *Server) sumDBHealth(ctx context.Context) SumDBHealth {
	if s.verifier == nil {
		return SumDBHealth{OK: true}
	}
	h := SumDBHealth{Enabled: true, Name: redact.Text(s.verifier.DB().Name)}
	if msg := s.verifier.SecurityProblem(); msg != "" {
		h.Error = "SECURITY ERROR: " + redact.Line(msg, maxHealthError)
		return h
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	n, err := s.verifier.TreeSize(ctx)
	if err != nil {
		h.Error = redact.Line(err.Error(), maxHealthError)
		return h
	}
	h.OK, h.LatestTreeSize = true, &n
	return h
}

func (s *Server) upstreamHealth() []UpstreamStatus {
	out := []UpstreamStatus{}
	for _, e := range s.chain.Entries() {
		u := UpstreamStatus{URL: e.Name, OK: true}
		switch {
		case e.Proxy:
			u.Kind = "proxy"
			u.OK = e.Health.OK()
			u.LastSuccess = timeOrNil(e.Health.LastSuccess)
			u.LastFailure = timeOrNil(e.Health.LastFailure)
			u.LastError = e.Health.LastError
		case e.Name == "direct":
			u.Kind = "direct" // its state is the git part's
		default:
			u.Kind = "off"
		}
		out = append(out, u)
	}
	return out
}

// gitHealth reports what can go wrong with git without asking a server:
// the binary gone (a package upgrade), the mirrors' directory gone.
func (s *Server) gitHealth() GitHealth {
	h := GitHealth{Hosts: []string{}, OK: true}
	if s.git == nil {
		return h
	}
	h.Enabled, h.Private = true, s.cfg.Private
	if names := s.git.hosts.Names(); names != nil {
		h.Hosts = names
	}
	h.Warnings = s.git.hosts.Warnings()
	if _, err := exec.LookPath("git"); err != nil {
		h.OK, h.Error = false, "the git binary is not on PATH any more"
	} else if dir := filepath.Join(s.cfg.DataDir, "git"); !isDir(dir) { // as newGit places them
		s.log.Error("health: the git mirrors' directory is missing", "dir", dir)
		h.OK, h.Error = false, "the git mirrors' directory (<data-dir>/git) is missing; restart modgate to make it again"
	}
	return h
}

func (s *Server) redisHealth(ctx context.Context) *RedisHealth {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if err := s.coord.client.Ping(ctx).Err(); err != nil {
		return &RedisHealth{Error: redact.Line(err.Error(), maxHealthError)}
	}
	return &RedisHealth{OK: true}
}

func isDir(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.IsDir()
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
