package bundle

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzImport feeds Import arbitrary bytes, starting from a real bundle and
// cuts of it: it must never panic, and a refused bundle stores nothing.
func FuzzImport(f *testing.F) {
	fx := newFixture(f)
	good, _ := fx.export(f, fx.options())
	f.Add(good)
	for _, n := range []int{0, 512, 1024, len(good) / 2, len(good) - 1024} {
		f.Add(good[:n])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st := newStore(t)
		if _, err := importInto(t, st, fx.sdb, b); err != nil {
			if files := storedFiles(t, st); len(files) != 0 {
				t.Errorf("refused (%v), but stored %q", err, files)
			}
		}
	})
}

// FuzzParseManifest: the manifest parser never panics, and what it
// accepts survives a round trip through JSON unchanged.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"created":"2025-01-01T00:00:00Z","sumdb":{"name":"db","key":"k","tree":"t"},` +
		`"modules":[{"path":"example.com/a","version":"v1.0.0","mod":"h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","zip":"h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}],` +
		`"proofs":["lookup/example.com/a@v1.0.0","tile/8/0/000.p/1","tile/8/-1/000.p/1"]}`))
	f.Add([]byte(`{"format":1,"modules":[{"path":"example.com/!upper","version":"v0.0.0-20200101000000-abcdefabcdef"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := parseManifest(again)
		if err != nil {
			t.Fatalf("accepted %q, but not its re-encoding %q: %v", data, again, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
		}
	})
}
