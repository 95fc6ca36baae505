package goproxy

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

func TestParseRequest(t *testing.T) {
	good := []struct {
		in   string
		want Request
	}{
		{"/golang.org/x/mod/@v/list", Request{Kind: KindList, Path: "golang.org/x/mod"}},
		{"/golang.org/x/mod/@latest", Request{Kind: KindLatest, Path: "golang.org/x/mod"}},
		{"/github.com/!burnt!sushi/toml/@v/v1.3.2.info", Request{Kind: KindInfo, Path: "github.com/BurntSushi/toml", Version: "v1.3.2"}},
		{"/github.com/x/y/@v/v2.0.0+incompatible.mod", Request{Kind: KindMod, Path: "github.com/x/y", Version: "v2.0.0+incompatible"}},
		{"/github.com/x/y/v2/@v/v2.1.0.zip", Request{Kind: KindZip, Path: "github.com/x/y/v2", Version: "v2.1.0"}},
		{"/github.com/x/y/@v/main.info", Request{Kind: KindInfo, Path: "github.com/x/y", Version: "main"}},
		{"/github.com/x/y/@v/v1.0.0-!r!c1.info", Request{Kind: KindInfo, Path: "github.com/x/y", Version: "v1.0.0-RC1"}},
		{"/gopkg.in/yaml.v2/@v/v2.4.0.mod", Request{Kind: KindMod, Path: "gopkg.in/yaml.v2", Version: "v2.4.0"}},
	}
	for _, tc := range good {
		got, err := ParseRequest(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	bad := []string{
		"/", "/favicon.ico", "/../../etc/passwd", "/../x/@v/list",
		"/example.com/Upper/@v/list",         // unescaped upper case
		"/example.com/m/@v/v1.0.0.tar",       // unknown file
		"/example.com/m/@v/V1.0.0.info",      // unescaped upper case version
		"/example.com/m/@v/.info",            // empty version
		"/example.com/./m/@v/list",           // dot element
		"/example.com/m/@v/v1.0.0.zip/../x",  // traversal tail
		"/-example.com/m/@v/list",            // leading dash
		"/example.com/m\x00/@v/list",         // NUL
		"/example.com/m/@v/v1.0.0\x00.info",  // NUL in version
		"/example.com/m/@v/../../../@v/list", // climbing out of @v
	}
	for _, in := range bad {
		if got, err := ParseRequest(in); err == nil {
			t.Errorf("ParseRequest(%q) = %+v, want error", in, got)
		} else if !errors.As(err, new(*BadRequestError)) {
			t.Errorf("ParseRequest(%q) error %T, want *BadRequestError", in, err)
		}
	}
}

// FuzzParseRequest: ParseRequest never panics, refuses with a
// *BadRequestError, and accepts only what it can give back exactly: the
// escaped path and version of an accepted request rebuild the input, so
// nothing it accepts can name a different file than the one asked for.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"/golang.org/x/mod/@v/v0.1.0.zip",
		"/github.com/!a/b/@latest",
		"/github.com/x/y/@v/list",
		"/github.com/x/y/@v/v1.0.0-!r!c1.info",
		"/gopkg.in/yaml.v2/@v/v2.4.0.mod",
		"/example.com/m/@v/main.info",
		"/example.com/m/@v/../../@v/list",
		"/example.com/m/@v/v1.0.0.zip/@v/list",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		req, err := ParseRequest(in)
		if err != nil {
			if !errors.As(err, new(*BadRequestError)) {
				t.Fatalf("ParseRequest(%q) error %T, want *BadRequestError", in, err)
			}
			return
		}
		if req.Path == "" || req.Kind == "" {
			t.Fatalf("ParseRequest(%q) accepted an empty request: %+v", in, req)
		}
		ep, err := module.EscapePath(req.Path)
		if err != nil {
			t.Fatalf("ParseRequest(%q) accepted path %q, which does not escape: %v", in, req.Path, err)
		}
		var rebuilt string
		switch req.Kind {
		case KindList:
			rebuilt = "/" + ep + "/@v/list"
		case KindLatest:
			rebuilt = "/" + ep + "/@latest"
		default:
			ev, err := module.EscapeVersion(req.Version)
			if err != nil {
				t.Fatalf("ParseRequest(%q) accepted version %q, which does not escape: %v", in, req.Version, err)
			}
			rebuilt = "/" + ep + "/@v/" + ev + "." + string(req.Kind)
		}
		if rebuilt != in && rebuilt != "/"+strings.TrimPrefix(in, "/") {
			t.Fatalf("ParseRequest(%q) = %+v, which is the request %q", in, req, rebuilt)
		}
	})
}
