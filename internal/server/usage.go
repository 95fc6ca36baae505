package server

import (
	"context"
	"log/slog"
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
// reads back this replica's saved series (ctx bounds that). now is the
// server's clock, nil for time.Now.
func newUsage(ctx context.Context, st store.Store, log *slog.Logger, now func() time.Time) *usageParts {
	// The host name identifies a replica's series across its restarts
	// (stable for a StatefulSet's pods and VMs); os.Hostname fails only
	// on broken systems, and ReplicaName gives a name then.
	host, _ := os.Hostname()
	h := history.New(ctx, history.Config{Gatherer: metrics.Registry, Store: st, Replica: host, Now: now, Logger: log})
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
