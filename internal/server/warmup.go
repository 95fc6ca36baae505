package server

import (
	"net/http"

	"github.com/modgate/modgate/internal/jobs"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/warmup"
)

// warmupParts are the admin API's prefetch jobs: POST /admin/v1/prefetch
// and GET /admin/v1/jobs/{id}.
type warmupParts struct {
	jobs   *jobs.Registry
	warmer *warmup.Warmer
}

// newWarmup builds the prefetch jobs over the cache, inside the policy
// when one is on: a version the policy blocks is not fetched, and is the
// job's error. Neither the tokens' patterns (the caller holds an admin
// token) nor the audit log (a prefetch is not a client's download) nor
// the --prefetch wrapper apply. Job records go to the store, so that any
// replica answers for any job.
func (s *Server) newWarmup() *warmupParts {
	var m protocol.Modules = s.cache
	if s.gate.policy != nil {
		m = s.gate.policy.Wrap(m)
	}
	reg := jobs.New(jobs.Config{Store: s.store, Logger: s.log})
	return &warmupParts{jobs: reg, warmer: warmup.New(warmup.Config{Modules: m, Jobs: reg, Logger: s.log})}
}

// routes adds the prefetch endpoints to mux, behind the admin guard.
func (w *warmupParts) routes(mux *http.ServeMux, g *gateParts) {
	mux.Handle("POST /admin/v1/prefetch", g.admin(w.warmer.Handler()))
	mux.Handle("GET /admin/v1/jobs/{id}", g.admin(w.jobs.StatusHandler()))
}

// close interrupts the running jobs and waits for them to record it;
// before the cache closes, as they fetch through it.
func (w *warmupParts) close() {
	if w != nil {
		w.jobs.Close()
	}
}
