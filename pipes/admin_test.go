package pipes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/wire"
)

func frame(flags byte, offset uint64, data string) []byte {
	return wire.Seal(append(make([]byte, wire.HeaderLen), data...), flags, offset)
}

func TestStateOfAnItemFromItsHeadAndLastFrame(t *testing.T) {
	end := wire.EndFrame(0, 10)
	abort := wire.EndFrame(wire.FlagAbort, 4)
	for _, tc := range []struct {
		name       string
		head, last []byte
		want       ItemState
	}{
		{"from byte 0 to its end", frame(0, 0, ""), end, ItemWhole},
		{"empty, ended in its head", wire.EndFrame(0, 0), nil, ItemWhole},
		{"from byte 0, no end yet", frame(0, 0, ""), frame(0, 0, "abcd"), ItemSending},
		{"only its head yet", frame(0, 0, ""), nil, ItemSending},
		{"from a later byte to its end", frame(0, 6, ""), end, ItemPartial},
		{"from a later byte, no end yet", frame(0, 6, ""), frame(0, 6, "ab"), ItemPartial},
		{"ends with an abort frame", frame(0, 0, ""), abort, ItemBroken},
		{"partial and aborted", frame(0, 6, ""), abort, ItemBroken},
		{"a damaged last frame", frame(0, 0, ""), []byte("not a frame at all"), ItemBroken},
		{"a damaged head", []byte("junk"), end, ItemBroken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateOf(tc.head, tc.last); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
}

// pipeInfo returns what List says of one pipe.
func pipeInfo(ctx context.Context, t *testing.T, c *Client, name string) PipeInfo {
	t.Helper()
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("List has no pipe %q: %+v", name, list)
	return PipeInfo{}
}

func TestListTellsWholePartialBrokenAndSendingItemsApart(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	const name = "mixed"
	c := sat.client()

	// Partial: a live receiver leaves mid-item; the rest is kept from
	// byte 11 on. (First: a taker would take a kept item first.)
	rctx, stop := context.WithCancel(ctx)
	r := sat.receive(rctx, sat.client(), name, ReceiveOptions{})
	sat.attached(ctx, name, 1)
	g := newGate()
	s := sendAsync(ctx, sat.client(), name, g)
	g.feed(t, "first part\n")
	eventually(t, "the first part out", func() bool { return r.out.String() == "first part\n" })
	stop()
	r.wait(t)
	sat.attached(ctx, name, 0)
	g.feed(t, "second part\n")
	g.close()
	res, err := s.wait(t)
	if err != nil || res.KeptFrom == 0 {
		t.Fatalf("the partial item's sender: %+v, %v", res, err)
	}
	partial := res.Item

	// Whole: sent with nobody attached.
	if _, err := c.Send(ctx, name, strings.NewReader("whole\n")); err != nil {
		t.Fatal(err)
	}

	// Broken: what a receiver on a cluster leaves of an item whose sender
	// vanished, or a sender interrupted while its taker read it: its
	// frames, then an abort frame.
	subj := wire.NewSubjects(name)
	const broken = "brokenitem"
	js, err := c.jetstream()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		subject string
		data    []byte
	}{
		{subj.Head(broken), frame(0, 0, "")},
		{subj.Kept(broken), frame(wire.FlagLineStart, 0, "half a li")},
		{subj.Kept(broken), wire.EndFrame(wire.FlagAbort, 9)},
	} {
		if _, err := js.JS.Publish(ctx, m.subject, m.data); err != nil {
			t.Fatal(err)
		}
	}

	// Sending: a sender still writing, with nobody attached.
	g2 := newGate()
	s2 := sendAsync(ctx, sat.client(), name, g2)
	g2.feed(t, "still writ")
	sat.kept(ctx, name, 4)

	p := pipeInfo(ctx, t, c, name)
	if p.Items != 4 || p.Whole != 1 || p.Partial != 1 || p.Broken != 1 || p.Sending != 1 {
		t.Fatalf("List: %+v; want 4 items: 1 whole, 1 partial, 1 broken, 1 sending", p)
	}
	if !slices.Equal(p.PartialItems, []string{partial}) || !slices.Equal(p.BrokenItems, []string{broken}) {
		t.Fatalf("partial items %v, broken items %v; want [%s] and [%s]", p.PartialItems, p.BrokenItems, partial, broken)
	}

	// The sender ends its item: whole.
	g2.feed(t, "ing\n")
	g2.close()
	if _, err := s2.wait(t); err != nil {
		t.Fatal(err)
	}
	p = pipeInfo(ctx, t, c, name)
	if p.Items != 4 || p.Whole != 2 || p.Sending != 0 {
		t.Fatalf("List after the sender ended: %+v; want 2 whole, none sending", p)
	}

	// Dropping the broken item leaves the others as they were.
	if err := c.RemoveItem(ctx, name, broken); err != nil {
		t.Fatal(err)
	}
	p = pipeInfo(ctx, t, c, name)
	if p.Items != 3 || p.Whole != 2 || p.Partial != 1 || p.Broken != 0 || len(p.BrokenItems) != 0 {
		t.Fatalf("List after removing the broken item: %+v", p)
	}
}

// TestListShowsPipesWithOnlyWaitingReceivers: List shows a pipe with
// receivers attached and nothing kept (takers and listeners, with names
// that need escaping), beside a pipe that keeps an item and has nobody;
// and an empty list, before anything was ever kept, when nobody waits.
func TestListShowsPipesWithOnlyWaitingReceivers(t *testing.T) {
	sat := newSatellite(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	c := sat.client()
	if list, err := c.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List of a new satellite: %+v, %v", list, err)
	}
	waiting := map[string]struct {
		role Role
		n    int
	}{"jobs": {Take, 2}, "logs of web-1": {Listen, 1}}
	var receivers []*receiving
	for name, w := range waiting {
		for range w.n {
			receivers = append(receivers, sat.receive(ctx, sat.client(), name, ReceiveOptions{Role: w.role}))
		}
		sat.attached(ctx, name, w.n)
	}
	if list, err := c.List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("List with receivers waiting and nothing kept: %+v, %v", list, err)
	}
	if _, err := sat.client().Send(ctx, "kept", strings.NewReader("x\n")); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range list {
		got = append(got, fmt.Sprintf("%s items=%d receivers=%d", p.Name, p.Items, p.Receivers))
	}
	want := []string{"jobs items=0 receivers=2", "kept items=1 receivers=0", "logs of web-1 items=0 receivers=1"}
	if !slices.Equal(got, want) {
		t.Fatalf("List:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cancel()
	for _, r := range receivers {
		_, _ = r.wait(t)
	}
}

// TestCountAsksEveryPipeInOneWindow: the census of List asks the
// receivers of many pipes at once and tells each pipe's own apart, "no
// responders" of some pipes included; Attached of a pipe with nobody
// says 0.
func TestCountAsksEveryPipeInOneWindow(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	want := []int{0, 1, 3, 0, 2}
	pipes := make([]wire.Subjects, len(want))
	for i, n := range want {
		name := fmt.Sprintf("p%d", i)
		pipes[i] = wire.NewSubjects(name)
		for range n {
			sat.receive(ctx, sat.client(), name, ReceiveOptions{Role: Listen})
		}
		sat.attached(ctx, name, n)
	}
	got, err := c.count(ctx, pipes...)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("receivers by pipe: %v, %v; want %v", got, err, want)
	}
	if n, err := c.Attached(ctx, "nobody-here"); err != nil || n != 0 {
		t.Fatalf("Attached of a pipe with nobody: %d, %v", n, err)
	}
}

// A census counts a receiver across a slow link (200 ms RTT) when it is
// taken across a link like it: the window opens once the satellite has the
// census and lasts a round trip more, for the receiver's answer.
func TestACensusAcrossAWANCountsAReceiverAcrossIt(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	p := sat.linkTo(t)
	p.SetRTT(200 * time.Millisecond)
	far := func() *Client {
		nc, err := nats.Connect("nats://"+p.Addr(), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return New(nc, WithConfig(sat.cfg))
	}
	r := sat.receive(ctx, far(), "far", ReceiveOptions{})
	counter := far()
	eventually(t, "the receiver across the link counted by a census across it", func() bool {
		n, err := counter.Attached(ctx, "far")
		return err == nil && n == 1
	})
	list, err := counter.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "far" || list[0].Receivers != 1 {
		t.Fatalf("List across the link = %+v; want pipe far with its receiver", list)
	}
	if _, err := sat.client().Send(ctx, "far", strings.NewReader("done\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}
