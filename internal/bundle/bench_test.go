package bundle

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

// BenchmarkImport imports a bundle of 8 modules of 2 MiB of incompressible
// content each (and their go.mod files, and proofs) into an empty data
// dir: both passes, the proofs' replay, the offline check and the stores'
// fsyncs. MB/s is of the bundle file.
func BenchmarkImport(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	var mods []testenv.Module
	var paths []string
	for i := range 8 {
		data := make([]byte, 2<<20)
		rng.Read(data)
		p := fmt.Sprintf("example.com/big%d", i)
		paths = append(paths, p)
		mods = append(mods, testenv.Module{Path: p, Version: "v1.0.0", Files: map[string]string{"data.bin": string(data)}})
	}
	f := newFixtureOf(b, mods)
	opt := f.options()
	opt.GoMod = nil
	for _, p := range paths {
		opt.Modules = append(opt.Modules, modVersion(p, "v1.0.0"))
	}
	bundle, _ := f.export(b, opt)
	b.SetBytes(int64(len(bundle)))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		st := newStore(b)
		b.StartTimer()
		if _, err := Import(context.Background(), bytes.NewReader(bundle), int64(len(bundle)), ImportOptions{DB: f.sdb, Store: st, ScratchDir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
}
