package sshserver_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/testenv/gitserver"
	"github.com/modgate/modgate/internal/testenv/sshserver"
)

// TestCloneOverSSH: the authorized key clones a repository by its path
// with the host key pinned; the other key is refused.
func TestCloneOverSSH(t *testing.T) {
	gitserver.RequireGit(t)
	s := sshserver.Start(t)
	repo := gitserver.NewRepo(t, "team/lib")
	repo.Write("go.mod", "module example.com/lib\n")
	repo.Commit("first")
	clone := func(key string) (string, error) {
		cmd := exec.Command("git", "clone", "-q", s.URL(repo.Dir()), filepath.Join(t.TempDir(), "c"))
		cmd.Env = append(gitserver.CleanEnv(), "GIT_SSH_COMMAND=ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="+s.KnownHosts+" -i "+key)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := clone(s.ClientKey); err != nil {
		t.Fatalf("clone with the authorized key: %v\n%s", err, out)
	}
	if out, err := clone(s.OtherKey); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("clone with another key: %v\n%s; want permission denied", err, out)
	}
}
