package provision

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/embedded/web"
)

// connectProxy is an HTTP CONNECT proxy on loopback that sends every tunnel
// to 127.0.0.1 at the port asked for, whatever the host, and records the
// targets and the Proxy-Authorization it got.
type connectProxy struct {
	l       net.Listener
	mu      sync.Mutex
	targets []string
	auth    []string
	refuse  bool
	wg      sync.WaitGroup
}

func newConnectProxy(t *testing.T) *connectProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{l: l}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.tunnel(c)
		}()
	}
}

func (p *connectProxy) tunnel(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auth = append(p.auth, req.Header.Get("Proxy-Authorization"))
	refuse := p.refuse
	p.mu.Unlock()
	if refuse {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	_, port, _ := net.SplitHostPort(req.Host)
	up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); close(done) }()
	io.Copy(c, up)
	<-done
}

func (p *connectProxy) seen() ([]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auth...)
}

func TestDialThroughAnHTTPSProxy(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	proxy := newConnectProxy(t)
	// A name this machine cannot resolve: only the proxy reaches it.
	ep := Endpoint{URL: "nats://sat.skypipe.test:" + port, Token: "tok"}

	t.Setenv("HTTPS_PROXY", "http://user:secret@"+proxy.l.Addr().String())
	t.Setenv("NO_PROXY", "")
	nc, err := Dial(ep)
	if err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if _, err := nc.RTT(); err != nil {
		t.Fatalf("a round trip through the tunnel: %v", err)
	}
	nc.Close()
	targets, auth := proxy.seen()
	if len(targets) != 1 || targets[0] != "sat.skypipe.test:"+port {
		t.Fatalf("tunnels to %q, want one to sat.skypipe.test:%s", targets, port)
	}
	if auth[0] != "Basic dXNlcjpzZWNyZXQ=" {
		t.Errorf("Proxy-Authorization %q", auth[0])
	}

	// A proxy that refuses says so, and the error hides its password.
	proxy.mu.Lock()
	proxy.refuse = true
	proxy.mu.Unlock()
	_, err = Dial(ep)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "403 Forbidden") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a refusing proxy: %v", err)
	}

	// NO_PROXY exempts a host; loopback never goes through a proxy.
	t.Setenv("NO_PROXY", "sat.skypipe.test")
	if p, _ := proxyFor("sat.skypipe.test:4222"); p != nil {
		t.Errorf("NO_PROXY ignored: %v", p)
	}
	if p, _ := proxyFor("127.0.0.1:4222"); p != nil {
		t.Errorf("loopback proxied: %v", p)
	}
	t.Setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
	t.Setenv("NO_PROXY", "")
	if _, err := Dial(ep); err == nil || !strings.Contains(err.Error(), "HTTP CONNECT") {
		t.Errorf("a SOCKS proxy: %v", err)
	}
}

func TestDialFallsBackToTheOtherTransport(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok", Websocket: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens there now
	nc, err := Dial(Endpoint{URL: "nats://" + deadAddr, Alt: "ws://" + srv.WebsocketAddr(), Token: "tok"})
	if err != nil {
		t.Fatalf("with the first transport down: %v", err)
	}
	if got := nc.ConnectedUrl(); !strings.HasPrefix(got, "ws://") {
		t.Errorf("connected to %s, want the WebSocket one", got)
	}
	nc.Close()
	_, err = Dial(Endpoint{URL: "nats://" + deadAddr, Alt: "ws://" + srv.WebsocketAddr(), Token: "wrong"})
	if !errors.Is(err, ErrAuth) {
		t.Errorf("a wrong token over the second transport: %v, want ErrAuth", err)
	}
	_, err = Dial(Endpoint{URL: "nats://" + deadAddr, Alt: "ws://" + deadAddr, Token: "tok"})
	if !errors.Is(err, ErrUnreachable) || strings.Count(err.Error(), deadAddr) != 2 {
		t.Errorf("both down: %v, want both named", err)
	}
}

func TestDialRefusesNarrowTokens(t *testing.T) {
	tok, err := web.Mint("satellite-token", web.Scope{Send: []string{"logs"}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Dial(Endpoint{URL: "nats://127.0.0.1:1", Token: tok}); !errors.Is(err, ErrNarrowToken) {
		t.Fatalf("Dial with a narrow token: %v, want ErrNarrowToken", err)
	}
}
