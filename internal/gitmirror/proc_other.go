//go:build !unix

package gitmirror

import "os/exec"

// isolate kills git when cmd's context ends; without process groups its
// helpers (git-remote-https, ssh) end when their pipes to git close.
func isolate(cmd *exec.Cmd) {
	cmd.Cancel = func() error { return cmd.Process.Kill() }
}
