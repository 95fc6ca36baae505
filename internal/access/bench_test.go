package access_test

// What recording costs: a warm hit (a zip stored on disk, opened by the
// real cache) with and without the recorder around the cache, one
// goroutine and all of them, and a flush of 1000 modules' documents to a
// disk store.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/access/

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/access"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/store"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/cachetest"
)

func BenchmarkWrapWarmHit(b *testing.B) {
	dir := b.TempDir()
	testenv.BuildTree(b, dir, fixture)
	up := testenv.NewUpstream(b, dir)
	c, disk := cachetest.New(b, up.URL(), nil)
	r := access.New(access.Config{Store: disk})
	ctx := context.Background()
	if f, err := c.Zip(ctx, "example.com/beta", "v0.1.0"); err != nil { // stored from now on
		b.Fatal(err)
	} else {
		f.Content.Close()
	}
	for _, bc := range []struct {
		name string
		m    protocol.Modules
	}{{"bare", c}, {"recorded", r.Wrap(c)}} {
		hit := func() {
			f, err := bc.m.Zip(ctx, "example.com/beta", "v0.1.0")
			if err != nil {
				b.Fatal(err)
			}
			f.Content.Close()
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				hit()
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					hit()
				}
			})
		})
	}
}

// BenchmarkRecord is the recorder's own cost on a warm hit, without the
// cache's file open around it.
func BenchmarkRecord(b *testing.B) {
	r := access.New(access.Config{Store: nil})
	m := r.Wrap(stored{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Zip(ctx, "example.com/beta", "v0.1.0")
		}
	})
}

func BenchmarkFlush1000Modules(b *testing.B) {
	d, err := store.NewDisk(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	clock := testenv.NewClock(start)
	r := access.New(access.Config{Store: d, Now: clock.Now})
	m := r.Wrap(stored{})
	ctx := context.Background()
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("example.com/module%d", i)
	}
	for b.Loop() {
		b.StopTimer()
		clock.Advance(time.Second)
		for _, p := range paths {
			m.Zip(ctx, p, "v1.0.0")
		}
		b.StartTimer()
		if err := r.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
