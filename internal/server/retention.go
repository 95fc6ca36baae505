package server

import (
	"context"
	"time"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/retention"
)

// retentionInterval is how often a serving modgate with --max-storage
// checks the store's size.
const retentionInterval = 5 * time.Minute

// retentionLease is how long the replicas' retention lock outlives a
// replica that died holding it; the holder renews it every third of that
// while it works, however long a run over a large store takes.
var retentionLease = time.Minute

// startRetention keeps the store under --max-storage until ctx is done,
// checking every retentionInterval; off (a closed channel) without it.
func (s *Server) startRetention(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	if s.cfg.MaxStorage <= 0 {
		close(done)
		return done
	}
	t := time.NewTicker(retentionInterval)
	go func() {
		defer close(done)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s.enforceRetention(ctx)
		}
	}()
	return done
}

// enforceRetention removes the least recently used versions until the
// store fits --max-storage (package retention: never a version used in
// the last ten minutes), and makes the cache refetch the lists of the
// modules it touched. With replicas sharing a lock service, one of them
// does it at a time.
func (s *Server) enforceRetention(ctx context.Context) {
	if s.coord.locks != nil {
		lease, ok, err := s.coord.locks.TryLock(ctx, "retention", retentionLease)
		if err != nil || !ok {
			return // another replica is at it, or Redis is down: next time
		}
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		held := s.holdLease(ctx, lease, stop)
		defer func() {
			stop()
			<-held
			lease.Release(context.WithoutCancel(ctx))
		}()
	}
	plan, err := retention.Plan(ctx, s.store, int64(s.cfg.MaxStorage), time.Now(), retention.Options{Recent: s.usage.recorder.Recent})
	if err != nil {
		s.log.Error("retention: cannot list the store", "err", err)
		return
	}
	if len(plan.Remove) == 0 {
		return
	}
	err = retention.Apply(ctx, s.store, plan, func(v retention.Version) { s.cache.Invalidate(v.Path) })
	if err != nil {
		s.log.Error("retention: removing versions failed", "err", err)
		return
	}
	s.log.Info("retention: removed least recently used versions", "versions", len(plan.Remove), "bytes", plan.Removed,
		"total", plan.After(), "max", int64(s.cfg.MaxStorage))
	if !plan.Fits() {
		s.log.Warn("retention: the store stays over --max-storage: what is left was used in the last ten minutes", "total", plan.After(), "max", int64(s.cfg.MaxStorage))
	}
}

// holdLease renews lease every third of retentionLease until ctx is done;
// if the lease is lost (Redis was unreachable for that long, and another
// replica may have started), it calls stop, so that two replicas never
// remove versions at once for long. The channel is closed when it stops.
func (s *Server) holdLease(ctx context.Context, lease coord.Lease, stop context.CancelFunc) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(retentionLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := lease.Renew(ctx, retentionLease); err != nil && ctx.Err() == nil {
				s.log.Warn("retention: lost the replicas' retention lock; stopping this run", "err", err)
				stop()
				return
			}
		}
	}()
	return done
}
