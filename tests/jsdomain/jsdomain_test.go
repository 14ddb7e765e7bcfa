package jsdomain

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func start(t *testing.T) *Deployment {
	t.Helper()
	d, err := Start(Config{Dir: t.TempDir(), Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Shutdown)
	return d
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoReconnect(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// A work-queue stream created through the domain from the leaf lives on
// the hub, and the leaf's clients store into it and take from it.
func TestAStreamCreatedThroughTheDomainIsUsableFromTheLeaf(t *testing.T) {
	d := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaf := connect(t, d.LeafURL())
	js, err := jetstream.NewWithDomain(leaf, d.Domain())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "ITEMS", Subjects: []string{"items.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		// Publishing on the stream's subject from the leaf: the hub stores
		// it and its ack comes back across the leafnode connection.
		if _, err := js.Publish(ctx, "items.a", fmt.Appendf(nil, "item %d", i)); err != nil {
			t.Fatalf("publishing from the leaf: %v", err)
		}
	}
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "taker", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "items.a"})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for m := range batch.Messages() {
		if want := fmt.Sprintf("item %d", i); string(m.Data()) != want {
			t.Errorf("message %d: %q, want %q", i, m.Data(), want)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		i++
	}
	if err := batch.Error(); err != nil || i != 3 {
		t.Fatalf("took %d of 3 messages through the leaf: %v", i, err)
	}

	// The stream is the hub's: a client of the hub sees it, and the
	// acked messages removed.
	hubJS, err := jetstream.New(connect(t, d.HubURL()))
	if err != nil {
		t.Fatal(err)
	}
	onHub, err := hubJS.Stream(ctx, "ITEMS")
	if err != nil {
		t.Fatalf("the hub does not have the stream: %v", err)
	}
	info, err := onHub.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 || info.State.LastSeq != 3 {
		t.Errorf("on the hub: %d messages, last sequence %d; want 0 left of 3", info.State.Msgs, info.State.LastSeq)
	}
}

// The set-up needs the domain: without it, a client of the leaf finds no
// JetStream at all, so a client that ignores domains fails here.
func TestWithoutTheDomainTheLeafHasNoJetStream(t *testing.T) {
	d := start(t)
	js, err := jetstream.New(connect(t, d.LeafURL()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	if !errors.Is(err, jetstream.ErrJetStreamNotEnabled) && !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a JetStream call without the domain through the leaf: %v; want no JetStream", err)
	}
	// Core NATS crosses the leafnode connection: a request from the leaf
	// reaches a responder on the hub.
	hub := connect(t, d.HubURL())
	sub, err := hub.Subscribe("ping", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := hub.Flush(); err != nil {
		t.Fatal(err)
	}
	leaf := connect(t, d.LeafURL())
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := leaf.Request("ping", nil, time.Second)
		if err == nil && string(m.Data) == "pong" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a request from the leaf got no answer from the hub: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // interest crosses the leafnode connection asynchronously
	}
}

func TestStartRefusesAMissingTokenOrDir(t *testing.T) {
	for _, cfg := range []Config{{Dir: t.TempDir()}, {Token: "x"}} {
		if d, err := Start(cfg); err == nil {
			d.Shutdown()
			t.Errorf("Start(%+v) ran without a token or a directory", cfg)
		}
	}
}
