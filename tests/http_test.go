package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// httpCommands are the commands scripts of the HTTP face use:
//
//	httpauth FILE            write "Authorization: Bearer TOKEN" for the
//	                         script's satellite token to FILE (0600), for
//	                         curl -H @FILE: no token on a command line
//	envfile VAR FILE         set VAR to FILE's content, trimmed
//	connectproxy VAR         run an HTTP CONNECT proxy on loopback until the
//	                         script ends and set VAR to its URL; every tunnel
//	                         goes to 127.0.0.1 at the port asked for, whatever
//	                         the host name, so names that resolve nowhere
//	                         (sat.skypipe.test) reach loopback through it only
//	tunnels HOST:PORT N      the proxy opened at least N tunnels to HOST:PORT
var httpCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"httpauth":     cmdHTTPAuth,
	"envfile":      cmdEnvFile,
	"connectproxy": cmdConnectProxy,
	"tunnels":      cmdTunnels,
}

func cmdHTTPAuth(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: httpauth FILE")
	}
	token, _ := satToken(ts)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte("Authorization: Bearer "+token+"\n"), 0o600))
}

func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	b, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	ts.Setenv(args[0], strings.TrimSpace(string(b)))
}

// proxies are the scripts' CONNECT proxies, by script.
var proxies sync.Map // *testscript.TestScript -> *tunnelProxy

type tunnelProxy struct {
	l       net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	targets map[string]int
}

func cmdConnectProxy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: connectproxy VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	p := &tunnelProxy{l: l, targets: map[string]int{}}
	proxies.Store(ts, p)
	p.wg.Add(1)
	go p.serve()
	ts.Defer(func() {
		l.Close()
		p.wg.Wait()
		proxies.Delete(ts)
	})
	ts.Setenv(args[0], "http://"+l.Addr().String())
}

func (p *tunnelProxy) serve() {
	defer p.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			p.tunnel(c)
		}()
	}
}

// tunnel serves one CONNECT. Tunnels end when either side closes, and the
// script's satellites and clients all end with the script.
func (p *tunnelProxy) tunnel(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	_, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	p.mu.Lock()
	p.targets[req.Host]++
	p.mu.Unlock()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		io.Copy(up, br)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

func cmdTunnels(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tunnels HOST:PORT N")
	}
	v, ok := proxies.Load(ts)
	if !ok {
		ts.Fatalf("no connectproxy in this script")
	}
	p := v.(*tunnelProxy)
	want := int(intArg(ts, args[1]))
	p.mu.Lock()
	got := p.targets[args[0]]
	all := fmt.Sprint(p.targets)
	p.mu.Unlock()
	if got < want {
		ts.Fatalf("%d tunnel(s) to %s, want at least %d (tunnels: %s)", got, args[0], want, all)
	}
}
