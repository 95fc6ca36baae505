package policy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/vulndb/vulndbtest"
)

// BenchmarkDecide: a policy of 1,000 rules (950 deny rules for one module
// or prefix each, 40 glob deny rules, 10 min-age rules) and a database of
// 3,000 advisories, asked about a mix of modules: some in the database,
// some under a rule, most under none.
func BenchmarkDecide(b *testing.B) {
	dir := b.TempDir()
	vulndbtest.Write(b, filepath.Join(dir, "vulndb"), "1", vulndbtest.Generate(3000))
	var f strings.Builder
	f.WriteString("vulndb: vulndb\ndeny:\n")
	for i := range 950 {
		fmt.Fprintf(&f, "  - module: github.com/denied%d/repo\n    versions: \"<v1.%d.0 >=v0.1.0\"\n    reason: rule %d\n", i, i%10, i)
	}
	for i := range 40 {
		fmt.Fprintf(&f, "  - module: \"*.corp%d.example.com/*\"\n    versions: \"<v0.5.0\"\n", i)
	}
	f.WriteString("min-age:\n")
	for i := range 9 {
		fmt.Fprintf(&f, "  - module: github.com/fresh%d\n    age: 1h\n", i)
	}
	f.WriteString("  - module: \"*\"\n    age: 72h\nwaive:\n  - id: GO-2099-0007\n")
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(f.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	e, err := policy.New(policy.Config{File: file})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	published := time.Now().Add(-1000 * time.Hour)
	type q struct{ mod, version string }
	var qs []q
	for i := range 64 {
		switch i % 4 {
		case 0: // in the vulnerability database
			qs = append(qs, q{fmt.Sprintf("github.com/org%d/repo%d", (2*i)%97, i), "v1.0.5"})
		case 1: // under a deny rule
			qs = append(qs, q{fmt.Sprintf("github.com/denied%d/repo/sub", i*7), "v1.9.0"})
		default: // nothing applies but the catch-all min-age
			qs = append(qs, q{fmt.Sprintf("github.com/someone%d/lib/v2", i), "v2.3.4"})
		}
	}
	denied := 0
	for _, q := range qs {
		if !e.Decide(q.mod, q.version, published).Allowed {
			denied++
		}
	}
	b.ReportMetric(float64(denied)/float64(len(qs)), "denied/op")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		q := qs[i%len(qs)]
		e.Decide(q.mod, q.version, published)
	}
}
