package audit_test

// What the audit log costs:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/audit/
//
// BenchmarkWrite is one event appended to a file (encoding, one write
// system call, rotation included at the default size). BenchmarkWrapHit
// compares a warm cache hit (.mod and .zip, the file opened and closed)
// without and with the audit wrapper, which adds the event and the h1:
// lookup (the stored .ziphash, or the go.mod hashed).

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/audit"
	"github.com/modgate/modgate/internal/protocol"
)

func BenchmarkWrite(b *testing.B) {
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), audit.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := event(0)
	e.Time = time.Time{} // stamped by Write, as for Wrap's events
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Write(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrapHit(b *testing.B) {
	c, _ := newCache(b, "example.com/a")
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), audit.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := protocol.WithClient(protocol.WithRequestID(context.Background(), "0123456789abcdef"), "10.0.0.1:50000")
	ctx = protocol.WithPrincipal(ctx, protocol.Principal{Name: "ci"})
	const path, version = "example.com/a", "v1.0.0"
	for _, m := range []protocol.Modules{c, audit.Wrap(c, l)} { // warm both files
		for _, get := range []func(context.Context, string, string) (*protocol.File, error){m.GoMod, m.Zip} {
			f, err := get(ctx, path, version)
			if err != nil {
				b.Fatal(err)
			}
			f.Content.Close()
		}
	}
	for _, file := range []string{"mod", "zip"} {
		for _, variant := range []struct {
			name string
			m    protocol.Modules
		}{{"bare", c}, {"audited", audit.Wrap(c, l)}} {
			get := variant.m.Zip
			if file == "mod" {
				get = variant.m.GoMod
			}
			b.Run(file+"/"+variant.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					f, err := get(ctx, path, version)
					if err != nil {
						b.Fatal(err)
					}
					f.Content.Close()
				}
			})
		}
	}
}

// BenchmarkQuery scans a log of 100,000 events (about 30 MB) for one
// module (most lines rejected without decoding) and for one principal
// (every line decoded), keeping the newest 1,000 matches.
func BenchmarkQuery(b *testing.B) {
	l, err := audit.Open(filepath.Join(b.TempDir(), "audit.log"), audit.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n = 100_000
	for i := range n {
		e := event(i % 1000)
		e.Time = e.Time.Add(time.Duration(i) * time.Millisecond)
		if err := l.Write(e); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		f    audit.Filter
	}{{"module", audit.Filter{Module: event(7).Module}}, {"principal", audit.Filter{Principal: "ci"}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := l.Query(context.Background(), c.f); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/line")
		})
	}
}
