//go:build unix

package gitmirror

import (
	"os/exec"
	"syscall"
)

// isolate runs cmd in a session of its own: it has no controlling
// terminal (so neither git nor ssh can prompt on one) and leads a process
// group, which cancelling kills whole, git-remote-https and ssh included.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
