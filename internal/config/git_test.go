package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestGitSettings(t *testing.T) {
	noGoEnv(t)
	key := writeFile(t, "id_ed25519", "key")
	known := writeFile(t, "known_hosts", "git.corp.example.com ssh-ed25519 AAAA")
	path := writeFile(t, "m.yaml", `
private: "*.corp.example.com,github.com/acme"
insecure: git.lab.corp.example.com
git-timeout: 2m
git-max-repo-size: 512MiB
git-hosts:
  - host: git.corp.example.com
    username: oauth2
    password: s3cret-token
  - host: gitlab.corp.example.com:8443
    header: "PRIVATE-TOKEN: glpat-abc"
  - host: ssh.corp.example.com
    ssh-key: `+key+`
    known-hosts: `+known+`
git-repos:
  - module: corp.example.com/legacy
    url: https://git.corp.example.com/legacy.git
    subdir: go
`)
	c := mustLoad(t, []string{"--config", path, "--webhook-secret", "hook"}, env(map[string]string{"MODGATE_NETRC": known}))
	if c.Private != "*.corp.example.com,github.com/acme" || c.Insecure != "git.lab.corp.example.com" ||
		c.GitTimeout != 2*time.Minute || c.GitMaxRepoSize != 512<<20 || c.WebhookSecret != "hook" || c.Netrc != known {
		t.Errorf("flat git options: %+v", c)
	}
	wantHosts := []GitHost{
		{Host: "git.corp.example.com", Username: "oauth2", Password: "s3cret-token"},
		{Host: "gitlab.corp.example.com:8443", Header: "PRIVATE-TOKEN: glpat-abc"},
		{Host: "ssh.corp.example.com", SSHKey: key, KnownHosts: known},
	}
	if !reflect.DeepEqual(c.GitHosts, wantHosts) {
		t.Errorf("git-hosts = %+v\nwant %+v", c.GitHosts, wantHosts)
	}
	if want := []GitRepo{{Module: "corp.example.com/legacy", URL: "https://git.corp.example.com/legacy.git", Subdir: "go"}}; !reflect.DeepEqual(c.GitRepos, want) {
		t.Errorf("git-repos = %+v, want %+v", c.GitRepos, want)
	}
}

// TestGitSettingsInvalid: every mistake is named by its key, and no error
// quotes a secret.
func TestGitSettingsInvalid(t *testing.T) {
	noGoEnv(t)
	for _, tc := range []struct{ yaml, want string }{
		{"git-hosts:\n  - host: h\n    password: TOPSECRET\n", "git-hosts[0]: password needs a username"},
		{"git-hosts:\n  - host: https://h\n    username: u\n    password: TOPSECRET\n", "want a host name"},
		{"git-hosts:\n  - host: h\n    header: \"TOPSECRET\"\n", `git-hosts[0]: header: want one "Name: value" line`},
		{"git-hosts:\n  - host: h\n", "git-hosts[0]: no credentials"},
		{"git-hosts:\n  - username: u\n    password: TOPSECRET\n", "git-hosts[0].host"},
		{"git-hosts:\n  - host: h\n    passwrd: TOPSECRET\n", `unknown key "git-hosts[0].passwrd" (did you mean "password"?)`},
		{"git-repos:\n  - module: corp.example.com/x\n    url: https://u:TOPSECRET@h/x.git\n", "git-repos[0]: url: credentials belong in git-hosts"},
		{"git-repos:\n  - module: corp.example.com/x\n    url: file:///srv/x.git\n", `scheme "file"`},
		{"git-repos:\n  - module: corp.example.com/x\n    url: https://h/x.git\n    subdir: ../up\n", "relative path inside"},
		{"git-repos:\n  - module: \"-bad\"\n    url: https://h/x.git\n", "git-repos[0]: module:"},
		{"private: \"[\"\n", "private"},
	} {
		path := writeFile(t, "m.yaml", tc.yaml)
		_, err := Load([]string{"--config", path}, env(nil))
		wantErr(t, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
}
