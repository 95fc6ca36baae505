package goproxy_test

import "testing"

// The warm paths of mutable answers: @v/list and @latest answered from a
// fresh cached answer in storage (within --list-ttl), as most list and
// @latest requests are.

func benchWarmMutable(b *testing.B, suffix string) {
	env := newBenchEnv(b)
	url := env.url + "/" + benchSmall + "/" + suffix
	size := get(b, env.client, url, -1) // cold: fetched from the upstream and stored
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get(b, env.client, url, size)
	}
}

func BenchmarkWarmList(b *testing.B)   { benchWarmMutable(b, "@v/list") }
func BenchmarkWarmLatest(b *testing.B) { benchWarmMutable(b, "@latest") }
