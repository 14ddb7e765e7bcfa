package pipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skypipe/skypipe/internal/linemux"
	"github.com/skypipe/skypipe/internal/wire"
)

// TestFollowerForgetsAllButItsLastFinishedItems: a follower drops the
// items it finished from what it walks and holds, and remembers only the
// last Config.Remember of their ids; items it is at stay.
func TestFollowerForgetsAllButItsLastFinishedItems(t *testing.T) {
	for _, tc := range []struct {
		name      string
		follow    bool
		remember  int
		finish    []string
		open      string // an item still being read
		wantKnown []string
		wantGone  []string
		wantItems int
	}{
		{"follower keeps the last two", true, 2, []string{"a", "b", "c"}, "", []string{"b", "c"}, []string{"a"}, 0},
		{"an open item stays", true, 1, []string{"a", "b"}, "x", []string{"b", "x"}, []string{"a"}, 1},
		{"one item, no follow: kept as it is", false, 1, []string{"a"}, "", []string{"a"}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &receiver{
				cfg: Config{Remember: tc.remember}, opt: ReceiveOptions{Follow: tc.follow},
				items: map[string]*inItem{}, ended: map[string]struct{}{},
			}
			if tc.open != "" {
				r.items[tc.open] = &inItem{id: tc.open, state: itemReading}
				r.forget(r.items[tc.open])
			}
			for _, id := range tc.finish {
				it := &inItem{id: id, state: itemDone}
				r.items[id] = it
				r.forget(it)
			}
			for _, id := range tc.wantKnown {
				if !r.known(id) {
					t.Errorf("item %s forgotten", id)
				}
			}
			for _, id := range tc.wantGone {
				if r.known(id) {
					t.Errorf("item %s still remembered", id)
				}
			}
			if len(r.items) != tc.wantItems {
				t.Errorf("%d items held, want %d", len(r.items), tc.wantItems)
			}
		})
	}
}

// TestFollowerThatForgetsTakesEachItemOnce: with room to remember one
// finished item only, a follower still takes every kept and every live
// item exactly once, whole, and reports nothing broken.
func TestFollowerThatForgetsTakesEachItemOnce(t *testing.T) {
	sat := newSatellite(t)
	sat.cfg.Remember = 1
	ctx := testCtx(t)
	const kept, live = 30, 12
	var lines []string
	var in strings.Builder
	for i := range kept {
		fmt.Fprintf(&in, "kept %d\n", i)
		lines = append(lines, fmt.Sprintf("kept %d", i))
	}
	if n, err := sat.client().SendLines(ctx, "q", strings.NewReader(in.String())); err != nil || n != kept {
		t.Fatalf("SendLines: %d, %v", n, err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	r := sat.receive(rctx, sat.client(), "q", ReceiveOptions{Follow: true})
	eventually(t, "the kept items out", func() bool { return strings.Count(r.out.String(), "\n") == kept })
	senders := make([]*sending, 0, live)
	for i := range live {
		line := fmt.Sprintf("live %d", i)
		lines = append(lines, line)
		senders = append(senders, sendAsync(ctx, sat.client(), "q", strings.NewReader(line+"\n")))
	}
	for _, s := range senders {
		if _, err := s.wait(t); err != nil {
			t.Fatal(err)
		}
	}
	waitAllOut(ctx, t, sat, r, "q", lines)
	sat.kept(ctx, "q", 0)
	stop()
	res, err := r.wait(t)
	if !errors.Is(err, context.Canceled) || res.Items != kept+live || res.NotWhole != 0 {
		t.Fatalf("follower: %+v, %v; want %d items whole; it wrote:\n%s", res, err, kept+live, r.out.String())
	}
	got := strings.Split(strings.TrimSuffix(r.out.String(), "\n"), "\n")
	slices.Sort(got)
	slices.Sort(lines)
	if !slices.Equal(got, lines) {
		t.Fatalf("items out:\n%q\nwant each once:\n%q", got, lines)
	}
}

// waitAllOut waits until a follower has written every one of lines; if it
// does not, it says which are missing and what the pipe keeps.
func waitAllOut(ctx context.Context, t *testing.T, sat *satellite, r *receiving, name string, lines []string) {
	t.Helper()
	out := func() []string { return strings.Split(strings.TrimSuffix(r.out.String(), "\n"), "\n") }
	done := func() bool { return len(out()) >= len(lines) && strings.HasSuffix(r.out.String(), "\n") }
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			got := out()
			var missing []string
			for _, l := range lines {
				if !slices.Contains(got, l) {
					missing = append(missing, l)
				}
			}
			n, err := keptItems(ctx, sat.client(), name)
			t.Fatalf("gave up waiting for every item out: %d of %d lines, missing %q; the pipe keeps %d items (%v)", len(got), len(lines), missing, n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestATakerDoesNotTakeAgainAnItemItForgot: a live frame of an item a
// follower finished and forgot (Remember 1), queued before its
// subscription went, is acked to its sender and written nowhere: the item
// does not start again. (A loaded machine wrote a small live item twice
// this way.)
func TestATakerDoesNotTakeAgainAnItemItForgot(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	s, js := pipeAPI(t, c, "q")
	var out lockedBuffer
	r := &receiver{
		c: c, cfg: Config{Remember: 1}, s: s, rid: "follower", opt: ReceiveOptions{Follow: true, Role: Take},
		mux:    linemux.New(&out, linemux.Limits{HoldLimit: c.cfg.HoldLimit, MaxHeld: c.cfg.maxHeld(), LineStall: c.cfg.LineStall}),
		events: make(chan event, 1), done: make(chan struct{}),
		items: map[string]*inItem{}, ended: map[string]struct{}{},
	}
	r.claims = newClaimer(c, js, s, r.rid, r.post)
	for _, id := range []string{"a", "b"} {
		it := &inItem{id: id, state: itemDone}
		r.items[id] = it
		r.forget(it)
	}
	if r.known("a") {
		t.Fatal("item a still remembered: the test needs it forgotten")
	}
	// The sender's connection: the subscription is the server's before
	// the receiver acks (CI, on a loaded machine, lost the ack without
	// the flush).
	snc := sat.conn()
	acks, err := snc.SubscribeSync(s.Item("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := snc.Flush(); err != nil {
		t.Fatal(err)
	}
	data := []byte("again\n")
	frame := wire.Seal(append(make([]byte, wire.HeaderLen), data...), wire.FlagLineStart, 0)
	f, err := wire.Parse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.handleLive(ctx, "a", f); err != nil {
		t.Fatal(err)
	}
	if r.items["a"] != nil || out.String() != "" {
		t.Fatalf("the forgotten item started again: held %v, wrote %q", r.items["a"] != nil, out.String())
	}
	m, err := acks.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no ack to the sender: %v", err)
	}
	if cm, ok := wire.ParseCtl(m.Data); !ok || cm.Kind != wire.Ack || cm.Offset != uint64(len(data)) {
		t.Fatalf("the sender heard %+v (%v), want an ack of its bytes", cm, ok)
	}
}
