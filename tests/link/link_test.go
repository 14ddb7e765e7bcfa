package link

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsServer runs a NATS server on loopback for the test.
func natsServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func startProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	p, err := Start(upstream, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func natsConnect(t *testing.T, addr string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("nats://"+addr, append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// sink is an upstream that accepts connections and keeps what each sends.
type sink struct {
	ln    net.Listener
	conns chan net.Conn
}

func newSink(t *testing.T) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln, conns: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(s.conns)
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

// next is the next connection the sink accepted.
func (s *sink) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream got no connection")
		return nil
	}
}

func TestDelayAddsItsRoundTripToANATSPing(t *testing.T) {
	s := natsServer(t)
	p := startProxy(t, s.Addr().String())
	nc := natsConnect(t, p.Addr())
	for _, rtt := range []time.Duration{120 * time.Millisecond, 300 * time.Millisecond} {
		p.SetRTT(rtt)
		got, err := nc.RTT()
		if err != nil {
			t.Fatal(err)
		}
		if got < rtt {
			t.Errorf("with the link's RTT at %v, a NATS ping took %v", rtt, got)
		}
		t.Logf("link RTT %v: NATS ping %v", rtt, got)
	}
	p.SetRTT(0)
	got, err := nc.RTT()
	if err != nil {
		t.Fatal(err)
	}
	if got >= 120*time.Millisecond {
		t.Errorf("with the delay lifted, a NATS ping still took %v", got)
	}
	// One way only: the ping waits for the way up, not the way back.
	p.SetDelay(200*time.Millisecond, 0)
	if got, err = nc.RTT(); err != nil || got < 200*time.Millisecond {
		t.Errorf("with 200ms up and none down, a NATS ping took %v (%v)", got, err)
	}
}

func TestStallHoldsEveryMessageUntilItEndsAndLosesNone(t *testing.T) {
	s := natsServer(t)
	p := startProxy(t, s.Addr().String())
	direct := natsConnect(t, s.Addr().String())
	sub, err := direct.SubscribeSync("stalled")
	if err != nil {
		t.Fatal(err)
	}
	if err := direct.Flush(); err != nil {
		t.Fatal(err)
	}
	via := natsConnect(t, p.Addr())
	const n = 2000
	for i := range n / 2 {
		if err := via.Publish("stalled", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	const stall = 1500 * time.Millisecond
	begun := time.Now()
	p.Stall(stall)
	if !p.Stalled() {
		t.Fatal("Stalled is false right after Stall")
	}
	for i := n / 2; i < n; i++ {
		if err := via.Publish("stalled", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The messages published during the stall arrive only once it ends.
	for i := range n {
		m, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d came as %q", i, m.Data)
		}
		if i >= n/2 && time.Since(begun) < stall {
			t.Fatalf("message %d, published during the stall, arrived %v after it began", i, time.Since(begun))
		}
	}
	// The connection outlived the stall: no reconnect, the same server connection.
	if err := via.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Accepted != 1 || st.Conns != 1 {
		t.Errorf("after the stall: %+v, want the one connection still open", st)
	}
	if p.Stalled() {
		t.Error("still stalled after the stall's end")
	}
}

func TestStallMidStreamLosesNoByteEitherWay(t *testing.T) {
	up := newSink(t)
	p := startProxy(t, up.ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := up.next(t)
	data := make([]byte, 48<<20)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)

	// Upstream echoes what it reads; the client checks what comes back.
	var wg sync.WaitGroup
	wg.Add(2)
	var echoErr, readErr error
	var got [32]byte
	go func() {
		defer wg.Done()
		_, echoErr = io.Copy(srv, srv)
		srv.(*net.TCPConn).CloseWrite()
	}()
	go func() {
		defer wg.Done()
		h := sha256.New()
		_, readErr = io.Copy(h, c)
		copy(got[:], h.Sum(nil))
	}()
	half := len(data) / 2
	if _, err := c.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	p.Stall(time.Second)
	before := p.Stats()
	if _, err := c.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	wg.Wait()
	if echoErr != nil || readErr != nil {
		t.Fatalf("echo: %v, read: %v", echoErr, readErr)
	}
	if got != want {
		t.Fatal("the bytes that came back through a stall differ from those sent")
	}
	if st := p.Stats(); st.Up != int64(len(data)) || st.Down != int64(len(data)) || st.Up <= before.Up {
		t.Errorf("counters %+v (at the stall %+v), want %d each way", st, before, len(data))
	}
}

func TestStallAtBeginsAtItsMarkInTheMiddleOfATransfer(t *testing.T) {
	up := newSink(t)
	p := startProxy(t, up.ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := up.next(t)
	data := make([]byte, 16<<20)
	_, _ = rand.Read(data)
	const mark = 4 << 20
	p.StallAt(mark, time.Second)
	go func() { srv.Write(data); srv.(*net.TCPConn).CloseWrite() }()
	var got []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		// Past the chunk that crossed the mark, bytes come only once the
		// stall has begun and ended.
		if len(got) > mark+chunkSize {
			if st := p.Stats(); st.Stalls != 1 || p.Stalled() {
				t.Fatalf("%d bytes came through with %d stall(s) begun, stalled now: %v", len(got), st.Stalls, p.Stalled())
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, not the %d sent", len(got), len(data))
	}
	if st := p.Stats(); st.Stalls != 1 {
		t.Errorf("%d stalls begun, want 1", st.Stalls)
	}
}

func TestCutDropsConnectionsAndRefusesNewOnesUntilItEnds(t *testing.T) {
	s := natsServer(t)
	p := startProxy(t, s.Addr().String())
	closed := make(chan struct{})
	nc := natsConnect(t, p.Addr(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p.Cut(2 * time.Second)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a NATS connection through a cut link was not dropped")
	}
	if !p.Cutting() {
		t.Skip("the machine is so slow that the cut ended before it could be observed")
	}
	if c, err := nats.Connect("nats://"+p.Addr(), nats.NoReconnect(), nats.Timeout(time.Second)); err == nil {
		c.Close()
		if p.Cutting() {
			t.Fatal("a NATS client connected through the link during a cut")
		}
	}
	if p.Stats().Refused == 0 && p.Cutting() {
		t.Error("no connection counted as refused during the cut")
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Cutting() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	again := natsConnect(t, p.Addr())
	if err := again.Flush(); err != nil {
		t.Fatalf("after the cut: %v", err)
	}
}

func TestResetSendsRSTToBothEndsOfAnIdleConnection(t *testing.T) {
	up := newSink(t)
	p := startProxy(t, up.ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := up.next(t)
	// The connection carries a byte each way, then idles.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(srv, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	for name, conn := range map[string]net.Conn{"client": c, "upstream": srv} {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := conn.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the %s end read %v after a reset, want ECONNRESET", name, err)
		}
	}
	// New connections go through at once.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	srv2 := up.next(t)
	if _, err := c2.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(srv2, b); err != nil || string(b) != "after" {
		t.Fatalf("after a reset: %q, %v", b, err)
	}
}

// upload sends size bytes from a client through p to the sink behind it,
// checks that they arrive whole, and returns how long that took.
func upload(t *testing.T, p *Proxy, up *sink, size int) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := up.next(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	start := time.Now()
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		wrote <- err
	}()
	got, err := io.ReadAll(srv)
	took := time.Since(start)
	if werr := <-wrote; werr != nil {
		t.Fatalf("writing: %v", werr)
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes (%v), want the %d sent", len(got), err, len(data))
	}
	return took
}

func TestRateHoldsATransferToTheLineRate(t *testing.T) {
	up := newSink(t)
	p := startProxy(t, up.ln.Addr().String())
	rate, err := ParseRate("2mbit")
	if err != nil {
		t.Fatal(err)
	}
	p.SetRate(rate)
	const size = 256 << 10
	took := upload(t, p, up, size)
	// A line can send no faster than its rate: a lower bound only.
	if least := time.Duration(float64(size) / float64(rate) * float64(time.Second)); took < least*9/10 {
		t.Errorf("%d bytes at %d B/s took %v, less than the line allows (%v)", size, rate, took, least)
	}
	t.Logf("%d bytes at 2mbit: %v", size, took)
}

// TestWindowHoldsAConnectionToAWindowARoundTrip: with a window, a
// connection has at most that many bytes unacknowledged, and a byte is
// acknowledged a round trip after it left (the ack comes back the other
// way, whose delay counts even when its own way has none).
func TestWindowHoldsAConnectionToAWindowARoundTrip(t *testing.T) {
	const window, size = 128 << 10, 1 << 20
	for _, tc := range []struct {
		name     string
		up, down time.Duration
	}{
		{"half the RTT each way", 100 * time.Millisecond, 100 * time.Millisecond},
		{"all the RTT on the ack's way", 0, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newSink(t)
			p := startProxy(t, up.ln.Addr().String())
			p.SetDelay(tc.up, tc.down)
			p.SetWindow(window)
			took := upload(t, p, up, size)
			// The last window leaves once the ones before it were acked, a
			// round trip each: a lower bound only.
			rtt := tc.up + tc.down
			if least := time.Duration(size/window-1) * rtt; took < least*9/10 {
				t.Errorf("%d bytes in windows of %d across %v took %v, less than the window allows (%v)", size, window, rtt, took, least)
			}
			t.Logf("%d bytes in windows of %d across %v: %v", size, window, rtt, took)
		})
	}
}

// TestHandshakeDelaysANewConnectionsFirstBytes: with the handshake on,
// a client's first byte arrives a round trip and the way up after it
// connected, and the bytes an upstream sends at once (a server's greeting)
// two round trips after, as behind SYN, SYN-ACK and ACK across the link.
func TestHandshakeDelaysANewConnectionsFirstBytes(t *testing.T) {
	up := newSink(t)
	p := startProxy(t, up.ln.Addr().String())
	const way, back = 50 * time.Millisecond, 150 * time.Millisecond
	p.SetDelay(way, back)
	p.SetHandshake(true)
	start := time.Now()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	srv := up.next(t)
	if _, err := srv.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(srv, got[:1]); err != nil || got[0] != 'x' {
		t.Fatalf("the upstream read %q, %v", got[:1], err)
	}
	// Lower bounds only.
	if took, least := time.Since(start), way+back+way; took < least*9/10 {
		t.Errorf("the client's first byte arrived %v after it connected, sooner than the handshake allows (%v)", took, least)
	}
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("the client read %q, %v", got, err)
	}
	if took, least := time.Since(start), 2*(way+back); took < least*9/10 {
		t.Errorf("the upstream's greeting arrived %v after the connect, sooner than the handshake allows (%v)", took, least)
	}
}

func TestCloseResetsConnectionsAndStopsListening(t *testing.T) {
	up := newSink(t)
	p, err := Start(up.ln.Addr().String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	up.next(t)
	p.Stall(time.Hour) // Close ends a stall too
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Close: %v, want ECONNRESET", err)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Error("a closed proxy still accepts connections")
	}
}

func TestStartTakesOnlyALoopbackAddress(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:4222", "example.com:4222", "localhost:4222", "0.0.0.0:4222", "nohost"} {
		if p, err := Start(addr, Options{}); err == nil {
			p.Close()
			t.Errorf("Start(%q) accepted an upstream off loopback", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:4222", "127.0.0.2:4222", "[::1]:4222"} {
		p, err := Start(addr, Options{})
		if err != nil {
			t.Errorf("Start(%q): %v", addr, err)
			continue
		}
		p.Close()
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "100mbit", want: 12_500_000},
		{in: "1Gbit", want: 125_000_000},
		{in: "1.5mbit", want: 187_500},
		{in: "800kbit", want: 100_000},
		{in: "9600bit", want: 1200},
		{in: "off", want: 0},
		{in: "0", want: 0},
		{in: "100", bad: true},
		{in: "fast", bad: true},
		{in: "-1mbit", bad: true},
		{in: "mbit", bad: true},
		{in: "1bit", bad: true}, // less than a byte a second
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, bad %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func ExampleProxy() {
	p, err := Start("127.0.0.1:4222", Options{})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	p.SetRTT(80 * time.Millisecond) // 40 ms each way
	rate, _ := ParseRate("100mbit")
	p.SetRate(rate)
	fmt.Println(p.Upstream())
	// Output: 127.0.0.1:4222
}
