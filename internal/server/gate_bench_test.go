package server_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/auth"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/vulndb/vulndbtest"
)

// BenchmarkWarmGate measures what the gate costs on warm requests: one op
// serves the .info, .mod and .zip of benchModules stored fixture modules
// from a keep-alive client over TLS on loopback (server.Listen and Serve:
// middleware, mux, wrappers, cache, storage), with
//
//   - no gate ("off");
//   - tokens, a policy of 1,000 deny rules naming other modules plus a
//     vulnerability database of 3,000 advisories, and the audit log
//     written to a file ("gate").
//
// The ratio of their ns/op is the gate's cost.
func BenchmarkWarmGate(b *testing.B) {
	var paths []string
	var mods []testenv.Module
	for i := range benchModules {
		path := fmt.Sprintf("bench.example/mod%02d", i)
		paths = append(paths, path)
		mods = append(mods, testenv.Module{Path: path, Version: "v1.0.0", Files: map[string]string{
			"a.go": "package mod\n\n// " + strings.Repeat("filler ", 2000) + "\n",
		}})
	}
	tree := b.TempDir()
	testenv.BuildTree(b, tree, mods)
	up := testenv.NewUpstream(b, tree)

	// Over TLS, as tokens are used in practice (the go command sends
	// credentials only over https), for every variant alike.
	ca := testenv.NewCA(b)
	cert, key := ca.Issue(b, "127.0.0.1")
	run := func(b *testing.B, token string, configure func(dir string) []string) {
		cfg := testConfig(b, up.URL())
		cfg.TLSCert, cfg.TLSKey = cert, key
		dir := b.TempDir()
		if configure != nil {
			kv := configure(dir)
			cfg.Tokens, cfg.Policy, cfg.AuditLog = kv[0], kv[1], kv[2]
		}
		s := newBenchServer(b, cfg)
		defer s.Close()
		ln, err := s.Listen()
		if err != nil {
			b.Fatal(err)
		}
		go s.Serve(ln)
		base := "https://" + ln.Addr().String()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
		defer client.CloseIdleConnections()
		serve := func() {
			for _, path := range paths {
				for _, ext := range []string{"info", "mod", "zip"} {
					req, _ := http.NewRequest("GET", base+"/"+path+"/@v/v1.0.0."+ext, nil)
					if token != "" {
						req.SetBasicAuth("bench", token)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || n == 0 {
						b.Fatalf("%s %s: %d", path, ext, resp.StatusCode)
					}
				}
			}
		}
		serve() // warm: everything stored
		for b.Loop() {
			serve()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchModules*3), "ns/request")
	}

	tokens := filepath.Join(b.TempDir(), "tokens.json")
	token, err := auth.Add(tokens, "bench", []string{"*"}, false, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	policyFile := func(dir string) string {
		vdb := filepath.Join(dir, "vulndb")
		vulndbtest.Write(b, vdb, "2026-11-01T00:00:00Z", vulndbtest.Generate(3000))
		var policy strings.Builder
		policy.WriteString("deny:\n")
		for i := range 1000 {
			fmt.Fprintf(&policy, "  - module: deny%d.example/m%d\n    versions: \"<v1.%d.0\"\n    reason: rule %d\n", i%50, i, i%9, i)
		}
		fmt.Fprintf(&policy, "vulndb: %s\n", vdb)
		file := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(file, []byte(policy.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		return file
	}
	// Each part alone, then all three.
	b.Run("off", func(b *testing.B) { run(b, "", nil) })
	b.Run("tokens", func(b *testing.B) {
		run(b, token, func(string) []string { return []string{tokens, "", ""} })
	})
	b.Run("policy", func(b *testing.B) {
		run(b, "", func(dir string) []string { return []string{"", policyFile(dir), ""} })
	})
	b.Run("audit", func(b *testing.B) {
		run(b, "", func(dir string) []string { return []string{"", "", filepath.Join(dir, "audit.log")} })
	})
	b.Run("gate", func(b *testing.B) {
		run(b, token, func(dir string) []string {
			return []string{tokens, policyFile(dir), filepath.Join(dir, "audit.log")}
		})
	})
}
