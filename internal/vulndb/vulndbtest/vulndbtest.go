// Package vulndbtest writes vulnerability databases in the layout
// vuln.go.dev publishes, for tests and benchmarks of their readers.
package vulndbtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Entry is one advisory affecting one module.
type Entry struct {
	ID, Module, Summary string
	// Ranges are [introduced, fixed] pairs of versions with their "v"
	// ("" introduced: from the first version; "" fixed: not fixed).
	Ranges [][2]string
	// Modified defaults to the database's modified time.
	Modified  string
	Withdrawn bool
}

// Write writes a database holding entries under dir, replacing the files
// it had: index/db.json with modified, index/modules.json, and ID/<id>.json
// as OSV entries.
func Write(t testing.TB, dir, modified string, entries []Entry) {
	t.Helper()
	type vuln struct {
		ID       string `json:"id"`
		Modified string `json:"modified"`
		Fixed    string `json:"fixed,omitempty"`
	}
	type mod struct {
		Path  string `json:"path"`
		Vulns []vuln `json:"vulns"`
	}
	byModule := map[string]*mod{}
	for _, e := range entries {
		if e.Modified == "" {
			e.Modified = modified
		}
		var events []map[string]string
		fixed := ""
		for _, r := range e.Ranges {
			intro := strings.TrimPrefix(r[0], "v")
			if intro == "" {
				intro = "0"
			}
			events = append(events, map[string]string{"introduced": intro})
			if r[1] != "" {
				fixed = strings.TrimPrefix(r[1], "v")
				events = append(events, map[string]string{"fixed": fixed})
			}
		}
		osv := map[string]any{
			"schema_version": "1.3.1",
			"id":             e.ID,
			"modified":       e.Modified,
			"published":      e.Modified,
			"summary":        e.Summary,
			"details":        "Generated for a test.",
			"affected": []any{map[string]any{
				"package": map[string]string{"name": e.Module, "ecosystem": "Go"},
				"ranges":  []any{map[string]any{"type": "SEMVER", "events": events}},
				"ecosystem_specific": map[string]any{
					"imports": []any{map[string]any{"path": e.Module, "symbols": []string{"F"}}},
				},
			}},
			"database_specific": map[string]string{"url": "https://pkg.go.dev/vuln/" + e.ID},
		}
		if e.Withdrawn {
			osv["withdrawn"] = e.Modified
		}
		writeJSON(t, filepath.Join(dir, "ID", e.ID+".json"), osv)
		m := byModule[e.Module]
		if m == nil {
			m = &mod{Path: e.Module}
			byModule[e.Module] = m
		}
		m.Vulns = append(m.Vulns, vuln{ID: e.ID, Modified: e.Modified, Fixed: fixed})
	}
	var mods []*mod
	for _, m := range byModule {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	if mods == nil {
		mods = []*mod{}
	}
	writeJSON(t, filepath.Join(dir, "index", "modules.json"), mods)
	writeJSON(t, filepath.Join(dir, "index", "db.json"), map[string]string{"modified": modified})
}

// Generate returns n advisories in the proportions of the real database:
// spread over about n/2 modules, most with one range fixed in a later
// version, some with two ranges, some never fixed.
func Generate(n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		e := Entry{
			ID:      fmt.Sprintf("GO-2099-%04d", i),
			Module:  fmt.Sprintf("github.com/org%d/repo%d", i%97, i/2),
			Summary: fmt.Sprintf("Generated advisory %d", i),
		}
		switch i % 10 {
		case 0:
			e.Ranges = [][2]string{{"", ""}}
		case 1, 2:
			e.Ranges = [][2]string{{"", fmt.Sprintf("v1.%d.1", i%7)}, {"v1.8.0", "v1.8.3"}}
		default:
			e.Ranges = [][2]string{{"", fmt.Sprintf("v1.%d.0", i%9)}}
		}
		out[i] = e
	}
	return out
}

func writeJSON(t testing.TB, name string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
