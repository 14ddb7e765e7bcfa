package provision

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// holder is a TCP proxy in front of a satellite that holds back what the
// satellite sends until the client has sent something first. pongHolder:
// everything after the satellite's INFO, until the client published
// something (a client whose handshake waits for the satellite's PONG
// never gets there). infoHolder: everything, the INFO too, until the
// client sent any byte (a client that waits for the INFO before it
// starts TLS never gets there).
type holder struct {
	ln       net.Listener
	upstream string
	until    []byte // what the client sends that releases the satellite's bytes
	info     bool   // the satellite's INFO goes through before that
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newPongHolder(t *testing.T, upstream string) *holder {
	return newHolder(t, upstream, []byte("\r\nPUB "), true)
}

func newInfoHolder(t *testing.T, upstream string) *holder {
	return newHolder(t, upstream, nil, false)
}

func newHolder(t *testing.T, upstream string, until []byte, info bool) *holder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &holder{ln: ln, upstream: upstream, until: until, info: info, stop: make(chan struct{})}
	h.wg.Go(h.serve)
	t.Cleanup(h.close)
	return h
}

func (h *holder) close() {
	close(h.stop)
	h.ln.Close()
	h.mu.Lock()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func (h *holder) track(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns = append(h.conns, c)
}

func (h *holder) serve() {
	for {
		client, err := h.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", h.upstream)
		if err != nil {
			client.Close()
			continue
		}
		h.track(client)
		h.track(server)
		published := make(chan struct{})
		h.wg.Go(func() { // client to satellite, watching for the first PUB
			var seen []byte
			watching := true
			buf := make([]byte, 32<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if watching {
						seen = append(seen, buf[:n]...)
						if len(seen) > 0 && bytes.Contains(seen, h.until) {
							close(published)
							watching = false
						}
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					server.Close()
					return
				}
			}
		})
		h.wg.Go(func() { // satellite to client: its INFO, then nothing until the PUB
			r := io.Reader(server)
			info := make([]byte, 0, 4096)
			one := make([]byte, 1)
			for h.info && !bytes.HasSuffix(info, []byte("\r\n")) {
				if _, err := r.Read(one); err != nil {
					client.Close()
					return
				}
				info = append(info, one[0])
			}
			if _, err := client.Write(info); err != nil {
				return
			}
			select {
			case <-published:
			case <-h.stop: // the test is over
				return
			}
			_, _ = io.Copy(client, server)
			client.Close()
		})
	}
}

// TestAcceptedHandshakeSendsBeforeThePong: with credentials the satellite
// took before, Dial returns before the satellite's PONG, and what the
// client publishes first goes out behind the CONNECT: the satellite's
// answers are held back until it has, and the message still arrives, the
// held PONG is not taken for the answer of a later flush, and a round
// trip measured after it is one.
func TestAcceptedHandshakeSendsBeforeThePong(t *testing.T) {
	srv, _ := tokenSatellite(t, false)
	watcher, err := Dial(Endpoint{URL: srv.URL(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	got, err := watcher.SubscribeSync("first")
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}

	holder := newPongHolder(t, srv.Addr().String())
	nc, err := Dial(Endpoint{URL: "nats://" + holder.ln.Addr().String(), Token: "tok", Accepted: true})
	if err != nil {
		t.Fatalf("Dial with the PONG held back: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("first", []byte("behind the CONNECT")); err != nil {
		t.Fatal(err)
	}
	m, err := got.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("the first message: %v", err)
	}
	if string(m.Data) != "behind the CONNECT" {
		t.Fatalf("got %q", m.Data)
	}
	for i := range 3 {
		if err := nc.FlushTimeout(10 * time.Second); err != nil {
			t.Fatalf("flush %d after the handshake: %v", i, err)
		}
	}
	if _, err := nc.RTT(); err != nil {
		t.Fatal(err)
	}
	if err := Refused(nc); err != nil {
		t.Fatalf("Refused = %v for a connection the satellite took", err)
	}
}

// TestAcceptedHandshakeOverTLS: the dialer's own TLS, with the fast
// handshake and without it, carries a pinned connection that works and
// says it is TLS.
func TestAcceptedHandshakeOverTLS(t *testing.T) {
	srv, ca := tokenSatellite(t, true)
	for _, accepted := range []bool{false, true} {
		nc, err := Dial(Endpoint{URL: srv.URL(), Token: "tok", CAPEM: ca.CertPEM, Accepted: accepted})
		if err != nil {
			t.Fatalf("accepted=%v: %v", accepted, err)
		}
		st, secure := TLSState(nc)
		if !secure || !st.HandshakeComplete {
			t.Errorf("accepted=%v: TLSState says no TLS", accepted)
		}
		if !strings.HasPrefix(nc.ConnectedUrl(), "tls://") {
			t.Errorf("accepted=%v: connected to %s", accepted, nc.ConnectedUrl())
		}
		sub, err := nc.SubscribeSync("echo")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("echo", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			t.Fatalf("accepted=%v: %v", accepted, err)
		}
		if _, err := nc.RTT(); err != nil {
			t.Fatal(err)
		}
		nc.Close()
	}
}

// TestAcceptedHandshakeRefusedLate: credentials taken before and refused
// now are heard after Dial returned: the connection closes at once,
// without trying again for its reconnect bound, and Refused says why.
// Without Accepted, Dial itself says so, as before.
func TestAcceptedHandshakeRefusedLate(t *testing.T) {
	srv, _ := tokenSatellite(t, false)
	ep := Endpoint{URL: srv.URL(), Token: "rotated", Reconnect: time.Minute}
	if _, err := Dial(ep); !errors.Is(err, ErrAuth) {
		t.Fatalf("careful Dial: err = %v, want ErrAuth", err)
	}
	ep.Accepted = true
	nc, err := Dial(ep)
	if err != nil {
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("fast Dial: err = %v, want none or ErrAuth", err)
		}
		return
	}
	defer nc.Close()
	_ = nc.Publish("lost", []byte("x"))
	waitUntil(t, "closed after the refusal", 10*time.Second, nc.IsClosed)
	if err := Refused(nc); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("Refused = %v, want ErrAuth with the satellite's words", err)
	}
	if strings.Contains(Refused(nc).Error(), "rotated") {
		t.Fatal("the refusal names the token")
	}
}

// TestPathsRememberAccepted: the file of satellites that took a client's
// credentials tells endpoints apart by address and every credential, holds
// no secret, is the owner's alone, forgets on demand and stays bounded.
func TestPathsRememberAccepted(t *testing.T) {
	dir := t.TempDir()
	p := Paths{Config: filepath.Join(dir, "cfg"), Data: filepath.Join(dir, "data")}
	creds := filepath.Join(dir, "user.creds")
	if err := os.WriteFile(creds, []byte("jwt one"), 0o600); err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{URL: "tls://sky.example:4222", Token: "s3cret", Creds: creds}
	if p.Accepted(ep) {
		t.Fatal("accepted before anything was remembered")
	}
	if err := p.RememberAccepted(ep); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ep   Endpoint
		want bool
	}{
		{"the same", ep, true},
		{"another token", Endpoint{URL: ep.URL, Token: "other", Creds: creds}, false},
		{"another address", Endpoint{URL: "tls://sky.example:4223", Token: ep.Token, Creds: creds}, false},
		{"another CA", Endpoint{URL: ep.URL, Token: ep.Token, Creds: creds, CAPEM: []byte("pem")}, false},
	} {
		if got := p.Accepted(tc.ep); got != tc.want {
			t.Errorf("%s: Accepted = %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := os.WriteFile(creds, []byte("jwt two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p.Accepted(ep) {
		t.Error("a renewed creds file counts as taken")
	}
	if err := os.WriteFile(creds, []byte("jwt one"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(p.Config, "accepted"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("s3cret")) || bytes.Contains(b, []byte("jwt")) {
		t.Fatal("the file holds a credential")
	}
	if fi, err := os.Stat(filepath.Join(p.Config, "accepted")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if err := p.ForgetAccepted(ep); err != nil {
		t.Fatal(err)
	}
	if p.Accepted(ep) {
		t.Fatal("still accepted once forgotten")
	}
	for i := range acceptedMax + 10 {
		if err := p.RememberAccepted(Endpoint{URL: ep.URL, Token: strings.Repeat("t", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.acceptedKeys()); n != acceptedMax {
		t.Fatalf("%d endpoints remembered, want at most %d", n, acceptedMax)
	}
	if p.Accepted(Endpoint{URL: ep.URL, Token: "t"}) {
		t.Error("the oldest is still remembered")
	}
	if !p.Accepted(Endpoint{URL: ep.URL, Token: strings.Repeat("t", acceptedMax+10)}) {
		t.Error("the newest is not remembered")
	}
}

// TestTLSStartsBeforeTheINFO: a client that insists on TLS starts it
// without waiting for the satellite's INFO: through a proxy that holds
// the INFO back until the client sent something, it connects, over TLS,
// to a satellite that sends its INFO first in plaintext (skypipe's) and to
// one that takes TLS first (handshake_first); one that offers no TLS is
// refused as nats.go refuses it.
func TestTLSStartsBeforeTheINFO(t *testing.T) {
	srv, ca := tokenSatellite(t, true)
	holder := newInfoHolder(t, srv.Addr().String())
	nc, err := Dial(Endpoint{URL: "tls://" + holder.ln.Addr().String(), Token: "tok", CAPEM: ca.CertPEM, Accepted: true})
	if err != nil {
		t.Fatalf("INFO held back: %v", err)
	}
	if _, secure := TLSState(nc); !secure {
		t.Error("not TLS")
	}
	if _, err := nc.RTT(); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ServerTLS(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	first, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Authorization: "tok", TLSConfig: tlsCfg, TLS: true, TLSHandshakeFirst: true})
	if err != nil {
		t.Fatal(err)
	}
	first.Start()
	defer first.Shutdown()
	if !first.ReadyForConnections(10 * time.Second) {
		t.Fatal("the handshake_first server did not start")
	}
	nc, err = Dial(Endpoint{URL: "tls://" + first.Addr().String(), Token: "tok", CAPEM: ca.CertPEM, Accepted: true})
	if err != nil {
		t.Fatalf("a satellite that takes TLS first: %v", err)
	}
	if _, err := nc.RTT(); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	plain, _ := tokenSatellite(t, false)
	_, err = Dial(Endpoint{URL: "tls://" + plain.Addr().String(), Token: "tok", CAPEM: ca.CertPEM})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), nats.ErrSecureConnWanted.Error()) {
		t.Fatalf("a satellite without TLS: err = %v, want %v saying %q", err, ErrUnreachable, nats.ErrSecureConnWanted)
	}
}
