package discover

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/gitauth"
	"github.com/modgate/modgate/internal/testenv"
)

const (
	secretPW    = "pw-s3cret-do-not-show"
	secretToken = "glpat-s3cret-do-not-show"
)

func resolver(t *testing.T, n *fakeNet, cfg Config) *Resolver {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = n.client
	}
	cfg.Logger = testenv.Logger(t, "discover")
	return New(cfg)
}

// checkErr checks the shape every Lookup error must have.
func checkErr(t *testing.T, err error, wantNotFound bool, wantIn ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Lookup succeeded, want an error containing %q", wantIn)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") || strings.Contains(msg, secretPW) || strings.Contains(msg, secretToken) || testenv.ShownUserinfo(msg) != "" {
		t.Errorf("error %q: not one line, or shows a credential", msg)
	}
	for _, w := range wantIn {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if got := errors.Is(err, fs.ErrNotExist); got != wantNotFound {
		t.Errorf("error %q: errors.Is(fs.ErrNotExist) = %v, want %v", msg, got, wantNotFound)
	}
}

func expectContacted(t *testing.T, n *fakeNet, want ...string) {
	t.Helper()
	got := n.contacted()
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("contacted %q, want %q", got, want)
	}
}

func TestStaticMapping(t *testing.T) {
	n := newFakeNet(t)
	static := map[string]string{
		"corp.test/a":         "https://git.corp.test/a.git",
		"corp.test/a/b":       "ssh://git@git.corp.test/b.git",
		"corp.test":           "https://git.corp.test/everything.git",
		"git.corp.test":       "https://git.corp.test/root.git",
		"corp.test/bad/plain": "http://git.corp.test/plain.git",
	}
	r := resolver(t, n, Config{Static: append(staticOf(static), Repo{Root: "corp.test/mono/go", URL: "https://git.corp.test/mono.git", Subdir: "go/src"})})
	for _, tc := range []struct{ path, root, url string }{
		{"corp.test/a", "corp.test/a", "https://git.corp.test/a.git"},
		{"corp.test/a/c/v2", "corp.test/a", "https://git.corp.test/a.git"},
		{"corp.test/a/b", "corp.test/a/b", "ssh://git@git.corp.test/b.git"},
		{"corp.test/a/b/c", "corp.test/a/b", "ssh://git@git.corp.test/b.git"},
		{"corp.test/ab", "corp.test", "https://git.corp.test/everything.git"},
		{"git.corp.test/x", "git.corp.test", "https://git.corp.test/root.git"},
		{"corp.test/mono/go/lib", "corp.test/mono/go", "https://git.corp.test/mono.git"},
	} {
		repo, err := r.Lookup(context.Background(), tc.path)
		if err != nil {
			t.Errorf("Lookup(%s): %v", tc.path, err)
			continue
		}
		want := Repo{Root: tc.root, URL: tc.url}
		if tc.root == "corp.test/mono/go" {
			want.Subdir = "go/src"
		}
		if repo != want {
			t.Errorf("Lookup(%s) = %+v, want %+v", tc.path, repo, want)
		}
	}
	// An invalid entry fails the paths it would answer, and only those.
	_, err := r.Lookup(context.Background(), "corp.test/bad/plain/x")
	checkErr(t, err, false, "corp.test/bad/plain", "plain http")
	expectContacted(t, n) // a static mapping connects to nothing

	// A host name that merely starts with a mapped one is not mapped: it
	// is looked up at its own host, and nowhere else.
	_, err = r.Lookup(context.Background(), "git.corp.test.evil.com/x")
	checkErr(t, err, false, "git.corp.test.evil.com")
	expectContacted(t, n, "git.corp.test.evil.com:443")
}

func TestCheckStatic(t *testing.T) {
	ok := map[string]string{
		"corp.test/a": "https://git.corp.test/a.git",
		"corp.test/b": "ssh://git@git.corp.test:2222/b.git",
		"corp.test/c": "git+ssh://git.corp.test/c",
		"corp.test/d": "http://git.corp.test/d",
	}
	if err := CheckStatic(staticOf(ok), "corp.test/d"); err != nil {
		t.Fatalf("CheckStatic(valid) = %v", err)
	}
	for url, want := range map[string]string{
		"http://git.corp.test/d":                      "plain http",
		"https://user:" + secretPW + "@git.corp.test": "user information",
		"https://" + secretToken + "@git.corp.test/x": "user information",
		"ssh://git:" + secretPW + "@git.corp.test/x":  "password",
		"git@git.corp.test:team/repo.git":             "ssh://user@host/path",
		"git://git.corp.test/x":                       "not allowed",
		"file:///srv/git/x":                           "not allowed",
		"ext::sh -c touch% /tmp/pwned":                "spaces",
		"ssh://-oProxyCommand=x/y":                    "dash",
		"https:///x":                                  "no host",
		"https://git.corp.test/x?token=" + secretPW:   "query",
		"git.corp.test/team/repo":                     "no scheme",
	} {
		err := CheckStatic([]Repo{{Root: "corp.test/z", URL: url}}, "")
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), secretPW) || strings.Contains(err.Error(), secretToken) {
			t.Errorf("CheckStatic(%q) = %v, want an error about %q without the secret", url, err, want)
		}
	}
	for _, prefix := range []string{"", "corp.test/", "/corp.test", "corp.test//a"} {
		if err := CheckStatic([]Repo{{Root: prefix, URL: "https://git.corp.test/x"}}, ""); err == nil {
			t.Errorf("CheckStatic accepted the prefix %q", prefix)
		}
	}
	for _, dir := range []string{"../x", "/abs", "a/../../b", "a\\b"} {
		if err := CheckStatic([]Repo{{Root: "corp.test/z", URL: "https://git.corp.test/x", Subdir: dir}}, ""); err == nil {
			t.Errorf("CheckStatic accepted the subdirectory %q", dir)
		}
	}
}

// staticOf turns a prefix -> URL table into a static mapping.
func staticOf(m map[string]string) []Repo {
	var repos []Repo
	for prefix, url := range m {
		repos = append(repos, Repo{Root: prefix, URL: url})
	}
	return repos
}

func TestKnownHosts(t *testing.T) {
	n := newFakeNet(t)
	r := resolver(t, n, Config{})
	for path, want := range map[string]Repo{
		"github.com/owner/repo":           {Root: "github.com/owner/repo", URL: "https://github.com/owner/repo"},
		"github.com/Owner/Repo.go/sub/v2": {Root: "github.com/Owner/Repo.go", URL: "https://github.com/Owner/Repo.go"},
		"bitbucket.org/team/repo/x":       {Root: "bitbucket.org/team/repo", URL: "https://bitbucket.org/team/repo"},
	} {
		got, err := r.Lookup(context.Background(), path)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", path, got, err, want)
		}
	}
	_, err := r.Lookup(context.Background(), "github.com/owner")
	checkErr(t, err, true, "github.com/OWNER/REPO")
	_, err = r.Lookup(context.Background(), "github.com/owner/repo.git/x")
	checkErr(t, err, true, "version control suffix")
	_, err = r.Lookup(context.Background(), "bitbucket.org/owner/repo.hg")
	checkErr(t, err, true, "version control suffix")
	expectContacted(t, n)
}

func TestSuffixRule(t *testing.T) {
	n := newFakeNet(t)
	r := resolver(t, n, Config{})
	for path, want := range map[string]Repo{
		"git.corp.test/team/repo.git":        {Root: "git.corp.test/team/repo.git", URL: "https://git.corp.test/team/repo"},
		"git.corp.test/team/repo.git/sub/v2": {Root: "git.corp.test/team/repo.git", URL: "https://git.corp.test/team/repo"},
		// As the go command: the last element with a suffix ends the root.
		"git.corp.test/a.git/b.git/c":              {Root: "git.corp.test/a.git/b.git", URL: "https://git.corp.test/a.git/b"},
		"git.corp.test/~user/repo.git":             {Root: "git.corp.test/~user/repo.git", URL: "https://git.corp.test/~user/repo"},
		"git.corp.test/team/sub.group/r.e.p.o.git": {Root: "git.corp.test/team/sub.group/r.e.p.o.git", URL: "https://git.corp.test/team/sub.group/r.e.p.o"},
	} {
		got, err := r.Lookup(context.Background(), path)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", path, got, err, want)
		}
	}
	for path, vcs := range map[string]string{
		"git.corp.test/team/repo.hg/x": "Mercurial",
		"git.corp.test/repo.svn":       "Subversion",
		"git.corp.test/repo.bzr":       "Bazaar",
		"git.corp.test/repo.fossil":    "Fossil",
	} {
		_, err := r.Lookup(context.Background(), path)
		checkErr(t, err, true, vcs, "git repositories only")
	}
	expectContacted(t, n)
}

func TestSuffixRulePing(t *testing.T) {
	n := newFakeNet(t)
	var (
		mu     sync.Mutex
		pinged []string
	)
	answer := map[string]bool{}
	ping := func(ctx context.Context, u string) error {
		mu.Lock()
		defer mu.Unlock()
		pinged = append(pinged, u)
		if answer[u] {
			return nil
		}
		return errors.New("repository not found")
	}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		p := pinged
		pinged = nil
		return p
	}
	r := resolver(t, n, Config{Ping: ping, Insecure: "git.corp.test/old"})

	answer["ssh://git.corp.test/team/repo"] = true
	got, err := r.Lookup(context.Background(), "git.corp.test/team/repo.git")
	if err != nil || got.URL != "ssh://git.corp.test/team/repo" {
		t.Errorf("Lookup = %+v, %v; want the ssh URL", got, err)
	}
	if p := take(); !reflect.DeepEqual(p, []string{"https://git.corp.test/team/repo", "ssh://git.corp.test/team/repo"}) {
		t.Errorf("pinged %q: want https then ssh, never http for a secure path", p)
	}

	answer["http://git.corp.test/old/repo"] = true
	got, err = r.Lookup(context.Background(), "git.corp.test/old/repo.git")
	if err != nil || got.URL != "http://git.corp.test/old/repo" {
		t.Errorf("Lookup(insecure) = %+v, %v", got, err)
	}
	if p := take(); !reflect.DeepEqual(p, []string{"https://git.corp.test/old/repo", "http://git.corp.test/old/repo"}) {
		t.Errorf("pinged %q: want https then http", p)
	}

	_, err = r.Lookup(context.Background(), "git.corp.test/none.git")
	checkErr(t, err, false, "no protocol", "git.corp.test", "repository not found")
}

func TestMetaTags(t *testing.T) {
	n := newFakeNet(t)
	n.host("go.corp.test", metaByPath(map[string]string{
		// a vanity path: the repository is on another host
		"/lib": goImport("go.corp.test/lib", "git", "https://git.corp.test/team/lib.git"),
		// the subdirectory field
		"/mono": goImport("go.corp.test/mono", "git", "https://git.corp.test/team/mono.git", "go/src"),
		// a page under a repository that names it
		"/lib/sub": goImport("go.corp.test/lib", "git", "https://git.corp.test/team/lib.git"),
		// a "mod" entry beside the git one: modgate takes the git one
		"/both": goImport("go.corp.test/both", "mod", "https://proxy.corp.test") + goImport("go.corp.test/both", "git", "ssh://git@git.corp.test/both.git"),
		// pages that disagree
		"/liar/x": goImport("go.corp.test/liar", "git", "https://git.corp.test/liar-x.git"),
		"/liar":   goImport("go.corp.test/liar", "git", "https://git.corp.test/liar.git"),
		// uppercase tag and attribute names, single quotes, extra tags
		"/case": `<META NAME="go-import" CONTENT='go.corp.test/case git https://git.corp.test/case.git'>` +
			`<meta name="go-source" content="go.corp.test/case x y z">` +
			`<meta name="go-import" content="too few fields">`,
	}), nil)
	r := resolver(t, n, Config{})
	for path, want := range map[string]Repo{
		"go.corp.test/lib":     {Root: "go.corp.test/lib", URL: "https://git.corp.test/team/lib.git"},
		"go.corp.test/lib/sub": {Root: "go.corp.test/lib", URL: "https://git.corp.test/team/lib.git"},
		"go.corp.test/mono":    {Root: "go.corp.test/mono", URL: "https://git.corp.test/team/mono.git", Subdir: "go/src"},
		"go.corp.test/both":    {Root: "go.corp.test/both", URL: "ssh://git@git.corp.test/both.git"},
		"go.corp.test/case":    {Root: "go.corp.test/case", URL: "https://git.corp.test/case.git"},
	} {
		got, err := r.Lookup(context.Background(), path)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", path, got, err, want)
		}
	}
	// The repository's host is not contacted at discovery.
	expectContacted(t, n, "go.corp.test:443")
	reqs := n.requests()
	var uris []string
	for _, q := range reqs {
		uris = append(uris, q.URI)
	}
	if !slicesContain(uris, "/lib/sub?go-get=1") || !slicesContain(uris, "/lib?go-get=1") {
		t.Errorf("requests %q: a sub-path's tag for a shorter prefix must be checked at the prefix", uris)
	}

	_, err := r.Lookup(context.Background(), "go.corp.test/liar/x")
	checkErr(t, err, true, "disagree", "go.corp.test/liar")
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestMetaTagRefusals(t *testing.T) {
	n := newFakeNet(t)
	pages := map[string]string{
		"/hg":        goImport("go.corp.test/hg", "hg", "https://hg.corp.test/x"),
		"/svn":       goImport("go.corp.test/svn", "svn", "https://svn.corp.test/x"),
		"/cvs":       goImport("go.corp.test/cvs", "cvs", "https://cvs.corp.test/x"),
		"/modonly":   goImport("go.corp.test/modonly", "mod", "https://proxy.corp.test"),
		"/twice":     goImport("go.corp.test/twice", "git", "https://git.corp.test/a") + goImport("go.corp.test", "git", "https://git.corp.test/b"),
		"/elsewhere": goImport("other.corp.test/elsewhere", "git", "https://git.corp.test/x"),
		"/prefixish": goImport("go.corp.test/pre", "git", "https://git.corp.test/x"),
		"/plain":     goImport("go.corp.test/plain", "git", "http://git.corp.test/plain.git"),
		"/gitproto":  goImport("go.corp.test/gitproto", "git", "git://git.corp.test/x.git"),
		"/file":      goImport("go.corp.test/file", "git", "file:///srv/git/x.git"),
		"/noscheme":  goImport("go.corp.test/noscheme", "git", "git.corp.test/x.git"),
		"/userinfo":  goImport("go.corp.test/userinfo", "git", "https://bot:"+secretPW+"@git.corp.test/x.git"),
		"/dotdot":    goImport("go.corp.test/dotdot", "git", "https://git.corp.test/x.git", "a/../../etc"),
		"/slash":     goImport("go.corp.test/slash", "git", "https://git.corp.test/x.git", "/abs"),
		"/dash":      goImport("go.corp.test/dash", "git", "https://git.corp.test/x.git", "-x"),
		"/latin1":    "", // replaced below
	}
	handler := metaByPath(pages)
	n.host("go.corp.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/latin1":
			io.WriteString(w, `<?xml version="1.0" encoding="ISO-8859-1"?><html><head>`+goImport("go.corp.test/latin1", "git", "https://git.corp.test/x")+`</head></html>`)
		case "/ascii":
			io.WriteString(w, `<?xml version="1.0" encoding="ascii"?><html><head>`+goImport("go.corp.test/ascii", "git", "https://git.corp.test/ascii")+`</head></html>`)
		case "/inbody":
			io.WriteString(w, `<html><head></head><body>`+goImport("go.corp.test/inbody", "git", "https://git.corp.test/x")+`</body></html>`)
		case "/afterhead":
			io.WriteString(w, `<html><head><title>x</title></head>`+goImport("go.corp.test/afterhead", "git", "https://git.corp.test/x"))
		case "/huge":
			// The tag comes after more than the read limit.
			io.WriteString(w, "<html><head><!--"+strings.Repeat("x", maxMetaBody)+"-->"+goImport("go.corp.test/huge", "git", "https://git.corp.test/x")+"</head></html>")
		case "/notfound-with-tags":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `<html><head>`+goImport("go.corp.test/notfound-with-tags", "git", "https://git.corp.test/nf.git")+`</head></html>`)
		case "/unauthorized":
			w.WriteHeader(http.StatusUnauthorized)
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "oops")
		case "/garbage":
			io.WriteString(w, "<html><head><meta name=\"go-import\" content=\"\x00")
		default:
			handler.ServeHTTP(w, r)
		}
	}), nil)
	r := resolver(t, n, Config{})
	for _, tc := range []struct {
		path     string
		notFound bool
		want     []string
	}{
		{"go.corp.test/hg", true, []string{"Mercurial", "git repositories only"}},
		{"go.corp.test/svn", true, []string{"Subversion"}},
		{"go.corp.test/cvs", true, []string{"unknown version control system"}},
		{"go.corp.test/modonly", true, []string{"no go-import meta tag"}},
		{"go.corp.test/twice", true, []string{"multiple go-import meta tags"}},
		{"go.corp.test/elsewhere", true, []string{"none for go.corp.test/elsewhere", "other.corp.test/elsewhere"}},
		{"go.corp.test/prefixish", true, []string{"none for"}},
		{"go.corp.test/plain", true, []string{"plain http"}},
		{"go.corp.test/gitproto", true, []string{"not allowed"}},
		{"go.corp.test/file", true, []string{"not allowed"}},
		{"go.corp.test/noscheme", true, []string{"no scheme"}},
		{"go.corp.test/userinfo", true, []string{"user information"}},
		{"go.corp.test/dotdot", true, []string{"invalid subdirectory"}},
		{"go.corp.test/slash", true, []string{"leading slash"}},
		{"go.corp.test/dash", true, []string{"leading hyphen"}},
		{"go.corp.test/latin1", false, []string{"ISO-8859-1"}},
		{"go.corp.test/inbody", true, []string{"no go-import meta tag"}},
		{"go.corp.test/afterhead", true, []string{"no go-import meta tag"}},
		{"go.corp.test/huge", false, []string{"no go-import meta tag in its first 1048576 bytes"}},
		{"go.corp.test/unauthorized", false, []string{"go.corp.test answered 401", "no credentials are configured for go.corp.test"}},
		{"go.corp.test/broken", false, []string{"go.corp.test answered 500"}},
		{"go.corp.test/missing", true, []string{"go.corp.test answered 404"}},
		{"go.corp.test/garbage", false, []string{"parsing https://go.corp.test/garbage?go-get=1"}},
		{"Go.corp.test/x", true, []string{"not a valid module path"}},
	} {
		_, err := r.Lookup(context.Background(), tc.path)
		t.Run(tc.path, func(t *testing.T) { checkErr(t, err, tc.notFound, tc.want...) })
	}
	for path, want := range map[string]Repo{
		"go.corp.test/ascii":              {Root: "go.corp.test/ascii", URL: "https://git.corp.test/ascii"},
		"go.corp.test/notfound-with-tags": {Root: "go.corp.test/notfound-with-tags", URL: "https://git.corp.test/nf.git"},
	} {
		got, err := r.Lookup(context.Background(), path)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", path, got, err, want)
		}
	}
	expectContacted(t, n, "go.corp.test:443")
}

func TestCredentials(t *testing.T) {
	n := newFakeNet(t)
	tags := func(host string) http.Handler {
		return metaHandler(http.StatusOK, goImport(host+"/repo", "git", "https://git.corp.test/repo.git"))
	}
	n.host("git.corp.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/repo?go-get=1", http.StatusFound)
		case "/away":
			http.Redirect(w, r, "https://evil.com/collect?go-get=1", http.StatusFound)
		case "/downgrade":
			http.Redirect(w, r, "http://git.corp.test/repo?go-get=1", http.StatusFound)
		default:
			tags("git.corp.test").ServeHTTP(w, r)
		}
	}), tags("git.corp.test"))
	n.host("git.corp.test.evil.com", tags("git.corp.test.evil.com"), nil)
	n.host("evil.com", tags("evil.com"), nil)
	n.host("other.corp.test", tags("other.corp.test"), nil)
	hosts, err := gitauth.Load(gitauth.NetrcOff, map[string]gitauth.Credentials{
		"git.corp.test":   {Username: "bot", Password: secretPW},
		"other.corp.test": {Header: "PRIVATE-TOKEN: " + secretToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := resolver(t, n, Config{Credentials: hosts.For})
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("bot:"+secretPW))

	if _, err := r.Lookup(context.Background(), "git.corp.test/repo"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(context.Background(), "other.corp.test/repo"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(context.Background(), "git.corp.test.evil.com/repo"); err != nil {
		t.Fatal(err)
	}
	for _, q := range n.requests() {
		wantAuth, wantToken := "", ""
		switch q.Host {
		case "git.corp.test":
			wantAuth = basic
		case "other.corp.test":
			wantToken = secretToken
		}
		if q.Auth != wantAuth || q.PrivateToken != wantToken {
			t.Errorf("request to %s%s carried Authorization %q, PRIVATE-TOKEN %q", q.Host, q.URI, q.Auth, q.PrivateToken)
		}
	}

	// A redirect on the same host keeps the credentials; one to another
	// host is not followed at all; nor one from https to http.
	n.reset()
	got, err := r.Lookup(context.Background(), "git.corp.test/moved")
	checkErr(t, err, true, "none for git.corp.test/moved")
	_ = got
	reqs := n.requests()
	if len(reqs) != 2 || reqs[1].URI != "/repo?go-get=1" || reqs[1].Auth != basic {
		t.Errorf("same-host redirect: requests %+v", reqs)
	}
	n.reset()
	_, err = r.Lookup(context.Background(), "git.corp.test/away")
	checkErr(t, err, false, "another host", "evil.com")
	_, err = r.Lookup(context.Background(), "git.corp.test/downgrade")
	checkErr(t, err, false, "from https to http")
	expectContacted(t, n, "git.corp.test:443")
}

func TestInsecure(t *testing.T) {
	n := newFakeNet(t)
	// plain.corp.test has no https at all.
	n.host("plain.corp.test", nil, metaByPath(map[string]string{
		"/old":  goImport("plain.corp.test/old", "git", "http://plain.corp.test/old.git"),
		"/new":  goImport("plain.corp.test/new", "git", "https://plain.corp.test/new.git"),
		"/evil": goImport("plain.corp.test/evil", "git", "http://plain.corp.test/evil.git"),
	}))
	hosts, err := gitauth.Load(gitauth.NetrcOff, map[string]gitauth.Credentials{"plain.corp.test": {Username: "bot", Password: secretPW}})
	if err != nil {
		t.Fatal(err)
	}
	r := resolver(t, n, Config{Insecure: "plain.corp.test/old,plain.corp.test/new", Credentials: hosts.For})

	got, err := r.Lookup(context.Background(), "plain.corp.test/old")
	if want := (Repo{Root: "plain.corp.test/old", URL: "http://plain.corp.test/old.git"}); err != nil || got != want {
		t.Errorf("Lookup(insecure path) = %+v, %v; want %+v", got, err, want)
	}
	got, err = r.Lookup(context.Background(), "plain.corp.test/new")
	if err != nil || got.URL != "https://plain.corp.test/new.git" {
		t.Errorf("Lookup(insecure path, https repository) = %+v, %v", got, err)
	}
	expectContacted(t, n, "plain.corp.test:443", "plain.corp.test:80")
	for _, q := range n.requests() {
		if q.Scheme != "http" || !strings.HasPrefix(q.Auth, "Basic ") {
			t.Errorf("request %+v: want http with the host's credentials (the operator marked it insecure)", q)
		}
	}

	// The same host, a path not marked insecure: https only, and it fails.
	n.reset()
	_, err = r.Lookup(context.Background(), "plain.corp.test/evil")
	checkErr(t, err, false, "fetching https://plain.corp.test/evil?go-get=1")
	expectContacted(t, n, "plain.corp.test:443")
	if reqs := n.requests(); len(reqs) != 0 {
		t.Errorf("requests %+v reached the host over http for a secure path", reqs)
	}
}

func TestCache(t *testing.T) {
	n := newFakeNet(t)
	n.host("go.corp.test", metaHandler(http.StatusOK, goImport("go.corp.test/a", "git", "https://git.corp.test/a")+
		goImport("go.corp.test/b", "git", "https://git.corp.test/b")+goImport("go.corp.test/c", "git", "https://git.corp.test/c")), nil)
	clock := testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := resolver(t, n, Config{TTL: time.Minute, MaxEntries: 2, Now: clock.Now})
	lookup := func(path string) {
		t.Helper()
		if _, err := r.Lookup(context.Background(), path); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int { return len(n.requests()) }

	lookup("go.corp.test/a")
	lookup("go.corp.test/a")
	if c := count(); c != 1 {
		t.Fatalf("%d requests for two lookups within the TTL, want 1", c)
	}
	clock.Advance(time.Minute)
	lookup("go.corp.test/a")
	if c := count(); c != 2 {
		t.Fatalf("%d requests after the TTL, want 2", c)
	}
	// The cache holds two answers: a third pushes out the oldest.
	lookup("go.corp.test/b")
	lookup("go.corp.test/c")
	lookup("go.corp.test/c")
	lookup("go.corp.test/a")
	if c := count(); c != 5 {
		t.Fatalf("%d requests, want 5 (a evicted by b and c)", c)
	}
	// Failures are not remembered.
	n.host("go.corp.test", metaHandler(http.StatusNotFound, ""), nil)
	for range 2 {
		if _, err := r.Lookup(context.Background(), "go.corp.test/d"); err == nil {
			t.Fatal("Lookup of a missing path succeeded")
		}
	}
	if c := count(); c != 7 {
		t.Fatalf("%d requests, want 7 (failures are asked again)", c)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	n := newFakeNet(t)
	release := make(chan struct{})
	defer close(release)
	n.host("go.corp.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}), nil)
	r := resolver(t, n, Config{Timeout: 100 * time.Millisecond})
	_, err := r.Lookup(context.Background(), "go.corp.test/slow")
	checkErr(t, err, false, "go.corp.test", "timed out")

	r = resolver(t, n, Config{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Lookup(ctx, "go.corp.test/slow")
	checkErr(t, err, false, "abandoned")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not match context.Canceled", err)
	}
}

func TestDefaultClientUsesProxyEnvironment(t *testing.T) {
	r := New(Config{})
	tr, ok := r.client.Transport.(*http.Transport)
	if !ok || tr.Proxy == nil || reflect.ValueOf(tr.Proxy).Pointer() != reflect.ValueOf(http.ProxyFromEnvironment).Pointer() {
		t.Fatal("the default client does not take its proxy from HTTPS_PROXY/HTTP_PROXY/NO_PROXY")
	}
	if r.client.CheckRedirect == nil {
		t.Fatal("the default client follows redirects anywhere")
	}
}

// TestConcurrentLookups runs lookups of the same and of different paths
// at once; run with -race. Every caller gets the right answer.
func TestConcurrentLookups(t *testing.T) {
	n := newFakeNet(t)
	n.host("go.corp.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		io.WriteString(w, "<html><head>"+goImport("go.corp.test/"+p, "git", "https://git.corp.test/"+p+".git")+"</head></html>")
	}), nil)
	r := resolver(t, n, Config{MaxEntries: 3})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := "go.corp.test/r" + string(rune('a'+i%5))
			repo, err := r.Lookup(context.Background(), p)
			if err != nil || repo.Root != p || repo.URL != "https://git.corp.test/"+strings.TrimPrefix(p, "go.corp.test/")+".git" {
				t.Errorf("Lookup(%s) = %+v, %v", p, repo, err)
			}
		}()
	}
	wg.Wait()
}
