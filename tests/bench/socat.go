package main

// Extra rows when socat is installed: the same live move through a socat
// relay, socat at both ends, as the reference figures were taken.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

func hasSocat() bool {
	_, err := exec.LookPath("socat")
	return err == nil
}

// freePort returns a loopback port nobody listens on at the moment.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (b *bench) socat(input string, size int64) (transfer, error) {
	in, err := freePort()
	if err != nil {
		return transfer{}, err
	}
	out, err := freePort()
	if err != nil {
		return transfer{}, err
	}
	// -U: from the right address to the left one; socat opens the left
	// (the receiver's side) first, then the right.
	relay, err := startProc(os.Environ(), nil, nil, "socat", "-U",
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", out),
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", in))
	if err != nil {
		return transfer{}, err
	}
	defer func() { _ = relay.cmd.Process.Kill(); <-relay.done }()
	retry := ",retry=1000,interval=0.005"
	s := newSink(b.cfg.check)
	recv, err := startProc(os.Environ(), nil, s, "socat", "-u", fmt.Sprintf("TCP:127.0.0.1:%d%s", out, retry), "STDOUT")
	if err != nil {
		return transfer{}, err
	}
	f, err := os.Open(input)
	if err != nil {
		return transfer{}, err
	}
	defer f.Close()
	// The sender starts once the relay listens for it, as in the other cases.
	if err := waitListening(in, 30*time.Second); err != nil {
		return transfer{}, err
	}
	send, err := startProc(os.Environ(), f, nil, "socat", "-u", "STDIN", fmt.Sprintf("TCP:127.0.0.1:%d%s", in, retry))
	if err != nil {
		return transfer{}, err
	}
	if err := errorsOf(send.waitTimeout(caseTimeout), recv.waitTimeout(caseTimeout)); err != nil {
		return transfer{}, err
	}
	b.verify("socat relay: receiver got every byte", s, size)
	return transfer{wall: recv.end.Sub(send.start), sendRSS: send.maxRSS(), recvRSS: recv.maxRSS()}, nil
}

// waitListening waits until something listens on a loopback port, by
// looking at /proc/net/tcp rather than connecting (a connection would be
// the relay's one accept).
func waitListening(port int, limit time.Duration) error {
	want := fmt.Sprintf(":%04X 00000000:0000 0A", port)
	deadline := time.Now().Add(limit)
	for {
		b, _ := os.ReadFile("/proc/net/tcp")
		if strings.Contains(string(b), want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %v", port, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
