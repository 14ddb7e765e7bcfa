// Package embedded runs the satellite: a NATS server with JetStream, in this
// process. It knows servers, not pipes.
package embedded

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
}

// Server is a running satellite.
type Server struct {
	ns *server.Server
}

// readyTimeout bounds how long Start waits for the server to accept clients.
const readyTimeout = 10 * time.Second

// Start starts a satellite and returns once it accepts clients.
func Start(cfg Config) (*Server, error) {
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
	opts := &server.Options{
		ServerName:    "skypipe",
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      cfg.StoreDir,
		Authorization: cfg.Token,
		NoSigs:        true,
		NoLog:         !cfg.Log,
		MaxPayload:    server.MAX_PAYLOAD_SIZE,
		TLSConfig:     cfg.TLS,
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
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: JetStream is off", ErrNotReady)
	}
	return &Server{ns: ns}, nil
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

// URL is the satellite's client URL, without credentials.
func (s *Server) URL() string { return s.ns.ClientURL() }

// Addr is the address the satellite listens on.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// Shutdown stops the satellite and waits until it has.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Wait blocks until the satellite stops.
func (s *Server) Wait() { s.ns.WaitForShutdown() }
