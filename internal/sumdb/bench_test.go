package sumdb

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
)

// What verification adds to cold fetches through the whole server (cache,
// verifier and storage as modgate serve wires them) is measured by
// BenchmarkColdFetchVerification in internal/server: package server
// builds on this one, so its benchmarks cannot live here.

// BenchmarkVerify measures the verifier alone, against an in-process
// database over HTTP whose log has a few hundred records (three levels of
// tiles), one op being the go.mod and zip verification of one version:
//
//   - "stored": its lookup is stored (a long-running modgate serving
//     versions it verified before);
//   - "stored-parallel": the same from all CPUs at once;
//   - "lookup": its lookup is not stored, the tree and tiles are (a new
//     version of a module), so the op includes one lookup over HTTP.
func BenchmarkVerify(b *testing.B) {
	const mods = 64
	skey, vkey := testKeys(b)
	recs := records{}
	var paths []string
	for i := range mods {
		p := fmt.Sprintf("bench.example/w%02d", i)
		paths = append(paths, p)
		recs.add(p, "v1.0.0", fakeH1(p+" zip"), fakeH1(p+" mod"))
	}
	db := newTestDB(b, skey, vkey, recs)
	db.grow(300)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	st := newDisk(b)
	newV := func() *Verifier {
		return NewVerifier(Config{DB: db.DB(), Store: st, Remote: NewRemote(db.DB(), nil, testClient), Logger: log})
	}
	verify := func(b *testing.B, v *Verifier, p string) {
		if err := v.Verify(ctx, p, "v1.0.0", true, fakeH1(p+" mod")); err != nil {
			b.Fatal(err)
		}
		if err := v.Verify(ctx, p, "v1.0.0", false, fakeH1(p+" zip")); err != nil {
			b.Fatal(err)
		}
	}
	warm := newV()
	for _, p := range paths {
		verify(b, warm, p)
	}
	warm.Close()

	b.Run("stored", func(b *testing.B) {
		v := newV()
		defer v.Close()
		i := 0
		for b.Loop() {
			verify(b, v, paths[i%mods])
			i++
		}
	})
	b.Run("stored-parallel", func(b *testing.B) {
		v := newV()
		defer v.Close()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				verify(b, v, paths[next.Add(1)%mods])
			}
		})
	})
	b.Run("lookup", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			p := paths[i%mods]
			i++
			if err := st.Delete(ctx, "sumdb/"+testDBName+"/lookup/"+p+"@v1.0.0"); err != nil {
				b.Fatal(err)
			}
			v := newV()
			b.StartTimer()
			verify(b, v, p)
			b.StopTimer()
			v.Close()
			b.StartTimer()
		}
	})
}
