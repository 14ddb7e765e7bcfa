package provision

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A satellite whose connection requests go unanswered for longer than one
// try of the dial is reached by the next try, not reported unreachable.
// Unanswered: its listen queue is full, so the kernel drops each request
// (SYN) and the client's kernel sends it again 1 s and 3 s later, as it
// does for one lost on a busy machine.
func TestDialTriesAgainWhereATryFoundNoAnswer(t *testing.T) {
	srv, _ := serverBehindLink(t, 30)
	deaf := deafListener(t)

	type dialed struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan dialed, 1)
	start := time.Now()
	go func() {
		nc, err := Dial(Endpoint{URL: "nats://" + deaf.Addr().String(), Token: "tok"})
		done <- dialed{nc, err}
	}()
	// The fault lasts longer than one try.
	select {
	case d := <-done:
		if d.nc != nil {
			d.nc.Close()
		}
		t.Fatalf("the dial ended after %v while no connection could be taken: %v", time.Since(start).Round(time.Millisecond), d.err)
	case <-time.After(dialTimeout + 500*time.Millisecond):
	}
	relay(t, deaf, srv.Addr().String())

	select {
	case d := <-done:
		if d.err != nil {
			t.Fatalf("after %v: %v", time.Since(start).Round(time.Millisecond), d.err)
		}
		d.nc.Close()
	case <-time.After(dialTries*dialTimeout + handshakeTimeout):
		t.Fatal("the dial did not end within its bounds")
	}
}

// An address whose connection requests go unanswered is reported
// unreachable after every try, and says so.
func TestDialReportsNoAnswerAfterItsTries(t *testing.T) {
	deaf := deafListener(t)
	start := time.Now()
	_, err := Dial(Endpoint{URL: "nats://" + deaf.Addr().String(), Token: "tok"})
	took := time.Since(start)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if want := dialTries * dialTimeout; took < want || took > want+handshakeTimeout {
		t.Errorf("reported after %v, want after its %d tries of %v", took, dialTries, dialTimeout)
	}
	t.Log(err)
}

// deafListener is a loopback listener that answers no connection request:
// its listen queue has room for one connection, and holds one, which is
// closed with the test.
func deafListener(t *testing.T) net.Listener {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "deaf listener")
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	// A backlog of 0: Linux queues one connection, and drops requests
	// while it is there.
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	filler, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	// Ready when a request goes unanswered.
	probe, err := net.DialTimeout("tcp", ln.Addr().String(), 300*time.Millisecond)
	if err == nil {
		probe.Close()
		t.Fatal("the listen queue took a second connection: the test proves nothing")
	}
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("a request to a full listen queue: %v, want no answer", err)
	}
	return ln
}

// relay accepts ln's connections from now on and carries each to target,
// until the test ends.
func relay(t *testing.T, ln net.Listener, target string) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	// track keeps c to be closed with the test, or closes it now if the
	// test has ended.
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
			return false
		}
		conns = append(conns, c)
		return true
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				return
			}
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			if !track(up) {
				c.Close()
				return
			}
			wg.Go(func() { _, _ = io.Copy(up, c); up.Close() })
			wg.Go(func() { _, _ = io.Copy(c, up); c.Close() })
		}
	})
}
