package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill cmd if the bench dies first, so an
// interrupted run leaves no server behind.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
