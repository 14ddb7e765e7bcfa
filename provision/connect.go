package provision

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/embedded/web"
)

// Endpoint is a satellite a client can reach.
type Endpoint struct {
	URL    string // nats://, tls://, wss:// (or ws:// on loopback), never with credentials
	Token  string
	Source string // where it came from: "local", "--url", "ssh", "join", "fly", "context NAME"
	PID    int    // the local satellite's process, if known

	// Alt is another way to the same satellite, tried when URL is
	// unreachable: NATS over WebSocket beside raw NATS, or the reverse.
	Alt string
	// WSPublicCA: the satellite's wss:// URLs present a certificate from
	// a public CA (a TLS proxy in front of it: Fly.io's), checked against
	// the system's CAs rather than the pinned one.
	WSPublicCA bool
	// Web is the satellite's HTTP face (https://HOST:PORT), if it has one.
	Web string

	// CAPEM, if set, is the only CA the client trusts for the satellite's
	// certificate (pinned), and the connection must be TLS.
	CAPEM []byte
	// User and Pass authenticate as a user, where the server has users.
	User, Pass string
	// Creds is a NATS credentials file (JWT and NKey seed).
	Creds string
	// NKeySeed is a file holding an NKey user seed.
	NKeySeed string
	// CertFile and KeyFile are a client certificate, for servers that
	// verify clients.
	CertFile, KeyFile string
	// Reconnect is how long a lost connection is tried again before it
	// is closed (0: it is not: the connection fails at once).
	Reconnect time.Duration
	// JSDomain is the JetStream domain to use ("" for the server's own
	// JetStream), as a leaf node of a hub with JetStream in a domain needs.
	JSDomain string
	// Accepted: the satellite took these credentials before (see
	// Paths.Accepted), so the handshake of a raw NATS connection does not
	// wait for it to say so again (handshakeDialer): a round trip less.
	// A refusal then comes after Dial returned: see Refused.
	Accepted bool
}

// Pinned tells whether the endpoint trusts one CA of its own.
func (ep Endpoint) Pinned() bool { return len(ep.CAPEM) > 0 }

// The bounds on a connection attempt. dialTimeout is for one try of the
// TCP (or proxy) connection, and dialTries is how many are made before an
// address where nothing answers is reported unreachable (after 6 s). A
// try that found no answer in its time is not proof of that: a connection
// request (SYN) lost is sent again by the kernel after 1 s and 3 s, and a
// process that did not run for 3 s (300 waiters started at once on a busy
// machine) finds its try timed out although the satellite took the
// connection; one of 300 waiters on a loaded CI machine said "satellite
// unreachable" at a local satellite that way. A second try starts at once.
// handshakeTimeout is for what follows, from the satellite's INFO to the
// PONG of the first PING (and TLS and WebSocket on the way): a satellite
// that took the connection is there, and one on a busy machine or at the
// end of a slow link may take more than a dial's time to answer (a loaded
// CI machine saw a local satellite answer after 3 s; with one bound, that
// was "satellite unreachable").
const (
	dialTimeout = 3 * time.Second
	dialTries   = 2
	// closedTries is how many handshakes are made where the satellite
	// closed the connection while the client wrote (see dialURL).
	closedTries      = 4
	handshakeTimeout = 15 * time.Second
)

// Dial connects to an endpoint: its URL, else its Alt if URL is
// unreachable. A connection that is lost is tried again, the same way, for
// up to ep.Reconnect, then closed; with 0 it fails at once. (The pipes on
// it resume across the loss; see pipes.Config.Reconnect.)
func Dial(ep Endpoint) (*nats.Conn, error) {
	if web.IsNarrow(ep.Token) {
		return nil, ErrNarrowToken
	}
	nc, err := dialURL(ep, ep.URL)
	if err != nil && ep.Alt != "" && errors.Is(err, ErrUnreachable) {
		nc, altErr := dialURL(ep, ep.Alt)
		if altErr == nil {
			return nc, nil
		}
		if !errors.Is(altErr, ErrUnreachable) {
			return nil, altErr
		}
		return nil, fmt.Errorf("%w; %v", err, strings.TrimPrefix(altErr.Error(), ErrUnreachable.Error()+" "))
	}
	return nc, err
}

// splitURLs is the servers a URL names: one, or several separated by
// commas (a cluster's members, as nats.go and natscli write them).
func splitURLs(raw string) []string {
	var urls []string
	for _, part := range strings.Split(raw, ",") {
		if part = strings.TrimSpace(part); part != "" {
			urls = append(urls, part)
		}
	}
	return urls
}

// isWebSocket tells a NATS-over-WebSocket URL from a raw NATS one.
func isWebSocket(u *url.URL) bool { return u.Scheme == "ws" || u.Scheme == "wss" }

// memberURLs checks the servers a URL names (splitURLs): at least one,
// each a URL with a host, and all raw NATS or all NATS over WebSocket
// (nats.go dials one transport per connection). It returns the first.
func memberURLs(parts []string) (*url.URL, error) {
	if len(parts) == 0 {
		return nil, errors.New("no URL")
	}
	var first *url.URL
	for _, part := range parts {
		u, err := url.Parse(part)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%q is not a URL", Redact(part))
		}
		if first == nil {
			first = u
		} else if isWebSocket(u) != isWebSocket(first) {
			return nil, fmt.Errorf("%q mixes NATS over WebSocket (ws://, wss://) with raw NATS (nats://, tls://)", Redact(strings.Join(parts, ",")))
		}
	}
	return first, nil
}

// dialURL connects to the server raw names or, where it names several
// (a cluster's members), to the first of them that answers, in the order
// given; a connection that is lost tries them all again in that order. The
// order is the user's preference (the nearest member first), so it is not
// shuffled. Servers the cluster tells of but raw does not name are not
// used: they may be addresses only the cluster can reach.
func dialURL(ep Endpoint, raw string) (*nats.Conn, error) {
	parts := splitURLs(raw)
	u, err := memberURLs(parts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	raw = strings.Join(parts, ",")
	opts := []nats.Option{
		nats.Name("skypipe"),
		nats.Timeout(handshakeTimeout),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.IgnoreDiscoveredServers(),
		nats.DontRandomize(),
		nats.ErrorHandler(reportAsync),
	}
	opts = append(opts, reconnectOptions(ep.Reconnect)...)
	if ep.Token != "" {
		opts = append(opts, nats.Token(ep.Token))
	}
	if ep.User != "" {
		opts = append(opts, nats.UserInfo(ep.User, ep.Pass))
	}
	if ep.Creds != "" {
		opts = append(opts, nats.UserCredentials(ep.Creds))
	}
	if ep.NKeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(ep.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("the nkey seed %s: %w", ep.NKeySeed, err)
		}
		opts = append(opts, opt)
	}
	publicCA := u.Scheme == "wss" && ep.WSPublicCA
	var tlsCfg *tls.Config
	if u.Scheme != "ws" && (ep.Pinned() || ep.CertFile != "" || u.Scheme == "wss") {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ep.Pinned() && !publicCA {
			var err error
			if cfg, err = clientTLS(ep.CAPEM); err != nil {
				return nil, err
			}
		}
		if ep.CertFile != "" {
			pair, err := tls.LoadX509KeyPair(ep.CertFile, ep.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("the client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, nats.Secure(cfg))
		tlsCfg = cfg
	}
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), defaultPort(u.Scheme))
	}
	proxy, err := proxyFor(hostport)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, Redact(raw), err)
	}
	via := ""
	if proxy != nil {
		via = " through the proxy " + redactProxy(proxy)
	}
	// The dialer, not nats.go, resolves the name: dialTimeout then bounds
	// each try of the whole dial (dialTCP), a host with IPv6 and IPv4
	// addresses gets Happy Eyeballs (nats.go would try each address for
	// the whole bound, in random order), and a proxy, where HTTPS_PROXY
	// names one for the address, resolves it instead (this machine may not
	// be able to).
	var dialer nats.CustomDialer = proxyDialer{timeout: dialTimeout}
	if !isWebSocket(u) {
		// Raw NATS: the dialer does the handshake up to CONNECT, in
		// fewer round trips (nats.go does WebSocket's itself).
		dialer = &handshakeDialer{next: proxyDialer{timeout: dialTimeout}, url: raw,
			tls: tlsCfg, secure: tlsCfg != nil || u.Scheme == "tls", accepted: ep.Accepted}
	}
	opts = append(opts, nats.SetCustomDialer(dialer), nats.SkipHostLookup())
	nc, err := nats.Connect(raw, opts...)
	for try := 2; try <= closedTries && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)); try++ {
		// A satellite that refuses the credentials says so and closes; a
		// client still writing its handshake then sees the close, not the
		// refusal. Again, to hear what it says: over WebSocket, two tries
		// both met the close in 3 of 300 runs of
		// TestDialFallsBackToTheOtherTransport.
		nc, err = nats.Connect(raw, opts...)
	}
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("%w at %s", ErrAuth, Redact(raw))
		}
		if isCertError(err) {
			return nil, fmt.Errorf("%w at %s: %v", ErrCertificate, Redact(raw), certReason(err))
		}
		return nil, fmt.Errorf("%w at %s%s: %v", ErrUnreachable, Redact(raw), via, err)
	}
	return nc, nil
}

// defaultPort is the port of a URL that names none.
func defaultPort(scheme string) string {
	switch scheme {
	case "wss":
		return "443"
	case "ws":
		return "80"
	}
	return "4222"
}

// FromURL is the endpoint a user names with --url or SKYPIPE_URL: one
// URL, or several separated by commas, the members of a cluster (tried in
// that order). A token may ride in a URL's user part
// (nats://TOKEN@host:port); URLs that carry one must carry the same.
func FromURL(raw string) (Endpoint, error) {
	parts := splitURLs(raw)
	if len(parts) == 0 {
		return Endpoint{}, fmt.Errorf("%q is not a URL like nats://host:4222 or wss://host", Redact(raw))
	}
	ep := Endpoint{Source: "--url"}
	var clean []string
	for _, part := range parts {
		u, token, err := parseURL(part)
		if err != nil {
			return Endpoint{}, err
		}
		if token != "" {
			if ep.Token != "" && ep.Token != token {
				return Endpoint{}, fmt.Errorf("%q: the URLs carry different tokens", Redact(raw))
			}
			ep.Token = token
		}
		clean = append(clean, u.String())
	}
	if _, err := memberURLs(clean); err != nil {
		return Endpoint{}, err
	}
	ep.URL = strings.Join(clean, ",")
	return ep, nil
}

// parseURL checks one URL of a user's and takes a token out of it.
func parseURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("%q is not a URL like nats://host:4222 or wss://host", Redact(raw))
	}
	switch u.Scheme {
	case "nats", "tls", "wss":
	case "ws":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, "", fmt.Errorf("%q: ws:// would send the token in clear off loopback; use wss://", Redact(raw))
		}
	default:
		return nil, "", fmt.Errorf("%q: the scheme must be nats://, tls://, wss:// (or ws:// on loopback)", Redact(raw))
	}
	token := ""
	if _, hasPassword := u.User.Password(); u.User != nil && !hasPassword {
		// A lone user part is a token; user:password stays for nats.go.
		token = u.User.Username()
		u.User = nil
	}
	return u, token, nil
}

// Redact removes credentials from a URL, or from each of a list of them,
// for display.
func Redact(raw string) string {
	if strings.Contains(raw, ",") {
		parts := strings.Split(raw, ",")
		for i, part := range parts {
			parts[i] = Redact(strings.TrimSpace(part))
		}
		return strings.Join(parts, ",")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(raw, "@") {
			return "REDACTED" // unparsable, with a user part: show nothing of it
		}
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// Tries at reconnecting: every reconnectWait, give or take reconnectJitter.
// A satellite restarted on the same address is back within a second or
// two; trying more often only costs a refused dial each time.
const (
	reconnectWait   = 250 * time.Millisecond
	reconnectJitter = 250 * time.Millisecond
	// reconnectBuf is what may be published while the connection is
	// being re-established: a live sender's window (8 MiB) and a kept
	// sender's frames in flight (64 of 256 KiB) fit.
	reconnectBuf = 32 << 20
)

// reconnectOptions makes a connection try again, for up to bound, when it
// is lost; then it is closed. With bound 0 it is not tried again.
func reconnectOptions(bound time.Duration) []nats.Option {
	if bound <= 0 {
		return []nats.Option{nats.NoReconnect()}
	}
	g := &reconnectGuard{bound: bound}
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitter),
		nats.ReconnectBufSize(reconnectBuf),
		nats.DisconnectErrHandler(g.disconnected),
		nats.ReconnectHandler(g.reconnected),
	}
}

// reconnectGuard closes a connection that has been trying to reconnect
// for longer than its bound. nats.go counts tries, not time: a try that
// dials an address where nothing answers lasts the dial's timeout, one
// that is refused a moment.
type reconnectGuard struct {
	bound time.Duration
	mu    sync.Mutex
	timer *time.Timer
}

func (g *reconnectGuard) disconnected(nc *nats.Conn, _ error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
	}
	g.timer = time.AfterFunc(g.bound, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !nc.IsConnected() {
			nc.Close()
		}
	})
}

func (g *reconnectGuard) reconnected(*nats.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}
