package provision

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// A raw NATS connection's handshake, in fewer round trips.
//
// nats.go connects in three steps, each waited for: the satellite's INFO,
// TLS (when either side asks for it), then CONNECT and a PING, whose PONG
// says that the satellite took the credentials. Across a WAN that is 2.5
// round trips before a command sends anything (BENCHMARKS.md, "Where the
// round trips go").
//
// handshakeDialer does the first two steps itself (it tells nats.go to
// skip its own TLS: SkipTLSHandshake). A client that insists on TLS starts
// it without waiting for the INFO (tlsFirst), half a round trip less; one
// that does not reads the INFO first, as nats.go would. For credentials
// the satellite took before (Endpoint.Accepted) it also answers nats.go's
// PING at once, so that what the command sends first goes out right
// behind the CONNECT, a round trip sooner; the satellite's own PONG is
// dropped when it comes. A satellite that refuses the credentials after
// all (the token changed on its side) answers -ERR instead of that PONG:
// the refusal is passed on to nats.go twice, so that it closes the
// connection at once with nats.ErrAuthorization (it gives up on a
// server's second refusal), and Refused reports it.
type handshakeDialer struct {
	next   proxyDialer
	url    string      // what the user named, for errors
	tls    *tls.Config // nil: nats.go's default, if TLS is needed at all
	secure bool        // the client wants TLS (nats.go's Secure)

	mu       sync.Mutex
	accepted bool // the credentials were taken before: PONG at once
	state    *tls.ConnectionState
	refused  string // the -ERR the satellite sent instead of a PONG
}

// SkipTLSHandshake tells nats.go that the dialer speaks TLS itself.
func (d *handshakeDialer) SkipTLSHandshake() bool { return true }

// serverInfo is what the dialer reads of the satellite's INFO.
type serverInfo struct {
	TLSRequired  bool `json:"tls_required"`
	TLSAvailable bool `json:"tls_available"`
}

func (d *handshakeDialer) Dial(network, addr string) (net.Conn, error) {
	raw, err := d.next.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	conn, err := d.handshake(raw, addr)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

func (d *handshakeDialer) handshake(raw net.Conn, addr string) (net.Conn, error) {
	if err := raw.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, err
	}
	var (
		conn net.Conn
		line string
		err  error
	)
	if d.secure {
		conn, line, err = d.tlsFirst(raw, addr)
	} else {
		conn, line, err = d.infoFirst(raw, addr)
	}
	if err != nil {
		return nil, err
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	d.mu.Lock()
	fast := d.accepted
	d.mu.Unlock()
	hc := &handshakeConn{Conn: conn, d: d, pending: []byte(line), state: hsOpen}
	if fast {
		hc.state = hsConnect
	}
	hc.r = bufio.NewReader(conn)
	return hc, nil
}

// infoFirst is the handshake of a client that does not insist on TLS:
// the satellite's INFO, then TLS if the satellite requires it (as nats.go
// would do it).
func (d *handshakeDialer) infoFirst(raw net.Conn, addr string) (net.Conn, string, error) {
	br := bufio.NewReader(raw)
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, "", fmt.Errorf("reading the satellite's INFO: %w", err)
	}
	info, err := parseInfo(line)
	if err != nil {
		return nil, "", err
	}
	var conn net.Conn = &bufferedConn{Conn: raw, r: br}
	if info.TLSRequired {
		if conn, err = d.startTLS(conn, addr); err != nil {
			return nil, "", err
		}
	}
	return conn, line, nil
}

// tlsFirst is the handshake of a client that insists on TLS (a pinned CA,
// a tls:// URL): it starts TLS at once, without waiting for the
// satellite's INFO, which a satellite sends first in plaintext (the
// sniffer takes it out of the way; the satellite reads the client's
// hello once it sent it) or, one that takes TLS first (handshake_first),
// inside TLS. On a real path that is half a round trip less.
func (d *handshakeDialer) tlsFirst(raw net.Conn, addr string) (net.Conn, string, error) {
	sn := &infoSniffer{Conn: raw}
	tc, err := d.startTLS(sn, addr)
	if err != nil {
		if sn.plain {
			return nil, "", nats.ErrSecureConnWanted
		}
		return nil, "", err
	}
	if sn.info != "" {
		return tc, sn.info, nil
	}
	br := bufio.NewReader(tc)
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, "", fmt.Errorf("reading the satellite's INFO: %w", err)
	}
	if _, err := parseInfo(line); err != nil {
		return nil, "", err
	}
	return &bufferedConn{Conn: tc, r: br}, line, nil
}

// startTLS runs the client's side of TLS on conn.
func (d *handshakeDialer) startTLS(conn net.Conn, addr string) (*tls.Conn, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.tls != nil {
		cfg = d.tls.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("%w: %w", nats.ErrTLS, err)
	}
	st := tc.ConnectionState()
	d.mu.Lock()
	d.state = &st
	d.mu.Unlock()
	return tc, nil
}

// parseInfo reads a satellite's INFO line.
func parseInfo(line string) (serverInfo, error) {
	body, ok := strings.CutPrefix(line, "INFO ")
	var info serverInfo
	if !ok || json.Unmarshal([]byte(strings.TrimSpace(body)), &info) != nil {
		return info, fmt.Errorf("not a NATS server: it began with %q", truncate(line, 40))
	}
	return info, nil
}

// infoSniffer is the connection under a client's TLS started before the
// satellite's INFO: it takes a plaintext INFO line that comes first out of
// the stream (TLS records never begin with 'I'), and keeps it. A
// satellite whose INFO offers no TLS at all gets no further: plain is
// set, and the handshake fails.
type infoSniffer struct {
	net.Conn
	sniffed bool
	rest    []byte
	info    string
	plain   bool
}

// maxInfo bounds a satellite's INFO line (nats.go's own limit on a
// protocol line is larger; an INFO is a few hundred bytes).
const maxInfo = 64 << 10

var errPlainSatellite = errors.New("the satellite offers no TLS")

func (s *infoSniffer) Read(p []byte) (int, error) {
	if !s.sniffed {
		var buf []byte
		chunk := make([]byte, 4096)
		for {
			n, err := s.Conn.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if len(buf) > 0 && buf[0] != 'I' {
				break // TLS first: the INFO comes inside
			}
			if i := bytes.Index(buf, []byte("\r\n")); i >= 0 {
				s.info, buf = string(buf[:i+2]), buf[i+2:]
				info, perr := parseInfo(s.info)
				if perr != nil {
					return 0, perr
				}
				if !info.TLSRequired && !info.TLSAvailable {
					s.plain = true
					return 0, errPlainSatellite
				}
				break
			}
			if err != nil {
				return 0, err
			}
			if len(buf) > maxInfo {
				return 0, fmt.Errorf("not a NATS server: no INFO line in its first %d bytes", len(buf))
			}
		}
		s.sniffed, s.rest = true, buf
	}
	if len(s.rest) > 0 {
		n := copy(p, s.rest)
		s.rest = s.rest[n:]
		return n, nil
	}
	return s.Conn.Read(p)
}

// tlsState is the TLS of the connection last made, if it has any.
func (d *handshakeDialer) tlsState() (tls.ConnectionState, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state == nil {
		return tls.ConnectionState{}, false
	}
	return *d.state, true
}

// refuse notes a refusal that came instead of the handshake's PONG: the
// next connection waits for the satellite's answer again.
func (d *handshakeDialer) refuse(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refused, d.accepted = strings.TrimSpace(line), false
}

// hsState is where a connection's handshake stands, as handshakeConn
// sees it.
type hsState uint8

const (
	hsConnect   hsState = iota // INFO handed over; nats.go's CONNECT and PING to come
	hsPongOwed                 // the PING went out: nats.go gets its PONG now
	hsAwaitPong                // the satellite's own PONG is still to come, and dropped
	hsOpen                     // everything passes through
)

// handshakeConn is the connection nats.go speaks on: the satellite's INFO
// (read by the dialer) first, then what the satellite sends, but for the
// PONG answered ahead of it.
type handshakeConn struct {
	net.Conn
	d *handshakeDialer
	r *bufio.Reader // over Conn; also holds what came behind a handshake line

	mu      sync.Mutex
	state   hsState
	pending []byte // read next, before anything of Conn's
	midLine bool   // the last bytes passed on ended inside a line
}

var (
	pingLine = []byte("PING\r\n")
	pongLine = []byte("PONG\r\n")
)

func (c *handshakeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil {
		c.mu.Lock()
		if c.state == hsConnect && bytes.HasSuffix(p, pingLine) {
			c.state = hsPongOwed
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			c.mu.Unlock()
			return n, nil
		}
		state := c.state
		if state == hsPongOwed {
			c.pending, c.state = pongLine, hsAwaitPong
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if state != hsAwaitPong {
			return c.r.Read(p)
		}
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil
		}
		if len(line) == 0 {
			return 0, err
		}
		whole := !c.midLine && line[len(line)-1] == '\n'
		c.midLine = line[len(line)-1] != '\n'
		c.mu.Lock()
		switch {
		case whole && bytes.Equal(line, pongLine):
			c.state = hsOpen // the handshake's own PONG: nats.go had one
		case whole && isAuthErr(line):
			c.d.refuse(string(line))
			c.pending = append(bytes.Clone(line), line...)
		default:
			c.pending = bytes.Clone(line)
		}
		c.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
}

// isAuthErr tells a satellite's refusal of the credentials (nats.go's
// checkAuthError reads the same words) from its other errors.
func isAuthErr(line []byte) bool {
	l := strings.ToLower(string(line))
	return strings.HasPrefix(l, "-err ") && (strings.Contains(l, "authorization") || strings.Contains(l, "authentication"))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// TLSState is the TLS of nc's connection to the satellite; false if it
// has none.
func TLSState(nc *nats.Conn) (tls.ConnectionState, bool) {
	if d, ok := nc.Opts.CustomDialer.(*handshakeDialer); ok {
		return d.tlsState()
	}
	st, err := nc.TLSConnectionState()
	return st, err == nil
}

// Refused tells whether the satellite refused the credentials of a
// connection whose handshake did not wait for its answer
// (Endpoint.Accepted): the errors of what was sent on it are then this.
func Refused(nc *nats.Conn) error {
	d, ok := nc.Opts.CustomDialer.(*handshakeDialer)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refused == "" {
		return nil
	}
	return fmt.Errorf("%w at %s (it said %s)", ErrAuth, Redact(d.url), d.refused)
}

// reportAsync is the connection's handler of asynchronous errors: nats.go's
// own (one line on stderr), but for a refusal that Refused reports, which
// the command says once, with its hint.
func reportAsync(nc *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrAuthorization) && Refused(nc) != nil {
		return
	}
	line := err.Error() + " on connection"
	if sub != nil {
		line += fmt.Sprintf(" for subscription on %q", sub.Subject)
	}
	fmt.Fprintln(os.Stderr, line)
}
