package jobs

import (
	"errors"
	"net/http"

	"github.com/modgate/modgate/internal/goproxy"
)

// StatusHandler serves GET /admin/v1/jobs/{id}: the job's Status as JSON,
// 404 for an unknown id. Who may ask is the caller's business (the admin
// guard).
func (r *Registry) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		st, err := r.Get(req.Context(), req.PathValue("id"))
		switch {
		case errors.Is(err, ErrNotFound):
			goproxy.WriteError(w, req, http.StatusNotFound, "no job with this id (the records of ended jobs are removed after a while)")
			return
		case err != nil:
			r.cfg.Logger.Error("jobs: reading a job's record failed", "err", err)
			goproxy.WriteError(w, req, http.StatusInternalServerError, "reading the job's record failed; see modgate's log")
			return
		}
		goproxy.WriteJSON(w, req, http.StatusOK, st)
	})
}
