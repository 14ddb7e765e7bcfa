package main

import "golang.org/x/sys/unix"

// fionread asks a pipe how many bytes wait in it.
const fionread = unix.TIOCINQ
