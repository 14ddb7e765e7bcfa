//go:build unix

package provision

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// detach runs the satellite in a session of its own, so that it outlives
// the command that started it and the terminal's signals.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}

// terminate asks pid to exit (SIGTERM), for a satellite that did not
// answer the stop request.
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }

// kill ends pid at once (SIGKILL).
func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	// A zombie is not alive, but only its parent can reap it.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// isSatellite tells whether pid runs `skypipe serve`, from its arguments
// (procArgs); where they cannot be read it says no, so that a pid reused
// by another program is never signalled.
func isSatellite(pid int) bool {
	args, err := procArgs(pid)
	return err == nil && len(args) > 1 && args[1] == "serve" && alive(pid)
}
