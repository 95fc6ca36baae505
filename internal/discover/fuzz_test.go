package discover

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func FuzzParseMetaGoImports(f *testing.F) {
	f.Add(`<html><head>` + goImport("a.test/x", "git", "https://a.test/x", "sub") + `</head></html>`)
	f.Add(`<?xml version="1.0" encoding="latin1"?><meta name="go-import" content="a b c">`)
	f.Add(`<META NAME=go-import CONTENT="a.test mod https://p"><body>`)
	f.Add("<head><meta name=\"go-import\" content=\"\x00")
	f.Fuzz(func(t *testing.T, page string) {
		imports, err := parseMetaGoImports(strings.NewReader(page))
		if err != nil && len(imports) != 0 {
			t.Fatalf("error %v with %d imports", err, len(imports))
		}
		for _, mi := range imports {
			if mi.VCS == "mod" || mi.Prefix == "" || mi.VCS == "" || mi.RepoRoot == "" {
				t.Fatalf("import %+v", mi)
			}
			for _, field := range []string{mi.Prefix, mi.VCS, mi.RepoRoot, mi.SubDir} {
				if strings.ContainsFunc(field, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
					t.Fatalf("field %q has white space", field)
				}
			}
		}
	})
}

// FuzzLookupMeta serves whatever the fuzzer writes as the "?go-get=1"
// page of fuzz.test and checks that Lookup answers something safe: a
// root at the path's own host, a repository URL and a subdirectory that
// pass the checks, or a one-line error; and no connection elsewhere.
func FuzzLookupMeta(f *testing.F) {
	f.Add(200, `<html><head>`+goImport("fuzz.test/a", "git", "https://git.corp.test/a.git")+`</head></html>`)
	f.Add(200, `<html><head>`+goImport("fuzz.test/a/b", "git", "https://git.corp.test/a.git", "sub/dir")+`</head></html>`)
	f.Add(404, `<html><head>`+goImport("fuzz.test", "git", "ssh://git@git.corp.test/a.git")+`</head></html>`)
	f.Add(200, `<html><head>`+goImport("fuzz.test/a", "git", "http://u:p@127.0.0.1/a.git", "../x")+`</head></html>`)
	f.Add(302, "")
	n := newFakeNet(f)
	var page atomic.Pointer[string]
	var status atomic.Int64
	n.host("fuzz.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := int(status.Load())
		if code == http.StatusFound || code == http.StatusMovedPermanently {
			w.Header().Set("Location", *page.Load())
		}
		w.WriteHeader(code)
		w.Write([]byte(*page.Load()))
	}), nil)
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 200 || code > 599 {
			code = 200 + (code%400+400)%400
		}
		status.Store(int64(code))
		page.Store(&body)
		n.reset()
		r := New(Config{Client: n.client})
		const modPath = "fuzz.test/a/b"
		repo, err := r.Lookup(context.Background(), modPath)
		for _, c := range n.contacted() {
			if c != "fuzz.test:443" {
				t.Fatalf("contacted %s", c)
			}
		}
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !strings.HasPrefix(msg, "discover "+modPath+": ") || len(msg) > maxErrorLen+3 {
				t.Fatalf("error %q", msg)
			}
			return
		}
		if !hasPathPrefix(modPath, repo.Root) || hostOf(repo.Root) != "fuzz.test" {
			t.Fatalf("root %q for %s", repo.Root, modPath)
		}
		if err := checkRepoURL(repo.URL, false); err != nil {
			t.Fatalf("URL %q: %v", repo.URL, err)
		}
		if err := checkSubdir(repo.Subdir); err != nil {
			t.Fatalf("subdir %q: %v", repo.Subdir, err)
		}
	})
}
