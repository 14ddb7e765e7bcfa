package pipes

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// leafOfHub starts a hub server whose JetStream runs in domain "hub" and a
// leaf node without JetStream connected to it, both on loopback, and
// returns a connection to the leaf: a client there reaches JetStream only
// through the domain's API prefix.
func leafOfHub(t *testing.T) *nats.Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leafPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	hub, err := server.NewServer(&server.Options{
		ServerName: "hub", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, JetStreamDomain: "hub", StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: leafPort},
	})
	if err != nil {
		t.Fatal(err)
	}
	go hub.Start()
	t.Cleanup(func() { hub.Shutdown(); hub.WaitForShutdown() })
	if !hub.ReadyForConnections(10 * time.Second) {
		t.Fatal("the hub did not start")
	}
	remote, _ := url.Parse(fmt.Sprintf("nats-leaf://127.0.0.1:%d", leafPort))
	leaf, err := server.NewServer(&server.Options{
		ServerName: "leaf", Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go leaf.Start()
	t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	if !leaf.ReadyForConnections(10 * time.Second) {
		t.Fatal("the leaf did not start")
	}
	eventually(t, "the leaf to connect to the hub", func() bool { return leaf.NumLeafNodes() == 1 })
	nc, err := nats.Connect(leaf.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestKeptItemsThroughAJetStreamDomain(t *testing.T) {
	nc := leafOfHub(t)
	ctx := testCtx(t)
	cfg := fastConfig()
	c := New(nc, WithConfig(cfg), WithJetStreamDomain("hub"))
	items := [][]byte{payload(700<<10, 9), []byte("second\n")}
	for _, it := range items {
		eventually(t, "JetStream of the hub to answer through the leaf", func() bool {
			_, err := c.js.JS.AccountInfo(ctx)
			return err == nil
		})
		res, err := c.Send(ctx, "domain", bytes.NewReader(it))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Kept {
			t.Fatalf("%+v: nobody listens, want kept", res)
		}
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Items != 2 {
		t.Fatalf("List through the domain: %+v, %v", list, err)
	}
	for i, want := range items {
		var out bytes.Buffer
		if _, err := c.Receive(ctx, "domain", &out, ReceiveOptions{}); err != nil || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("item %d: %d bytes, %v", i, out.Len(), err)
		}
	}
	// Without the domain the leaf has no JetStream at all.
	plain := New(nc, WithConfig(cfg))
	if _, err := plain.List(ctx); err == nil {
		t.Fatal("a client without the domain listed pipes on a leaf without JetStream")
	}
}
