//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// dataWait is how long a command that reads no stdin gives a pipe on its
// stdin to show whether it carries data (`echo x | skypipe stop`: echo
// may not have written yet when skypipe looks).
const dataWait = 100 * time.Millisecond

// stdinCarriesData tells whether stdin holds bytes for someone to read: a
// regular file with bytes left, or a pipe or socket with bytes waiting.
// A pipe that stays silent for dataWait, or that is at its end, carries
// none.
func stdinCarriesData() bool {
	switch kindOf(os.Stdin) {
	case streamFile:
		fi, err := os.Stdin.Stat()
		if err != nil {
			return false
		}
		off, err := os.Stdin.Seek(0, 1)
		return err == nil && fi.Size() > off
	case streamPipe, streamSocket:
		fds := []unix.PollFd{{Fd: int32(os.Stdin.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(dataWait/time.Millisecond))
		if err != nil || n == 0 || fds[0].Revents&unix.POLLIN == 0 {
			return false
		}
		waiting, err := unix.IoctlGetInt(int(os.Stdin.Fd()), fionread)
		return err == nil && waiting > 0
	}
	return false
}
