package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/embedded/web"
)

// defaultHTTPPort is where --http auto puts the HTTP face: the usual
// alternative HTTPS port, which a user may bind without privileges.
const defaultHTTPPort = "8443"

// httpAddr resolves --http: "" for no HTTP face. Off loopback the face needs
// a token, and TLS unless a proxy in front brings it (--http-proxied).
func (c *ServeCmd) httpAddr(listen string, token, tls bool) (string, error) {
	listenHost, listenPort, _ := net.SplitHostPort(listen)
	switch c.HTTP {
	case "off", "":
		return "", nil
	case "auto":
		if isLoopback(listenHost) || !tls {
			return "", nil
		}
		if listenPort == "0" {
			return net.JoinHostPort(listenHost, "0"), nil
		}
		return net.JoinHostPort(listenHost, defaultHTTPPort), nil
	}
	host, _, err := net.SplitHostPort(c.HTTP)
	if err != nil {
		return "", &usageError{msg: fmt.Sprintf("--http %q: %v", c.HTTP, err), hint: "give HOST:PORT, e.g. 0.0.0.0:8443, or off"}
	}
	if isLoopback(host) {
		return c.HTTP, nil
	}
	switch {
	case !token:
		return "", &usageError{msg: fmt.Sprintf("refusing to serve HTTP on %s without a token", c.HTTP), hint: "set --token-file (mode 0600), or serve HTTP on 127.0.0.1"}
	case !tls && !c.HTTPProxied:
		return "", &usageError{msg: fmt.Sprintf("refusing to serve HTTP on %s without TLS: tokens would cross the network in clear", c.HTTP), hint: "set --tls-cert and --tls-key; behind a TLS proxy (Fly.io's) add --http-proxied"}
	}
	return c.HTTP, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// startHTTP serves the HTTP face, if addr is set: TLS with the satellite's
// certificate unless a proxy in front brings it.
func (c *ServeCmd) startHTTP(srv *embedded.Server, addr, token string, tlsConfig *tls.Config) (*web.Server, error) {
	if addr == "" {
		return nil, nil
	}
	logf := func(string) {}
	if c.Log {
		logf = func(line string) { printf("http: %s", line) }
	}
	face, err := web.New(web.Config{
		Token:     token,
		Connect:   func() (*nats.Conn, error) { return srv.Connect("skypipe-http", token) },
		Websocket: srv.WebsocketAddr(),
		Log:       logf,
	})
	if err != nil {
		return nil, err
	}
	if c.HTTPProxied {
		tlsConfig = nil
	}
	s, err := web.Listen(addr, tlsConfig, face)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: %v", embedded.ErrAddrInUse, err)
	}
	return s, err
}
