//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package main

// fionread asks a pipe how many bytes wait in it: FIONREAD, _IOR('f', 127,
// int), which golang.org/x/sys/unix does not name on these systems.
const fionread = 0x4004667f
