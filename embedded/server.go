// Package embedded runs the satellite: a NATS server with JetStream, in this
// process. It knows servers, not pipes.
package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Errors callers tell apart.
var (
	// ErrNotReady: the server did not come up in time.
	ErrNotReady = errors.New("satellite did not become ready")
	// ErrAddrInUse: something else listens on the address.
	ErrAddrInUse = errors.New("address already in use")
)

// Config says how to run a satellite.
type Config struct {
	// Listen is host:port; port 0 picks a free one.
	Listen string
	// StoreDir holds the JetStream file store.
	StoreDir string
	// Token, if set, is required from every client.
	Token string
	// TLS, if set, makes every client connection TLS with this
	// configuration (its Certificates are the server's).
	TLS *tls.Config
	// Log sends the server's log to stderr.
	Log bool
	// MaxStore caps the bytes the JetStream file store may hold; past it,
	// publishes to streams fail with "insufficient resources". Zero lets
	// the server pick (three quarters of the free disk).
	MaxStore int64
	// Name is the server's name, unique in a cluster ("skypipe" if empty).
	Name string
	// Cluster, if its Listen is set, joins the satellite to a JetStream
	// cluster.
	Cluster Cluster
	// Websocket, if set, also serves NATS over WebSocket on this loopback
	// address (port 0 picks one), without TLS and with the same token: the
	// HTTP face (embedded/web) is its front door, which brings TLS and
	// shares one public port with the HTTP API.
	Websocket string
	// Private starts the satellite without any listener: only clients in
	// this process reach it (Connect), e.g. to work on its store before
	// anyone else may. Listen, TLS, Cluster and Websocket are ignored.
	Private bool
}

// Cluster says how a satellite joins a cluster of satellites.
type Cluster struct {
	// Name of the cluster; every member uses the same.
	Name string
	// Listen is host:port for routes from the other members.
	Listen string
	// Routes are the other members' route addresses (host:port); listing
	// every member, this one included, is fine.
	Routes []string
}

// Server is a running satellite.
type Server struct {
	ns   *server.Server
	opts *server.Options // the server's own: it writes the ports it picked there
}

// handshakeLimit is how long the satellite gives a client that connected
// to finish its handshake (TLS, then CONNECT with the token): as long as a
// client waits for the satellite (provision's handshakeTimeout). A client
// on a slow link, or a thousand starting at once on a loaded machine, is
// let in late rather than turned away ("Authentication Timeout" after
// nats-server's default of 2 s, 3 s with TLS).
const handshakeLimit = 15 * time.Second

// readyTimeout bounds how long Start waits for the server to accept clients.
const readyTimeout = 10 * time.Second

// Start starts a satellite and returns once it accepts clients.
func Start(cfg Config) (*Server, error) {
	if cfg.Private {
		cfg.Listen, cfg.TLS, cfg.Cluster, cfg.Websocket = "127.0.0.1:0", nil, Cluster{}, ""
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if err := checkFree(cfg.Listen); err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = "skypipe"
	}
	opts := &server.Options{
		ServerName:        name,
		Host:              host,
		Port:              port,
		JetStream:         true,
		StoreDir:          cfg.StoreDir,
		Authorization:     cfg.Token,
		NoSigs:            true,
		NoLog:             !cfg.Log,
		MaxPayload:        server.MAX_PAYLOAD_SIZE,
		JetStreamMaxStore: cfg.MaxStore,
		TLSConfig:         cfg.TLS,
		TLSTimeout:        handshakeLimit.Seconds(),
		AuthTimeout:       handshakeLimit.Seconds(),
		DontListen:        cfg.Private,
	}
	if cfg.Cluster.Listen != "" {
		if err := clusterOptions(opts, cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Websocket != "" {
		if err := websocketOptions(opts, cfg.Websocket); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring satellite: %w", err)
	}
	if cfg.Log {
		ns.ConfigureLogger()
	}
	go ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w (listen %s)", ErrNotReady, cfg.Listen)
	}
	if cfg.Cluster.Listen == "" && !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: JetStream is off", ErrNotReady)
	}
	return &Server{ns: ns, opts: opts}, nil
}

// StoresStreams tells whether a JetStream store directory, as StoreDir,
// holds a stream whose name begins with prefix, in any account, without
// starting a server.
func StoresStreams(storeDir, prefix string) (bool, error) {
	matches, err := filepath.Glob(filepath.Join(storeDir, server.JetStreamStoreDir, "*", "streams", prefix+"*"))
	if err != nil {
		return false, err
	}
	return len(matches) > 0, nil
}

// checkFree tells ErrAddrInUse apart before the server starts: nats-server
// itself only logs that it cannot listen, and never becomes ready.
func checkFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w: %s", ErrAddrInUse, addr)
		}
		return fmt.Errorf("listen address %s: %w", addr, err)
	}
	return l.Close()
}

// websocketOptions sets nats-server's own WebSocket listener, on loopback
// only: it speaks plain WebSocket, and TLS is the front door's.
func websocketOptions(opts *server.Options, addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("websocket address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("websocket address %q: the plain WebSocket listener stays on a loopback address", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("websocket address %q: bad port", addr)
	}
	if port == 0 {
		port = -1 // nats-server's "any free port"
	}
	opts.Websocket.Host = host
	opts.Websocket.Port = port
	opts.Websocket.NoTLS = true
	opts.Websocket.HandshakeTimeout = 10 * time.Second
	return nil
}

// URL is the satellite's client URL, without credentials.
func (s *Server) URL() string { return s.ns.ClientURL() }

// Addr is the address the satellite listens on.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// WebsocketAddr is the loopback host:port of the plain WebSocket listener
// (Config.Websocket), or "" if there is none.
func (s *Server) WebsocketAddr() string {
	ws := s.opts.Websocket
	if ws.Port <= 0 {
		return ""
	}
	return net.JoinHostPort(ws.Host, strconv.Itoa(ws.Port))
}

// Connect opens a client connection to the satellite inside this process
// (no socket), presenting token. Like every skypipe client it does not
// reconnect: a pipe must not go on after a gap.
func (s *Server) Connect(name, token string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.InProcessServer(s.ns),
		nats.Name(name),
		nats.NoReconnect(),
		nats.IgnoreDiscoveredServers(),
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	// No socket is dialled; a nats:// URL keeps the client from asking for
	// TLS, which a connection inside the process does not need.
	return nats.Connect("nats://127.0.0.1", opts...)
}

// NATS returns the NATS server itself, for statistics (Connz, Varz) read
// in the process that embeds it.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the satellite and waits until it has.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Wait blocks until the satellite stops.
func (s *Server) Wait() { s.ns.WaitForShutdown() }

// clusterOptions sets the route listener and the routes to the other
// members. Routes authenticate with the satellite's token, so only members
// that hold it join.
func clusterOptions(opts *server.Options, cfg Config) error {
	host, portStr, err := net.SplitHostPort(cfg.Cluster.Listen)
	if err != nil {
		return fmt.Errorf("cluster address %q: %w", cfg.Cluster.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("cluster address %q: give a fixed port, the other members route to it", cfg.Cluster.Listen)
	}
	if cfg.Cluster.Name == "" {
		return errors.New("a cluster needs a name")
	}
	if cfg.Name == "" {
		return errors.New("a cluster member needs a name of its own")
	}
	opts.Cluster.Name = cfg.Cluster.Name
	opts.Cluster.Host = host
	opts.Cluster.Port = port
	opts.Cluster.NoAdvertise = false
	user := url.UserPassword("skypipe", cfg.Token)
	if cfg.Token == "" {
		user = nil
	} else {
		opts.Cluster.Username = "skypipe"
		opts.Cluster.Password = cfg.Token
	}
	for _, r := range cfg.Cluster.Routes {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return fmt.Errorf("route %q: %w", r, err)
		}
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r, User: user})
	}
	return nil
}
