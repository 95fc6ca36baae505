package modcheck

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/dirhash"
)

func TestParseInfo(t *testing.T) {
	good := `{"Version":"v1.2.3","Time":"2024-01-02T03:04:05Z"}`
	if info, err := ParseInfo([]byte(good), "example.com/m", "v1.2.3"); err != nil || info.Version != "v1.2.3" {
		t.Fatalf("ParseInfo = %+v, %v", info, err)
	}
	for _, tc := range []struct{ data, path, want, errWant string }{
		{`not json`, "example.com/m", "", "malformed"},
		{`{}`, "example.com/m", "", "no Version"},
		{`{"Version":"v1.2"}`, "example.com/m", "", "non-canonical"},
		{`{"Version":"v2.0.0"}`, "example.com/m", "", "invalid for the path"},
		{good, "example.com/m", "v1.2.4", "but v1.2.4 was requested"},
	} {
		_, err := ParseInfo([]byte(tc.data), tc.path, tc.want)
		if err == nil || !strings.Contains(err.Error(), tc.errWant) {
			t.Errorf("ParseInfo(%s) err = %v, want %q", tc.data, err, tc.errWant)
		}
	}
}

func TestCheckGoMod(t *testing.T) {
	if err := CheckGoMod([]byte("module example.com/m\n\ngo 1.21\n"), "example.com/m", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	// A fork used through a replace directive names the original module.
	if err := CheckGoMod([]byte("module example.com/original\n"), "example.com/fork", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<html>oops</html>", "go 1.21\n", "module \"unterminated\n"} {
		if err := CheckGoMod([]byte(bad), "example.com/m", "v1.0.0"); err == nil {
			t.Errorf("CheckGoMod(%q) accepted", bad)
		}
	}
}

func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "m.zip")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for n, c := range files {
		w, _ := zw.Create(n)
		w.Write([]byte(c))
	}
	zw.Close()
	f.Close()
	return name
}

func TestCheckZip(t *testing.T) {
	good := writeZip(t, map[string]string{"example.com/m@v1.0.0/go.mod": "module example.com/m\n", "example.com/m@v1.0.0/a.go": "package m\n"})
	h1, err := CheckZip(good, "example.com/m", "v1.0.0")
	if err != nil || !strings.HasPrefix(h1, "h1:") {
		t.Fatalf("CheckZip = %q, %v", h1, err)
	}
	wrongPrefix := writeZip(t, map[string]string{"example.com/other@v1.0.0/a.go": "package m\n"})
	if _, err := CheckZip(wrongPrefix, "example.com/m", "v1.0.0"); err == nil {
		t.Error("zip with another module's prefix accepted")
	}
	notZip := filepath.Join(t.TempDir(), "x.zip")
	os.WriteFile(notZip, []byte("<html>proxy error page</html>"), 0o644)
	if _, err := CheckZip(notZip, "example.com/m", "v1.0.0"); err == nil {
		t.Error("non-zip accepted")
	}
}

func TestHashGoMod(t *testing.T) {
	// go.sum of golang.org/x/text v0.3.0 records this hash for its go.mod-less
	// synthesized "module golang.org/x/text\n".
	h, err := HashGoMod([]byte("module golang.org/x/text\n"))
	if want := "h1:NqM8EUOU14njkJ3fqMW+pc6Ldnwhi/IjpwHt7yyuwOQ="; err != nil || h != want {
		t.Fatalf("HashGoMod = %q, %v; want %s", h, err, want)
	}
}

// TestCheckZipDirectoryEntries pins a finding of FuzzCheckZip: a zip with
// directory entries (which the go command's own zips never have) passes
// golang.org/x/mod/zip.CheckZip, and the go command downloads and extracts
// it, so CheckZip accepts it too, with the hash the go command computes
// for it. That hash counts the directory entries, which extraction does not
// recreate, so `go mod verify` later reports such a module as modified: it
// is accepted because refusing it would make the module unusable through
// modgate while the go command itself takes it, not because it is clean.
func TestCheckZipDirectoryEntries(t *testing.T) {
	name := writeZip(t, map[string]string{
		"example.com/m@v1.0.0/":       "",
		"example.com/m@v1.0.0/x/":     "",
		"example.com/m@v1.0.0/x/a.go": "package x\n",
	})
	h1, err := CheckZip(name, "example.com/m", "v1.0.0")
	if err != nil {
		t.Fatalf("CheckZip: %v", err)
	}
	want, err := dirhash.HashZip(name, dirhash.Hash1)
	if err != nil || h1 != want {
		t.Fatalf("CheckZip hash %s, want dirhash.HashZip's %s (%v)", h1, want, err)
	}
	// Without the directory entries the hash differs: they are hashed.
	plain := writeZip(t, map[string]string{"example.com/m@v1.0.0/x/a.go": "package x\n"})
	if h, _ := CheckZip(plain, "example.com/m", "v1.0.0"); h == h1 {
		t.Errorf("directory entries do not change the hash (%s): the comment above is wrong", h)
	}
}
