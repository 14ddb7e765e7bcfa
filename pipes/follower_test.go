package pipes

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A follower whose answer to an offer comes after its sender gave up on
// it (the sender keeps the item, a stream of lines, from its first byte)
// takes the item from the store while it is being stored: it has the
// lines before the sender's input ends, and all of them once it does.
func TestALateFollowerReadsAKeptStreamAsItGrows(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	taker, p := sat.linkedClient(t)
	rcv := sat.receive(ctx, taker, "logs", ReceiveOptions{Follow: true})
	sat.attached(ctx, "logs", 1)
	p.SetDelay(2*time.Second, 0) // twice the sender's RollCallTimeout

	g := newGate()
	s := sendAsync(ctx, sat.client(), "logs", g)
	var all strings.Builder
	line := func(n int) string { return fmt.Sprintf("line %d\n", n) }
	g.feed(t, line(0))
	all.WriteString(line(0))
	sat.kept(ctx, "logs", 1)
	p.SetDelay(0, 0)
	for n := 1; n < 20; n++ {
		g.feed(t, line(n))
		all.WriteString(line(n))
	}
	eventually(t, "the follower to have the lines sent so far", func() bool { return rcv.out.String() == all.String() })
	g.close()
	res, err := s.wait(t)
	if err != nil || !res.Kept {
		t.Fatalf("sender: %+v, %v; want kept", res, err)
	}
	eventually(t, "the follower to have every line", func() bool { return rcv.out.String() == all.String() })
	sat.kept(ctx, "logs", 0)
}

// A follower takes small items that ride with their offers, twenty side
// by side, each once and whole.
func TestAFollowerTakesSmallItemsFromTheirOffers(t *testing.T) {
	sat := prepared(t)
	ctx := testCtx(t)
	rcv := sat.receive(ctx, sat.client(), "logs", ReceiveOptions{Follow: true})
	sat.attached(ctx, "logs", 1)
	var want []string
	var ss []*sending
	for i := range 20 {
		item := fmt.Sprintf("s%02d line 1\ns%02d line 2\n", i, i)
		want = append(want, strings.Split(strings.TrimSuffix(item, "\n"), "\n")...)
		ss = append(ss, sendAsync(ctx, sat.client(), "logs", strings.NewReader(item)))
	}
	// A sender whose roll call a busy machine leaves unanswered keeps its
	// item, which the follower then takes from the store: either way each
	// comes out once.
	for i, s := range ss {
		if _, err := s.wait(t); err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
	eventually(t, "the follower to have every line", func() bool {
		got := strings.Split(strings.TrimSuffix(rcv.out.String(), "\n"), "\n")
		return len(got) == len(want)
	})
	got := strings.Split(strings.TrimSuffix(rcv.out.String(), "\n"), "\n")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the follower wrote %q, want %q in some order", got, want)
	}
	sat.kept(ctx, "logs", 0)
}

// A follower whose record comes after its sender gave up on it takes the
// small item from the store, once; a follower whose record came first
// has it from the offer while its sender is deaf.
func TestALateFollowerTakesASmallItemOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		takerSlow bool
	}{{"the sender's record first", true}, {"the follower's record first", false}} {
		t.Run(tc.name, func(t *testing.T) {
			sat := prepared(t)
			ctx := testCtx(t)
			taker, tp := sat.linkedClient(t)
			rcv := sat.receive(ctx, taker, "logs", ReceiveOptions{Follow: true})
			sat.attached(ctx, "logs", 1)
			snd, sp := sat.linkedClient(t)
			if tc.takerSlow {
				tp.SetDelay(2*time.Second, 0)
			} else {
				sp.SetDelay(0, 2*time.Second)
			}
			res, err := snd.Send(ctx, "logs", strings.NewReader("one\ntwo\n"))
			if err != nil || res.Kept != tc.takerSlow {
				t.Fatalf("sender: %+v, %v; want kept %v", res, err, tc.takerSlow)
			}
			tp.SetDelay(0, 0)
			eventually(t, "the follower to have the item", func() bool { return rcv.out.String() == "one\ntwo\n" })
			sat.kept(ctx, "logs", 0)
			// Once more, behind it: the follower writes the next item
			// after the first, and never the first again.
			if res, err := sat.client().Send(ctx, "logs", strings.NewReader("three\n")); err != nil || res.Kept {
				t.Fatalf("the next sender: %+v, %v; want taken", res, err)
			}
			eventually(t, "the follower to have the next item", func() bool { return strings.HasSuffix(rcv.out.String(), "three\n") })
			if got := rcv.out.String(); got != "one\ntwo\nthree\n" {
				t.Fatalf("the follower wrote %q", got)
			}
		})
	}
}
