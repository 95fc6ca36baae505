package gitmirror

import "testing"

func TestRepoKey(t *testing.T) {
	const want = "git.corp.test/team/repo"
	for _, u := range []string{
		"https://git.corp.test/team/repo.git",
		"https://git.corp.test/team/repo",
		"https://git.corp.test/team/repo/",
		"http://git.corp.test/team/repo",
		"https://user:token@GIT.Corp.Test/team/repo.git/",
		"https://GIT.corp.test:8443/team/repo.git",
		"ssh://git@git.corp.test/team/repo.git",
		"ssh://git@git.corp.test:2222/team/repo.git",
		"git+ssh://git.corp.test/team/repo.git/",
		"git@git.corp.test:team/repo.git",
		"git.corp.test:team/repo",
		"https://git.corp.test/team/repo.git?x=1#frag",
		"https://git.corp.test/team/repo.git.git//",
	} {
		if got := RepoKey(u); got != want {
			t.Errorf("RepoKey(%q) = %q, want %q", u, got, want)
		}
	}
	for _, u := range []string{"", "https://git.corp.test", "https://git.corp.test/", "git.corp.test", "https:///x", "://x", "::", "/local/path"} {
		if got := RepoKey(u); got != "" {
			t.Errorf("RepoKey(%q) = %q, want \"\"", u, got)
		}
	}
	if got := RepoKey("https://git.corp.test/Team/Repo"); got != "git.corp.test/Team/Repo" {
		t.Errorf("paths keep their case: %q", got)
	}
	if RepoKey("https://git.corp.test/team/repo-other") == want {
		t.Error("different repositories compare equal")
	}
}

func FuzzRepoKey(f *testing.F) {
	f.Add("git@git.corp.test:team/repo.git")
	f.Add("https://u:p@h:1/x.git/")
	f.Fuzz(func(t *testing.T, s string) {
		k := RepoKey(s)
		if k != "" && RepoKey("https://"+k) != k {
			t.Errorf("RepoKey(%q) = %q, which is not its own key", s, k)
		}
	})
}
