// Package link emulates a network link on loopback, for tests and the
// benchmark: a TCP proxy in front of one upstream address, whose
// conditions a test changes while traffic flows. This kernel has no netem,
// so the link lives in user space.
//
// Per proxy, in each direction:
//
//   - delay: every byte arrives a fixed time after the proxy read it
//     (SetDelay per direction, SetRTT half each way);
//   - rate: bytes leave at most at a given rate (SetRate), paced as they
//     are read, so that the sender, not the proxy, holds the backlog;
//   - window: at most a given number of a connection's bytes are
//     unacknowledged (SetWindow), as a TCP sender's socket buffer bounds
//     what it has in flight on a real path: a byte is acknowledged once it
//     is delivered and the other direction's delay has passed (its ack's
//     way back);
//   - handshake: a new connection's bytes wait as they would behind TCP's
//     handshake across the link (SetHandshake): the client's first byte
//     arrives no sooner than a round trip and the way up after the
//     connect, the upstream's no sooner than two round trips;
//   - stall: nothing moves, either way, for a duration; then everything
//     held goes on in order and nothing is lost (Stall);
//   - cut: every connection is reset and new ones are refused for a
//     duration (Cut);
//   - reset: every connection is reset (TCP RST to both ends) now, new ones
//     are accepted (Reset).
//
// A user-space proxy delays bytes, not packets: the kernels' TCP on either
// side sees loopback, so TCP's own handshake (unless SetHandshake), windows
// and retransmissions are not emulated (SetWindow emulates the send
// window's bound on throughput, one window a round trip, not slow start);
// every application round trip (a request and its reply, an ack and what
// it releases) does cross the full delay both ways. At most
// Options.Queue bytes are in flight in each direction.
//
// Why not Shopify/toxiproxy v2.5.0 (tried, embedded): its timeout toxic
// drops what arrives while it is in place and closes the connection when it
// is removed (a stall that loses data); its reset_peer toxic resets a
// connection only when data next arrives (an idle NATS connection sends a
// ping every 20 s) and, for connections opened before it was added, closes
// with a FIN, not an RST; its connections are not reachable otherwise; and
// changing a toxic while data flows is a data race (UpdateToxicJson writes
// the fields the running toxic reads), which the race detector reports.
//
// The proxy listens on 127.0.0.1 only and refuses an upstream that is not
// a loopback address.
package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a proxy; the zero value is the default.
type Options struct {
	// Queue is how many bytes each direction may hold in flight (read,
	// not yet written on): the largest bandwidth-delay product the link
	// carries at full rate. Default 32 MiB.
	Queue int
}

// chunkSize is the most the proxy reads at once.
const chunkSize = 64 << 10

// dialTimeout bounds the proxy's connection to its upstream.
const dialTimeout = 5 * time.Second

// Proxy is one emulated link in front of one upstream address.
type Proxy struct {
	upstream string
	ln       net.Listener
	slots    int // chunks each direction may queue

	mu        sync.Mutex
	up, down  time.Duration // one-way delay of each direction
	rate      int64         // bytes a second each way; 0: unlimited
	window    int64         // unacknowledged bytes per connection and way; 0: unlimited
	handshake bool          // new connections pay for TCP's handshake
	frozen    chan struct{} // while stalled: closed when the stall ends
	stallEnd  time.Time
	stallGen  int
	stallStop *time.Timer
	cutEnd    time.Time
	pairs     map[*pair]struct{}
	closed    bool

	sentUp, sentDown atomic.Int64 // bytes written on, each way
	accepted         atomic.Int64 // connections carried
	refused          atomic.Int64 // connections reset at accept during a cut
	stalls           atomic.Int64 // stalls begun

	// A stall armed to begin once sentDown reaches armedAt (0: none).
	armedAt  atomic.Int64
	armedFor time.Duration // under mu

	wg sync.WaitGroup // the accept loop and every connection's pumps
}

// Start starts a proxy on 127.0.0.1 in front of upstream, a loopback
// IP address and port.
func Start(upstream string, opts Options) (*Proxy, error) {
	if err := checkLoopback(upstream); err != nil {
		return nil, err
	}
	if opts.Queue <= 0 {
		opts.Queue = 32 << 20
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		upstream: upstream,
		ln:       ln,
		slots:    max(opts.Queue/chunkSize, 4),
		pairs:    map[*pair]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// checkLoopback refuses an upstream that is not on loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("link: upstream %q: %w", addr, err)
	}
	ip := net.ParseIP(host) // an address, not a name that could resolve elsewhere
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("link: upstream %q is not a loopback address", addr)
	}
	return nil
}

// Addr is the address clients connect to instead of the upstream.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream is the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// SetDelay sets the one-way delay of each direction: up is from the
// clients to the upstream, down back. It applies to bytes read from now on.
func (p *Proxy) SetDelay(up, down time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up, p.down = max(up, 0), max(down, 0)
}

// SetRTT sets the delay both ways to half of rtt each.
func (p *Proxy) SetRTT(rtt time.Duration) { p.SetDelay(rtt/2, rtt-rtt/2) }

// SetRate limits each direction to bytesPerSec; 0 lifts the limit.
func (p *Proxy) SetRate(bytesPerSec int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = max(bytesPerSec, 0)
}

// SetWindow bounds each connection, each way, to bytes unacknowledged:
// what a TCP sender may have in flight, its socket buffer (Linux's
// tcp_wmem: 4 MiB at most by default), so that a connection carries at
// most bytes a round trip, as across a real path; 0 lifts the bound. It
// applies to bytes read from now on.
func (p *Proxy) SetWindow(bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.window = max(bytes, 0)
}

// SetHandshake makes new connections pay for TCP's handshake across the
// link, which the kernels do on loopback: SYN up, SYN-ACK down, then the
// client's first bytes with its ACK. A client's byte then arrives no
// sooner than RTT plus the way up after it connected, and an upstream's no
// sooner than two RTTs (it accepts once the ACK is up). It applies to
// connections accepted from now on.
func (p *Proxy) SetHandshake(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handshake = on
}

// Stall freezes the link both ways for d, from now: nothing is read or
// written on, on any connection, new ones included. Then everything held
// goes on, in order, nothing lost. A stall during a stall lasts until the
// later end. Stall returns at once.
func (p *Proxy) Stall(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || d <= 0 {
		return
	}
	if p.frozen == nil {
		p.frozen = make(chan struct{})
		p.stalls.Add(1)
	}
	end := time.Now().Add(d)
	if !end.After(p.stallEnd) {
		return
	}
	p.stallEnd = end
	p.stallGen++
	if p.stallStop != nil {
		p.stallStop.Stop()
	}
	gen := p.stallGen
	p.stallStop = time.AfterFunc(d, func() { p.thaw(gen) })
}

// StallAt arms a stall of d that begins as soon as down bytes in all
// have been delivered from the upstream to the clients (Stats.Down): the
// moment a transfer in that direction is under way, exactly, rather than
// whenever a test that polls for it gets round to it. The bytes of the
// chunk that crosses the mark are delivered; nothing after them until the
// stall ends. One stall is armed at a time; StallAt returns at once.
func (p *Proxy) StallAt(down int64, d time.Duration) {
	p.mu.Lock()
	p.armedFor = d
	p.mu.Unlock()
	p.armedAt.Store(max(down, 1))
	p.fireArmed(p.sentDown.Load())
}

// fireArmed begins the armed stall if down bytes reach its mark.
func (p *Proxy) fireArmed(down int64) {
	at := p.armedAt.Load()
	if at == 0 || down < at || !p.armedAt.CompareAndSwap(at, 0) {
		return
	}
	p.mu.Lock()
	d := p.armedFor
	p.mu.Unlock()
	p.Stall(d)
}

// Stalled tells whether the link is stalled now.
func (p *Proxy) Stalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen != nil
}

// thaw ends the stall numbered gen, unless a later one replaced it.
func (p *Proxy) thaw(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen == p.stallGen {
		p.thawLocked()
	}
}

func (p *Proxy) thawLocked() {
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
	if p.stallStop != nil {
		p.stallStop.Stop()
		p.stallStop = nil
	}
	p.stallEnd = time.Time{}
}

// waitThawed waits until the link is not stalled; false if done closed first.
func (p *Proxy) waitThawed(done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		f := p.frozen
		p.mu.Unlock()
		if f == nil {
			return true
		}
		select {
		case <-f:
		case <-done:
			return false
		}
	}
}

// Cut resets every connection now and, for d, resets every new one as
// soon as it is accepted, before a byte passes: clients see their
// connections and their attempts to connect fail, as across a cable
// pulled out and a peer that answers with resets. Cut returns at once.
func (p *Proxy) Cut(d time.Duration) {
	p.mu.Lock()
	if end := time.Now().Add(d); end.After(p.cutEnd) {
		p.cutEnd = end
	}
	p.mu.Unlock()
	p.Reset()
}

// Cutting tells whether a cut is on now.
func (p *Proxy) Cutting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.cutEnd)
}

// Reset resets every connection now: both ends get a TCP RST, and what the
// proxy held for them is dropped. New connections are carried as before.
func (p *Proxy) Reset() {
	p.mu.Lock()
	pairs := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		pairs = append(pairs, pr)
	}
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.abort()
	}
}

// Stats are a proxy's counters.
type Stats struct {
	Conns    int   // connections open now
	Accepted int64 // connections carried since the start
	Refused  int64 // connections reset at once during cuts
	Stalls   int64 // stalls begun (one that extends another is not counted)
	Up, Down int64 // bytes delivered each way since the start
}

// Stats reads the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	n := len(p.pairs)
	p.mu.Unlock()
	return Stats{Conns: n, Accepted: p.accepted.Load(), Refused: p.refused.Load(), Stalls: p.stalls.Load(), Up: p.sentUp.Load(), Down: p.sentDown.Load()}
}

// Close stops the proxy: it stops listening, resets every connection, and
// returns once every goroutine it started has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.thawLocked()
	p.mu.Unlock()
	p.armedAt.Store(0)
	err := p.ln.Close()
	p.Reset()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// Nothing but Close ends a loopback listener; if something
				// else did, the proxy is no use any more.
				p.mu.Lock()
				p.closed = true
				p.mu.Unlock()
			}
			return
		}
		client := c.(*net.TCPConn)
		p.mu.Lock()
		closed, cut := p.closed, time.Now().Before(p.cutEnd)
		p.mu.Unlock()
		if closed || cut {
			if cut {
				p.refused.Add(1)
			}
			rst(client)
			continue
		}
		p.wg.Add(1)
		go p.connect(client, time.Now())
	}
}

// connect dials the upstream for a client and starts its pair's pumps.
func (p *Proxy) connect(client *net.TCPConn, accepted time.Time) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.upstream)
	if err != nil {
		rst(client)
		return
	}
	pr := &pair{p: p, client: client, server: c.(*net.TCPConn), done: make(chan struct{})}
	p.mu.Lock()
	if p.handshake {
		pr.handshook = accepted.Add(p.up + p.down)
	}
	if p.closed || time.Now().Before(p.cutEnd) {
		p.mu.Unlock()
		pr.abort()
		return
	}
	p.pairs[pr] = struct{}{}
	p.accepted.Add(1)
	p.wg.Add(4)
	p.mu.Unlock()
	pr.halves.Store(2)
	pr.start(pr.client, pr.server, true)
	pr.start(pr.server, pr.client, false)
}

// rst closes c with an RST rather than a FIN.
func rst(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// pair is one client connection and its connection to the upstream.
type pair struct {
	p              *Proxy
	client, server *net.TCPConn
	done           chan struct{} // closed when the pair is aborted
	once           sync.Once
	halves         atomic.Int32 // directions not yet ended by EOF
	// handshook: when the client's ACK leaves, TCP's handshake done across
	// the link (SetHandshake); zero: no handshake emulated.
	handshook time.Time
}

// abort resets both connections and stops the pumps.
func (pr *pair) abort() {
	pr.once.Do(func() {
		close(pr.done)
		rst(pr.client)
		rst(pr.server)
		pr.p.mu.Lock()
		delete(pr.p.pairs, pr)
		pr.p.mu.Unlock()
	})
}

// halfDone notes that one direction ended with an EOF passed on; the pair
// closes (with FINs already sent) once both have.
func (pr *pair) halfDone() {
	if pr.halves.Add(-1) > 0 {
		return
	}
	pr.once.Do(func() {
		close(pr.done)
		_ = pr.client.Close()
		_ = pr.server.Close()
		pr.p.mu.Lock()
		delete(pr.p.pairs, pr)
		pr.p.mu.Unlock()
	})
}

// chunk is what one read got, and when it is due at the other end.
type chunk struct {
	buf *[]byte // from bufs; nil with err
	n   int
	due time.Time
	err error // io.EOF, or why the source failed
	// windowed: its bytes count against the window until acked (the window
	// was on when it was read).
	windowed bool
}

// handshakeFloor is the soonest a byte arrives across the link behind
// TCP's handshake: the client's rides with its ACK (the way up after the
// handshake), the upstream's leaves once that ACK is up (and comes down).
func (pr *pair) handshakeFloor(upward bool, set conditions) time.Time {
	if upward {
		return pr.handshook.Add(set.up)
	}
	return pr.handshook.Add(set.up + set.down)
}

// ack frees n bytes of a direction's window at a time.
type ack struct {
	n  int
	at time.Time
}

var bufs = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// start runs one direction: a reader that paces what it reads to the rate
// and stamps it with its due time, and a writer that hands it on when due.
func (pr *pair) start(src, dst *net.TCPConn, upward bool) {
	q := make(chan chunk, pr.p.slots)
	// The writer hands each windowed chunk's ack back to the reader: at
	// most the chunks queued and the one being written are unacked and not
	// yet taken by the reader, which takes them all at each read.
	acks := make(chan ack, pr.p.slots+2)
	go pr.read(src, q, acks, upward)
	go pr.write(dst, q, acks, upward)
}

// inFlight is a direction's unacknowledged bytes, kept by its reader.
type inFlight struct {
	bytes   int64
	pending []ack // taken from the writer, not due yet, in order
}

// take moves the acks the writer handed back into pending, and frees what
// is due by now.
func (f *inFlight) take(acks <-chan ack, now time.Time) {
	for more := true; more; {
		select {
		case a := <-acks:
			f.pending = append(f.pending, a)
		default:
			more = false
		}
	}
	for len(f.pending) > 0 && !f.pending[0].at.After(now) {
		f.bytes -= int64(f.pending[0].n)
		f.pending = f.pending[1:]
	}
}

// room waits until fewer than window bytes are in flight, and returns how
// many more may be read; false if done closed first.
func (f *inFlight) room(window int64, acks <-chan ack, done <-chan struct{}) (int64, bool) {
	for {
		f.take(acks, time.Now())
		if window <= 0 {
			return chunkSize, true
		}
		if f.bytes < window {
			return window - f.bytes, true
		}
		if len(f.pending) > 0 {
			if !sleep(time.Until(f.pending[0].at), done) {
				return 0, false
			}
			continue
		}
		// Every byte in flight is still on its way: wait for its ack.
		select {
		case a := <-acks:
			f.pending = append(f.pending, a)
		case <-done:
			return 0, false
		}
	}
}

func (pr *pair) read(src *net.TCPConn, q chan<- chunk, acks <-chan ack, upward bool) {
	defer pr.p.wg.Done()
	p := pr.p
	var free time.Time // when the emulated line is free for the next byte
	var flight inFlight
	for {
		if !p.waitThawed(pr.done) {
			return
		}
		set := p.settings()
		space, ok := flight.room(set.window, acks, pr.done)
		if !ok {
			return
		}
		buf := bufs.Get().(*[]byte)
		size := chunkSize
		if set.rate > 0 {
			size = int(min(max(set.rate/100, 1500), chunkSize)) // about 10 ms of the line at a time
		}
		size = int(min(int64(size), space))
		n, err := src.Read((*buf)[:size])
		// The conditions of the moment the bytes came in, not of when the
		// read began (the window's, the one it began with).
		windowed := set.window > 0
		set = p.settings()
		delay := set.down
		if upward {
			delay = set.up
		}
		if n > 0 {
			now := time.Now()
			leave := now
			if set.rate > 0 {
				leave = later(free, now).Add(time.Duration(int64(n) * int64(time.Second) / set.rate))
				free = leave
			}
			due := leave.Add(delay)
			if !pr.handshook.IsZero() {
				due = later(due, pr.handshakeFloor(upward, set))
			}
			if windowed {
				flight.bytes += int64(n) // before its ack can come back
			}
			select {
			case q <- chunk{buf: buf, n: n, due: due, windowed: windowed}:
			case <-pr.done:
				return
			}
			// Pace the reads to the rate: what the line has not sent yet
			// waits in the sender's socket, not here.
			if wait := time.Until(leave); wait > 0 && !sleep(wait, pr.done) {
				return
			}
		} else {
			bufs.Put(buf)
		}
		if err != nil {
			due := time.Now().Add(delay)
			if !pr.handshook.IsZero() {
				due = later(due, pr.handshakeFloor(upward, set))
			}
			select {
			case q <- chunk{err: err, due: due}:
			case <-pr.done:
			}
			return
		}
	}
}

func (pr *pair) write(dst *net.TCPConn, q <-chan chunk, acks chan<- ack, upward bool) {
	defer pr.p.wg.Done()
	p := pr.p
	sent := &p.sentDown
	if upward {
		sent = &p.sentUp
	}
	for {
		var c chunk
		select {
		case c = <-q:
		case <-pr.done:
			return
		}
		if wait := time.Until(c.due); wait > 0 && !sleep(wait, pr.done) {
			return
		}
		if !p.waitThawed(pr.done) {
			return
		}
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				_ = dst.CloseWrite() // pass the FIN on; the other way goes on
				pr.halfDone()
				return
			}
			pr.abort() // the source failed (reset, or closed under us): pass it on
			return
		}
		_, err := dst.Write((*c.buf)[:c.n])
		bufs.Put(c.buf)
		if err != nil {
			pr.abort()
			return
		}
		if total := sent.Add(int64(c.n)); !upward {
			p.fireArmed(total)
		}
		if c.windowed {
			// Its ack takes the other way back.
			set := p.settings()
			back := set.up
			if upward {
				back = set.down
			}
			select {
			case acks <- ack{n: c.n, at: time.Now().Add(back)}:
			case <-pr.done:
				return
			}
		}
	}
}

// conditions are a link's delay and rate at one moment.
type conditions struct {
	up, down time.Duration
	rate     int64
	window   int64
}

func (p *Proxy) settings() conditions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return conditions{up: p.up, down: p.down, rate: p.rate, window: p.window}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sleep waits d; false if done closed first.
func sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// ParseRate reads a line rate as tc writes it, in bits a second with SI
// prefixes: "100mbit", "1.5gbit", "800kbit", "9600bit"; "0" or "off" for no
// limit. It returns bytes a second.
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "0" || t == "off" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f <= 0 {
			break
		}
		if b := int64(f * u.mult / 8); b > 0 {
			return b, nil
		}
		break
	}
	return 0, fmt.Errorf("link: rate %q: want a rate like 100mbit, 800kbit or 1gbit, or off", s)
}
