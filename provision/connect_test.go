package provision

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/skypipe/skypipe/tests/link"
)

func TestFromURL(t *testing.T) {
	for _, tc := range []struct {
		raw, url, token string
		ok              bool
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", "", true},
		{"nats://s3cret@host:4222", "nats://host:4222", "s3cret", true},
		{"tls://tok@host:4222", "tls://host:4222", "tok", true},
		{"nats://user:pw@host:4222", "nats://user:pw@host:4222", "", true},
		{"wss://tok@sky.example", "wss://sky.example", "tok", true},
		{"wss://tok@sky.example:8443/", "wss://sky.example:8443/", "tok", true},
		{"ws://tok@127.0.0.1:8080", "ws://127.0.0.1:8080", "tok", true},
		{"ws://tok@localhost:8080", "ws://localhost:8080", "tok", true},
		{"ws://tok@sky.example:8080", "", "", false}, // the token in clear off loopback
		{"http://host:4222", "", "", false},
		{"https://host", "", "", false},
		{"host:4222", "", "", false},
		{"", "", "", false},
		// A cluster's members, in the order given; one token for all.
		{"nats://tok@a:4222,nats://b:4222", "nats://a:4222,nats://b:4222", "tok", true},
		{"tls://tok@a:4222, tls://tok@b:4222 ,", "tls://a:4222,tls://b:4222", "tok", true},
		{"nats://one@a:4222,nats://two@b:4222", "", "", false}, // two tokens
		{"nats://a:4222,wss://b", "", "", false},               // raw NATS and WebSocket in one pool
		{"nats://a:4222,http://b", "", "", false},
		{",", "", "", false},
	} {
		ep, err := FromURL(tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("FromURL(%q) err = %v, want ok=%v", tc.raw, err, tc.ok)
			continue
		}
		if tc.ok && (ep.URL != tc.url || ep.Token != tc.token) {
			t.Errorf("FromURL(%q) = %q, %q; want %q, %q", tc.raw, ep.URL, ep.Token, tc.url, tc.token)
		}
	}
}

func TestRedactHidesCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"nats://s3cret@host:4222":                   "nats://REDACTED@host:4222",
		"nats://user:pw@host:4222":                  "nats://REDACTED@host:4222",
		"nats://host:4222":                          "nats://host:4222",
		"nats://s3cret@a:4222,nats://s3cret@b:4222": "nats://REDACTED@a:4222,nats://REDACTED@b:4222",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestTokensArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	tok, err := ensureToken(path)
	if err != nil || len(tok) != 64 {
		t.Fatalf("ensureToken = %q, %v", tok, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, err := ensureToken(path)
	if err != nil || again != tok {
		t.Fatalf("second ensureToken = %q, %v; want the first token", again, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(path); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("ReadToken of a 0644 file: err = %v, want ErrInsecureFile", err)
	}
}

// A satellite that takes the connection but answers its handshake later
// than a dial may take (a busy machine, a slow link) is reached, not
// reported unreachable; an address where nothing listens still fails at
// once.
func TestDialWaitsForASlowHandshake(t *testing.T) {
	// The server's own bound on a client's CONNECT (2 s by default) is
	// not what this test is about: it gets room.
	srv, slow := serverBehindLink(t, 30)
	// INFO comes after one delay and PONG after a second: the handshake
	// takes longer than dialTimeout.
	delay := dialTimeout/2 + 500*time.Millisecond
	slow.SetDelay(0, delay)

	start := time.Now()
	nc, err := Dial(Endpoint{URL: "nats://" + slow.Addr(), Token: "tok"})
	if err != nil {
		t.Fatalf("a slow handshake: %v", err)
	}
	took := time.Since(start)
	nc.Close()
	if took < dialTimeout {
		t.Fatalf("the handshake took %v, not longer than the dial bound %v: the test proves nothing", took, dialTimeout)
	}

	_, err = Dial(Endpoint{URL: "nats://127.0.0.1:1", Token: "tok"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("nothing listening: %v", err)
	}

	// A name, not an address: the dialer resolves it.
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	nc, err = Dial(Endpoint{URL: "nats://localhost:" + port, Token: "tok"})
	if err != nil {
		t.Fatalf("by name: %v", err)
	}
	nc.Close()
}

// With Reconnect, a connection cut for less than the bound comes back by
// itself; one cut for longer is closed once the bound has passed, so that
// whoever uses it fails rather than waits on. Without it, a cut closes the
// connection at once.
func TestDialReconnectsWithinItsBound(t *testing.T) {
	srv, l := serverBehindLink(t, 0)
	ep := Endpoint{URL: "nats://" + l.Addr(), Token: "tok"}

	ep.Reconnect = 3 * time.Second
	nc, err := Dial(ep)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	l.Cut(500 * time.Millisecond)
	waitUntil(t, "reconnected", 10*time.Second, func() bool { return nc.IsConnected() && nc.Stats().Reconnects >= 1 })

	l.Cut(time.Minute)
	start := time.Now()
	waitUntil(t, "closed", 20*time.Second, nc.IsClosed)
	if took := time.Since(start); took < ep.Reconnect {
		t.Fatalf("closed after %v, before its bound of %v", took, ep.Reconnect)
	}

	l2, err := link.Start(srv.Addr().String(), link.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	nc2, err := Dial(Endpoint{URL: "nats://" + l2.Addr(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	l2.Reset()
	waitUntil(t, "closed", 10*time.Second, nc2.IsClosed)
}

// A URL that names a cluster's members connects to the first that answers,
// in the order given, and a connection that loses its member moves to
// another one named, within the reconnect bound.
func TestDialMovesToAnotherMemberItNames(t *testing.T) {
	_, a := serverBehindLink(t, 0)
	_, b := serverBehindLink(t, 0)

	// Nothing listens on the first: the second is taken.
	nc, err := Dial(Endpoint{URL: "nats://127.0.0.1:1,nats://" + b.Addr(), Token: "tok"})
	if err != nil {
		t.Fatalf("the second member: %v", err)
	}
	if got, want := nc.ConnectedUrl(), "nats://"+b.Addr(); got != want {
		t.Errorf("connected to %s, want %s", got, want)
	}
	nc.Close()

	// In the order given, every time (never shuffled).
	for range 5 {
		nc, err := Dial(Endpoint{URL: "nats://" + a.Addr() + ",nats://" + b.Addr(), Token: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		got := nc.ConnectedUrl()
		nc.Close()
		if want := "nats://" + a.Addr(); got != want {
			t.Fatalf("connected to %s, want the first named, %s", got, want)
		}
	}

	// The first member's link is cut for longer than the bound: the
	// connection moves to the second rather than close.
	nc, err = Dial(Endpoint{URL: "nats://" + a.Addr() + ",nats://" + b.Addr(), Token: "tok", Reconnect: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a.Cut(time.Minute)
	waitUntil(t, "reconnected to the second member", 10*time.Second, func() bool {
		return nc.IsConnected() && nc.ConnectedUrl() == "nats://"+b.Addr()
	})
	if err := nc.Flush(); err != nil {
		t.Fatalf("on the second member: %v", err)
	}
}

// waitUntil fails the test unless cond holds within limit.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not a pause to pass
	}
}

// serverBehindLink starts a NATS server (token "tok"; authTimeout in
// seconds, 0 for the server's own) and an emulated link in front of it,
// both stopped when the test ends.
func serverBehindLink(t *testing.T, authTimeout float64) (*server.Server, *link.Proxy) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		Authorization: "tok", AuthTimeout: authTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	l, err := link.Start(srv.Addr().String(), link.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return srv, l
}
