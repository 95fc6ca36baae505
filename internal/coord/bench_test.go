package coord_test

import (
	"context"
	"testing"

	"golang.org/x/sync/singleflight"

	"github.com/modgate/modgate/internal/coord"
)

// The cost of coordination itself, with a call that does nothing: a Group
// (detached, cancellable, bounded call in its own goroutine) against
// singleflight, which runs the call on the first caller's goroutine (Do) or
// a new one (DoChan, as a caller that must stop waiting when its context
// ends uses it). "alone": every call runs for one caller; "shared": callers
// on every P ask for one key at once.

func BenchmarkGroupDo(b *testing.B) {
	g := coord.NewGroup(coord.GroupConfig{Timeout: coord.DefaultLease})
	defer g.Close()
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	b.Run("alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Do(ctx, "k", fn)
		}
	})
	b.Run("shared", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g.Do(ctx, "k", fn)
			}
		})
	})
}

func BenchmarkSingleflight(b *testing.B) {
	var g singleflight.Group
	ctx := context.Background()
	fn := func() (any, error) { return nil, nil }
	doChan := func() {
		select {
		case <-g.DoChan("k", fn):
		case <-ctx.Done():
		}
	}
	b.Run("Do/alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Do("k", fn)
		}
	})
	b.Run("Do/shared", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g.Do("k", fn)
			}
		})
	})
	b.Run("DoChan/alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			doChan()
		}
	})
	b.Run("DoChan/shared", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				doChan()
			}
		})
	})
}
