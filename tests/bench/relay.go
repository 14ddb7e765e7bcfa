package main

// The baseline: a plain TCP relay and its two ends, each its own process
// (the benchmark binary run again with helperEnv set), so that bytes take
// the same path as through skypipe: sender process -> relay -> receiver
// process. All three copy through user-space buffers, as socat and
// piping-server do; none uses splice or sendfile, which no relay that
// looks at the bytes (framing, checksums, storage) could.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// helperEnv names the helper a re-run of the benchmark binary plays.
const helperEnv = "SKYPIPE_BENCH_HELPER"

// relayBuf is the copy buffer of the relay and its ends.
const relayBuf = 128 << 10

// runHelper runs the helper named in the environment, if any, and reports
// whether it did.
func runHelper() (bool, error) {
	switch os.Getenv(helperEnv) {
	case "":
		return false, nil
	case "relay":
		return true, relay()
	case "tcpsend":
		return true, tcpSend(os.Args[1])
	case "tcprecv":
		return true, tcpRecv(os.Args[1])
	default:
		return true, fmt.Errorf("unknown helper %q", os.Getenv(helperEnv))
	}
}

// relay listens on two loopback ports, prints them, takes one sender on
// the first and one receiver on the second, and copies from one to the
// other until the sender's end.
func relay() error {
	in, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer out.Close()
	fmt.Printf("%s %s\n", in.Addr(), out.Addr())
	os.Stdout.Close()
	var src, dst net.Conn
	var srcErr, dstErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); src, srcErr = in.Accept() }()
	go func() { defer wg.Done(); dst, dstErr = out.Accept() }()
	wg.Wait()
	if err := errors.Join(srcErr, dstErr); err != nil {
		return err
	}
	defer src.Close()
	defer dst.Close()
	if err := copyPlain(dst, src); err != nil {
		return err
	}
	return dst.(*net.TCPConn).CloseWrite()
}

func tcpSend(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := copyPlain(c, os.Stdin); err != nil {
		return err
	}
	return c.(*net.TCPConn).CloseWrite()
}

func tcpRecv(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return copyPlain(os.Stdout, c)
}

// copyPlain copies with read and write calls on one buffer: no splice, no
// sendfile (io.Copy would pick those between files and sockets).
func copyPlain(dst io.Writer, src io.Reader) error {
	buf := make([]byte, relayBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
