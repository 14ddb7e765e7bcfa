package provision

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// proxyFor is the HTTPS proxy a connection to hostport goes through, as
// HTTPS_PROXY (or https_proxy) and NO_PROXY say, or nil. Loopback addresses
// never go through one. Both transports use it: a raw NATS connection and
// NATS over WebSocket are tunnelled alike, with HTTP CONNECT.
func proxyFor(hostport string) (*url.URL, error) {
	p, err := httpproxy.FromEnvironment().ProxyFunc()(&url.URL{Scheme: "https", Host: hostport})
	if err != nil {
		return nil, fmt.Errorf("HTTPS_PROXY: %w", err)
	}
	if p != nil && p.Scheme != "http" && p.Scheme != "https" {
		return nil, fmt.Errorf("HTTPS_PROXY %s: skypipe tunnels through http:// and https:// proxies (HTTP CONNECT) only", redactProxy(p))
	}
	return p, nil
}

// proxyDialer dials an address directly, or through the HTTP proxy
// HTTPS_PROXY names for it (each member of a cluster may differ).
type proxyDialer struct {
	timeout time.Duration
}

func (d proxyDialer) Dial(network, addr string) (net.Conn, error) {
	proxy, err := proxyFor(addr)
	if err != nil {
		return nil, err
	}
	if proxy != nil {
		return connectDialer{proxy: proxy, timeout: d.timeout}.Dial(network, addr)
	}
	return dialTCP(network, addr, d.timeout)
}

// dialTCP connects to addr: up to dialTries tries, each within timeout,
// the next one only where the last found no answer in its time (a refusal
// is an answer, reported at once).
func dialTCP(network, addr string, timeout time.Duration) (net.Conn, error) {
	var err error
	for range dialTries {
		var c net.Conn
		if c, err = (&net.Dialer{Timeout: timeout}).Dial(network, addr); err == nil {
			return c, nil
		}
		if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w (no answer to %d tries of %v)", err, dialTries, timeout)
}

// connectDialer reaches addresses through an HTTP proxy's CONNECT tunnel.
// nats.go dials through it (a CustomDialer), then speaks TLS and NATS, or
// TLS and WebSocket, inside the tunnel: the proxy sees only the host and
// port.
type connectDialer struct {
	proxy   *url.URL
	timeout time.Duration
}

func (d connectDialer) Dial(network, addr string) (net.Conn, error) {
	proxyAddr := d.proxy.Host
	if d.proxy.Port() == "" {
		port := "80"
		if d.proxy.Scheme == "https" {
			port = "443"
		}
		proxyAddr = net.JoinHostPort(d.proxy.Hostname(), port)
	}
	c, err := dialTCP(network, proxyAddr, d.timeout)
	if err != nil {
		return nil, fmt.Errorf("the proxy %s: %w", redactProxy(d.proxy), err)
	}
	// The proxy's TLS and its answer to CONNECT get a try's time.
	deadline := time.Now().Add(d.timeout)
	if d.proxy.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: d.proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.SetDeadline(deadline); err == nil {
			err = tc.Handshake()
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("the proxy %s: %w", redactProxy(d.proxy), err)
		}
		c = tc
	}
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: http.Header{},
	}
	if u := d.proxy.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("the proxy %s: %w", redactProxy(d.proxy), err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("the proxy %s: %w", redactProxy(d.proxy), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("the proxy %s refused a tunnel to %s: %s", redactProxy(d.proxy), addr, resp.Status)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, err
	}
	if br.Buffered() > 0 {
		// The satellite spoke first (NATS's INFO): those bytes are in br.
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// bufferedConn reads what a bufio.Reader holds before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func redactProxy(u *url.URL) string {
	v := *u
	if v.User != nil {
		v.User = url.User("REDACTED")
	}
	return v.String()
}
