package pipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
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
	eventually(t, "every item out", func() bool { return strings.Count(r.out.String(), "\n") == kept+live })
	sat.kept(ctx, "q", 0)
	stop()
	res, err := r.wait(t)
	if !errors.Is(err, context.Canceled) || res.Items != kept+live || res.NotWhole != 0 {
		t.Fatalf("follower: %+v, %v; want %d items whole", res, err, kept+live)
	}
	got := strings.Split(strings.TrimSuffix(r.out.String(), "\n"), "\n")
	slices.Sort(got)
	slices.Sort(lines)
	if !slices.Equal(got, lines) {
		t.Fatalf("items out:\n%q\nwant each once:\n%q", got, lines)
	}
}
