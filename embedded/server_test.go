package embedded

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/tests/link"
)

func TestStartServesJetStreamWithAuth(t *testing.T) {
	srv, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	if _, err := nats.Connect(srv.URL(), nats.NoReconnect()); err == nil {
		t.Fatal("a client without the token was let in")
	}
	if _, err := nats.Connect(srv.URL(), nats.Token("wrong"), nats.NoReconnect()); err == nil {
		t.Fatal("a client with a wrong token was let in")
	}
	nc, err := nats.Connect(srv.URL(), nats.Token("tok"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream is not available: %v", err)
	}
}

func TestStartRejectsBadAddresses(t *testing.T) {
	for _, listen := range []string{"", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000"} {
		if srv, err := Start(Config{Listen: listen, StoreDir: t.TempDir()}); err == nil {
			srv.Shutdown()
			t.Errorf("Start(%q) succeeded", listen)
		}
	}
}

func TestStartTellsAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv, err := Start(Config{Listen: l.Addr().String(), StoreDir: t.TempDir()})
	if err == nil {
		srv.Shutdown()
		t.Fatal("Start on a busy port succeeded")
	}
	if !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("err = %v, want ErrAddrInUse", err)
	}
}

func TestWebsocketListenerAndInProcessClients(t *testing.T) {
	srv, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok", Websocket: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	addr := srv.WebsocketAddr()
	if addr == "" {
		t.Fatal("no WebSocket address")
	}
	if _, err := nats.Connect("ws://"+addr, nats.NoReconnect()); err == nil {
		t.Fatal("a WebSocket client without the token was let in")
	}
	ws, err := nats.Connect("ws://"+addr, nats.Token("tok"), nats.NoReconnect())
	if err != nil {
		t.Fatalf("WebSocket client: %v", err)
	}
	defer ws.Close()
	if _, err := srv.Connect("test", "wrong"); err == nil {
		t.Fatal("an in-process client with a wrong token was let in")
	}
	in, err := srv.Connect("test", "tok")
	if err != nil {
		t.Fatalf("in-process client: %v", err)
	}
	defer in.Close()
	sub, err := in.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	in.Flush()
	if err := ws.Publish("x", []byte("over websocket")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "over websocket" {
		t.Fatalf("got %v, %v", m, err)
	}
}

func TestInProcessClientsOfATLSSatellite(t *testing.T) {
	ca, err := provision.NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := provision.ServerTLS(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok", TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("test", "tok")
	if err != nil {
		t.Fatalf("in-process client of a TLS satellite: %v", err)
	}
	nc.Close()
}

func TestWebsocketStaysOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "localhost:0", "127.0.0.1"} {
		if srv, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Websocket: addr}); err == nil {
			srv.Shutdown()
			t.Errorf("Start with Websocket %q succeeded", addr)
		}
	}
}

func TestASlowClientIsLetIn(t *testing.T) {
	srv, err := Start(Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	slow, err := link.Start(srv.Addr().String(), link.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// The satellite's INFO reaches the client after 1.5 s and the
	// client's CONNECT comes back 1.5 s later: past nats-server's default
	// bound on a client's CONNECT (2 s).
	slow.SetDelay(1500*time.Millisecond, 1500*time.Millisecond)
	start := time.Now()
	nc, err := nats.Connect("nats://"+slow.Addr(), nats.Token("tok"), nats.Timeout(time.Minute), nats.NoReconnect())
	if err != nil {
		t.Fatalf("a client 3 s away: %v", err)
	}
	defer nc.Close()
	if took := time.Since(start); took < 3*time.Second {
		t.Fatalf("the handshake took %v: the test proves nothing", took)
	}
}
