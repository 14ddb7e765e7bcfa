package pipes

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestKeptItemsShareOneConfirmationSubscription: a Client keeps item after
// item (a SendLines with nobody waiting) through one subscription for the
// satellite's confirmations, made on its first kept item; no item leaves a
// subscription or a route behind.
func TestKeptItemsShareOneConfirmationSubscription(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	nc := sat.conn()
	c := New(nc, WithConfig(sat.cfg))
	if n, err := c.SendLines(ctx, "lines", strings.NewReader("first\n")); err != nil || n != 1 {
		t.Fatalf("first line: %d sent, %v", n, err)
	}
	subs, shared := nc.NumSubscriptions(), c.confirmations.sub
	if shared == nil || !shared.IsValid() {
		t.Fatal("no subscription for confirmations after a kept item")
	}
	var in strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	if n, err := c.SendLines(ctx, "lines", strings.NewReader(in.String())); err != nil || n != 200 {
		t.Fatalf("200 lines: %d sent, %v", n, err)
	}
	if got := nc.NumSubscriptions(); got != subs {
		t.Errorf("subscriptions after 200 kept items: %d, after the first: %d", got, subs)
	}
	c.confirmations.mu.Lock()
	routes, sub := len(c.confirmations.to), c.confirmations.sub
	c.confirmations.mu.Unlock()
	if sub != shared {
		t.Error("the confirmations' subscription changed between items")
	}
	if routes != 0 {
		t.Errorf("%d routes of confirmations left after every item was sent", routes)
	}
	sat.kept(ctx, "lines", 201)
}

// TestConcurrentKeptItemsGetTheirOwnConfirmations: items of many frames kept
// at once by one Client, each into its own pipe, are each confirmed whole
// through the shared subscription, and each comes out whole.
func TestConcurrentKeptItemsGetTheirOwnConfirmations(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	const senders = 4
	data := make([][]byte, senders)
	sends := make([]*sending, senders)
	for i := range senders {
		data[i] = payload(3*chunkSize+1000*i, uint64(i))
		sends[i] = sendAsync(ctx, c, fmt.Sprintf("p%d", i), bytes.NewReader(data[i]))
	}
	for i, s := range sends {
		res, err := s.wait(t)
		if err != nil || !res.Kept || res.Bytes != uint64(len(data[i])) {
			t.Fatalf("sender %d: %+v, %v", i, res, err)
		}
	}
	for i := range senders {
		r := sat.receive(ctx, sat.client(), fmt.Sprintf("p%d", i), ReceiveOptions{})
		if _, err := r.wait(t); err != nil {
			t.Fatalf("receiver %d: %v", i, err)
		}
		if !bytes.Equal([]byte(r.out.String()), data[i]) {
			t.Fatalf("receiver %d: %d bytes, not the %d sent", i, r.out.Len(), len(data[i]))
		}
	}
}
