package gitsource

import (
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/modgate/modgate/internal/discover"
	"github.com/modgate/modgate/internal/testenv/gitserver"
)

const host = gitserver.DefaultHost

// corpus is a set of fixture repositories covering the shapes the go
// command gives meaning to, and for each module in them the queries to
// compare with the go command's answers.
type corpus struct {
	srv    *gitserver.Server
	lookup staticLookup
	mods   []modQueries
}

type modQueries struct {
	repo    string // the repository holding the module
	path    string
	queries []string
}

// pseudo is the pseudo-version of commit hash made at BaseTime plus
// hours, on base ("" for none) and major ("" for v0/v1).
func pseudo(major, base string, hours int, hash string) string {
	return module.PseudoVersion(major, base, gitserver.BaseTime.Add(time.Duration(hours)*time.Hour), hash[:12])
}

func buildCorpus(t testing.TB) *corpus {
	t.Helper()
	c := &corpus{lookup: staticLookup{}}
	var repos []*gitserver.Repo
	add := func(r *gitserver.Repo) *gitserver.Repo { repos = append(repos, r); return r }

	// team/basic: tags (lightweight and annotated), a tag on another
	// branch, a non-canonical and a pseudo-version-shaped tag, and a
	// version whose tree has every file the zip rules care about.
	basic := add(gitserver.NewRepo(t, "team/basic"))
	basic.Write("go.mod", "module git.corp.test/team/basic\n\ngo 1.21\n")
	basic.Write("a.go", "package basic\n")
	basic.Write("LICENSE", "basic license\n")
	b1 := basic.Commit("one") // +0h
	basic.Tag("v1.0.0")
	basic.Write("b.go", "package basic\n\nconst B = 1\n")
	basic.Commit("two") // +1h
	basic.AnnotatedTag("v1.1.0", "release 1.1.0")
	basic.Branch("feature")
	basic.Write("feature.go", "package basic\n\nconst F = 1\n")
	basic.Commit("feature one") // +2h
	basic.Tag("v1.1.1")
	basic.Write("feature2.go", "package basic\n\nconst F2 = 1\n")
	b6 := basic.Commit("feature two") // +3h
	basic.Checkout("main")
	basic.Write("crlf.txt", "line one\r\nline two\r\n")
	basic.Write("crlf.go", "package basic\r\n\r\nconst CRLF = 1\r\n")
	basic.Write("eol.txt", "stored with LF, archived with CRLF\n")
	basic.Symlink("link.go", "a.go")
	basic.Symlink("dangling", "../outside/of/the/tree")
	basic.Write("vendor/modules.txt", "# example.com/dep v1.0.0\n## explicit\nexample.com/dep\n")
	basic.Write("vendor/example.com/dep/dep.go", "package dep\n")
	basic.Write("nested/go.mod", "module git.corp.test/team/basic/nested\n")
	basic.Write("nested/n.go", "package nested\n")
	basic.Write("sub/s.go", "package sub\n")
	basic.Write(".gitattributes", "ignored.txt export-ignore\nsubst.txt export-subst\neol.txt text eol=crlf\n")
	basic.Write("ignored.txt", "export-ignore is disabled by the go command\n")
	basic.Write("subst.txt", "$Format:%H$\n")
	basic.Commit("three") // +4h
	basic.Tag("v1.2.0")
	basic.Write("c.go", "package basic\n\nconst C = 1\n")
	b4 := basic.Commit("four") // +5h, head of main
	basic.Tag("v1.3")
	basic.Tag("v1.2.1-0.20200101000000-aaaaaaaaaaaa")
	c.mods = append(c.mods,
		modQueries{"basic", host + "/team/basic", []string{
			"v1.0.0", "v1.1.0", "v1.2.0", "v1.1.1", "main", "feature", b1[:7], b4[:12], b6, "v1.3",
			pseudo("", "v1.2.0", 5, b4), pseudo("", "v1.0.0", 5, b4), pseudo("", "", 5, b4),
			"v9.9.9", "nosuchbranch", "v1.0.0+incompatible",
			pseudo("", "v1.2.0", 6, b4), pseudo("", "v1.5.0", 5, b4), pseudo("", "v1.2.0", 5, b6),
			"v1.2.1-0.20200101000000-aaaaaaaaaaaa", "v1", "v1.1", "v1.0.0+meta", "v2",
		}},
		modQueries{"basic", host + "/team/basic/nosuch", []string{"main", "v1.0.0"}},
	)

	// team/mono: modules at the root, in a subdirectory with prefixed
	// tags, in a /v2 subdirectory of that, and one whose import path
	// the meta tag maps to a subdirectory (go-import's fourth field).
	mono := add(gitserver.NewRepo(t, "team/mono"))
	mono.Write("go.mod", "module git.corp.test/team/mono\n")
	mono.Write("LICENSE", "mono license\n")
	mono.Write("root.go", "package mono\n")
	mono.Write("sub/dir/go.mod", "module git.corp.test/team/mono/sub/dir\n")
	mono.Write("sub/dir/d.go", "package dir\n")
	mono.Write("sub/dir/v2/go.mod", "module git.corp.test/team/mono/sub/dir/v2\n")
	mono.Write("sub/dir/v2/d.go", "package dir\n")
	mono.Write("gosrc/go.mod", "module git.corp.test/team/gomod\n")
	mono.Write("gosrc/g.go", "package gomod\n")
	m1 := mono.Commit("one")
	mono.Tag("v0.1.0")
	mono.Tag("sub/dir/v1.2.3")
	mono.Tag("sub/dir/v2.0.0")
	mono.Tag("gosrc/v1.0.0")
	mono.Write("sub/dir/e.go", "package dir\n\nconst E = 1\n")
	mono.Commit("two")
	c.mods = append(c.mods,
		modQueries{"mono", host + "/team/mono", []string{"v0.1.0", "main"}},
		modQueries{"mono", host + "/team/mono/sub/dir", []string{"v1.2.3", "main", m1[:7], "v0.1.0"}},
		modQueries{"mono", host + "/team/mono/sub/dir/v2", []string{"v2.0.0", "main"}},
		modQueries{"mono", host + "/team/gomod", []string{"v1.0.0", "main"}},
	)

	// team/major: v1 at the root, then v2 on the same branch (the go.mod
	// says /v2: "major branch").
	major := add(gitserver.NewRepo(t, "team/major"))
	major.Write("go.mod", "module git.corp.test/team/major\n")
	major.Write("m.go", "package major\n")
	j1 := major.Commit("v1")
	major.Tag("v1.0.0")
	major.Write("go.mod", "module git.corp.test/team/major/v2\n")
	major.Commit("v2")
	major.Tag("v2.0.0")
	major.Write("x.go", "package major\n")
	major.Commit("v2.1")
	major.AnnotatedTag("v2.1.0", "v2.1.0")
	major.Write("y.go", "package major\n")
	major.Commit("after v2.1")
	c.mods = append(c.mods,
		modQueries{"major", host + "/team/major", []string{"v1.0.0", "main", "v2.0.0"}},
		modQueries{"major", host + "/team/major/v2", []string{"v2.0.0", "v2.1.0", "main", j1[:7], "v1.0.0"}},
	)

	// team/legacy: no go.mod, v2+ tags (+incompatible).
	legacy := add(gitserver.NewRepo(t, "team/legacy"))
	legacy.Write("a.go", "package legacy\n")
	legacy.Commit("one")
	legacy.Tag("v1.0.0")
	legacy.Write("b.go", "package legacy\n")
	legacy.Commit("two")
	legacy.Tag("v2.0.0")
	legacy.Write("c.go", "package legacy\n")
	legacy.Commit("three")
	legacy.Tag("v2.1.0")
	legacy.Write("d.go", "package legacy\n")
	l4 := legacy.Commit("four")
	c.mods = append(c.mods,
		modQueries{"legacy", host + "/team/legacy", []string{"v1.0.0", "v2.0.0", "v2.1.0+incompatible", "main", l4, "v2.0.0+incompatible", "v2", "v1"}},
	)

	// team/pre: pre-releases only.
	pre := add(gitserver.NewRepo(t, "team/pre"))
	pre.Write("go.mod", "module git.corp.test/team/pre\n")
	pre.Commit("alpha")
	pre.Tag("v0.1.0-alpha")
	pre.Write("p.go", "package pre\n")
	pre.Commit("beta")
	pre.Tag("v0.1.0-beta.2")
	pre.Write("q.go", "package pre\n")
	pre.Commit("after")
	c.mods = append(c.mods, modQueries{"pre", host + "/team/pre", []string{"v0.1.0-alpha", "main"}})

	// team/notags: pseudo-versions only.
	notags := add(gitserver.NewRepo(t, "team/notags"))
	notags.Write("go.mod", "module git.corp.test/team/notags\n")
	n1 := notags.Commit("one")
	notags.Write("n.go", "package notags\n")
	notags.Commit("two")
	c.mods = append(c.mods, modQueries{"notags", host + "/team/notags", []string{"main", n1[:10]}})

	// team/retract: the latest release retracts itself.
	retract := add(gitserver.NewRepo(t, "team/retract"))
	retract.Write("go.mod", "module git.corp.test/team/retract\n")
	retract.Commit("one")
	retract.Tag("v1.0.0")
	retract.Write("r.go", "package retract\n")
	retract.Commit("two")
	retract.Tag("v1.1.0")
	retract.Write("go.mod", "module git.corp.test/team/retract\n\nretract v1.2.0 // broken\n")
	r3 := retract.Commit("three")
	retract.Tag("v1.2.0")
	retract.Write("s.go", "package retract\n")
	retract.Commit("four")
	c.mods = append(c.mods, modQueries{"retract", host + "/team/retract", []string{"v1.2.0", "main", r3[:7]}})

	// team/renamed: a go.mod naming another module (a fork, a renamed
	// repository): served as is, like the go command downloads it.
	renamed := add(gitserver.NewRepo(t, "team/renamed"))
	renamed.Write("go.mod", "module example.com/old\n")
	renamed.Commit("one")
	renamed.Tag("v1.0.0")
	c.mods = append(c.mods, modQueries{"renamed", host + "/team/renamed", []string{"v1.0.0"}})

	c.srv = gitserver.Start(t, gitserver.Options{Repos: repos, User: fixtureUser, Password: fixturePassword})
	for _, r := range repos {
		c.lookup.add(c.srv, r)
	}
	c.srv.SetMeta("team/gomod", host+"/team/gomod git "+c.srv.RepoURL(mono)+" gosrc")
	c.lookup[host+"/team/gomod"] = discover.Repo{Root: host + "/team/gomod", URL: c.srv.RepoURL(mono), Subdir: "gosrc"}
	return c
}
