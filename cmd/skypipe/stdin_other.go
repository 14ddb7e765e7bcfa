//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import "os"

// stdinCarriesData tells whether stdin holds bytes for someone to read.
// Here only a regular file with bytes left can be told.
func stdinCarriesData() bool {
	if kindOf(os.Stdin) != streamFile {
		return false
	}
	fi, err := os.Stdin.Stat()
	if err != nil {
		return false
	}
	off, err := os.Stdin.Seek(0, 1)
	return err == nil && fi.Size() > off
}
