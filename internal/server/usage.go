package server

import (
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/history"
	"github.com/modgate/modgate/internal/metrics"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/store"
)

// usageParts record how the store is used: each version's last access,
// download count and origin (package access: what retention orders by
// and the catalog shows), and the charts' time series (package history,
// GET /admin/v1/history).
type usageParts struct {
	recorder *access.Recorder
	history  *history.History
}

// newUsage builds the recorder and the history over st; the history
// reads back this replica's saved series (ctx bounds that). listen is the
// server's listen address; now is its clock, nil for time.Now.
func newUsage(ctx context.Context, st store.Store, listen string, log *slog.Logger, now func() time.Time) *usageParts {
	h := history.New(ctx, history.Config{Gatherer: metrics.Registry, Store: st, Replica: replicaName(listen), Now: now, Logger: log})
	r := access.New(access.Config{Store: st, Logger: log, Now: now, Downloaded: h.Download})
	return &usageParts{recorder: r, history: h}
}

// wrap records the answers of m. It goes inside the gate, so that what the
// gate refuses is not counted, and outside prefetch, whose own fetches are
// no use of a version.
func (u *usageParts) wrap(m protocol.Modules) protocol.Modules { return u.recorder.Wrap(m) }

// start writes the usage records and samples the series in the
// background until ctx is done; the channel is closed when both have
// stopped.
func (u *usageParts) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		historyDone := make(chan struct{})
		go func() {
			defer close(historyDone)
			u.history.Run(ctx)
		}()
		u.recorder.Run(ctx)
		<-historyDone
	}()
	return done
}

// close writes what was counted since the last flush and saves the
// series. Call it once nothing is served any more.
func (u *usageParts) close() {
	u.recorder.Close()
	u.history.Close()
}

// replicaName identifies this process's series across its restarts: the
// host name (stable for VMs and a StatefulSet's pods; a Deployment's new
// pod starts a new series, and the old one's stays in the sums until it
// ages out), with the listen port, so that two modgates on one host
// sharing a store keep apart. os.Hostname fails only on broken systems,
// and history.ReplicaName gives a name then.
func replicaName(listen string) string {
	host, _ := os.Hostname()
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" && port != "0" {
		host += "-" + port
	}
	return host
}
