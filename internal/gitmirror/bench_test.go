package gitmirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
)

// BenchmarkFetchNoChange is the cost of refreshing an up-to-date mirror
// (what a TTL expiry or a webhook for an unrelated push costs): one
// ls-remote over http with basic auth, and the local comparison.
func BenchmarkFetchNoChange(b *testing.B) {
	f := newFixture(b, Config{})
	r := f.fetched(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := r.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArchive is the cost of one module zip from a mirror: 200 files,
// 2 MiB.
func BenchmarkArchive(b *testing.B) {
	f := newFixture(b, Config{})
	buf := make([]byte, 10<<10)
	for i := range 200 {
		rand.Read(buf)
		f.repo.Write(fmt.Sprintf("pkg%d/f%d.go", i%10, i), fmt.Sprintf("package pkg\n// %x\n", buf))
	}
	hash := f.repo.Commit("many files")
	r := f.fetched(b)
	ctx := context.Background()
	var out bytes.Buffer
	if err := r.Archive(ctx, hash, "", &out, 1<<30); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(out.Len()))
	b.ResetTimer()
	for b.Loop() {
		if err := r.Archive(ctx, hash, "", io.Discard, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}
