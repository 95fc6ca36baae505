package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/source"
	"github.com/modgate/modgate/internal/store"
)

// The admin API's first operations (issue #12 adds the rest): fixing a
// bad entry without a shell on the server. Both answer JSON; errors are
// one text/plain line. Who may call them is the gate's business
// (gateParts.admin).

// purgeVersion serves DELETE /admin/v1/modules/<module>/@v/<version>: the
// version's stored files go (it is fetched again on the next request) and
// the module's lists and @latest are refetched.
func (s *Server) purgeVersion(w http.ResponseWriter, r *http.Request) {
	escPath, escVersion, ok := strings.Cut(r.PathValue("rest"), "/@v/")
	path, err1 := module.UnescapePath(escPath)
	version, err2 := module.UnescapeVersion(escVersion)
	if !ok || err1 != nil || err2 != nil || module.CanonicalVersion(version) != version {
		goproxy.WriteError(w, r, http.StatusBadRequest, "want DELETE /admin/v1/modules/<escaped module path>/@v/<canonical version>")
		return
	}
	prefix, err := store.VersionPrefix(path)
	if err != nil {
		goproxy.WriteError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var keys []string
	err = s.store.List(r.Context(), prefix, func(key string) error {
		if _, v, _, err := store.ParseVersionKey(key); err == nil && v == version {
			keys = append(keys, key)
		}
		return nil
	})
	for _, key := range keys {
		if err == nil {
			if derr := s.store.Delete(r.Context(), key); derr != nil && !errors.Is(derr, store.ErrNotExist) {
				err = derr
			}
		}
	}
	if err != nil {
		s.log.Error("admin: purge failed", "module", path, "version", version, "err", err)
		goproxy.WriteError(w, r, http.StatusInternalServerError, "purging "+path+"@"+version+" failed; see modgate's log")
		return
	}
	s.cache.Invalidate(path)
	s.log.Info("admin: purged", "module", path, "version", version, "files", len(keys))
	goproxy.WriteJSON(w, r, http.StatusOK, map[string]any{"module": path, "version": version, "files": len(keys)})
}

// refreshModule serves POST /admin/v1/refresh/<module>: its list and
// @latest are fetched from the source now, whatever --list-ttl says.
func (s *Server) refreshModule(w http.ResponseWriter, r *http.Request) {
	path, err := module.UnescapePath(r.PathValue("module"))
	if err != nil {
		goproxy.WriteError(w, r, http.StatusBadRequest, "want POST /admin/v1/refresh/<escaped module path>")
		return
	}
	asked := s.now()
	s.cache.Invalidate(path)
	vs, err := s.cache.List(r.Context(), path)
	switch {
	case errors.Is(err, source.ErrNotFound):
		goproxy.WriteError(w, r, http.StatusNotFound, fmt.Sprintf("refreshing %s: no source has this module (%v); check the module path", path, err))
		return
	case err != nil:
		goproxy.WriteError(w, r, http.StatusBadGateway, fmt.Sprintf("refreshing %s: %v", path, err))
		return
	case vs.Degraded || vs.Fetched.Before(asked):
		// The source failed and clients keep getting what modgate had
		// (stale-if-error): for the operator who asked, that is no
		// refresh. The cause is in the log, with the source's name.
		kept := "made from the versions stored"
		if !vs.Degraded && !vs.Fetched.IsZero() {
			kept = "fetched at " + vs.Fetched.UTC().Format(time.RFC3339)
		}
		goproxy.WriteError(w, r, http.StatusBadGateway, fmt.Sprintf("refreshing %s: the source did not answer (see modgate's log for why); clients still get the list %s", path, kept))
		return
	}
	versions := make([]string, 0, len(vs.Tagged))
	for _, v := range vs.Tagged {
		versions = append(versions, v.Version)
	}
	latest := ""
	if f, err := s.cache.Latest(r.Context(), path); err == nil {
		latest = f.Version
		f.Content.Close()
	}
	s.log.Info("admin: refreshed", "module", path, "versions", len(versions), "latest", latest)
	goproxy.WriteJSON(w, r, http.StatusOK, map[string]any{"module": path, "versions": versions, "latest": latest})
}
