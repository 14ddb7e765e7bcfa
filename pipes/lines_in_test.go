package pipes

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestAggregatorKeepsEverySendersLinesWhole: a follower attached to a pipe
// writes the lines of two senders sending at once, never one inside the
// other's line, until a sender stops mid-line for LineStall.
func TestAggregatorKeepsEverySendersLinesWhole(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall time.Duration
		want  string
	}{
		// A's open line holds B's line back until A ends it.
		{"whole lines", time.Minute, "a1 half rest\nb1\n"},
		// A stops mid-line: after LineStall, B's line goes out.
		{"stalled line cut", 100 * time.Millisecond, "a1 half\nb1\n rest\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sat := newSatellite(t)
			sat.cfg.LineStall = tc.stall
			ctx := testCtx(t)
			agg := sat.receive(ctx, sat.client(), "logs", ReceiveOptions{Follow: true})
			sat.attached(ctx, "logs", 1)
			a, b := newGate(), newGate()
			sa := sendAsync(ctx, sat.client(), "logs", a)
			a.feed(t, "a1 half")
			eventually(t, "a's open line out", func() bool { return agg.out.String() == "a1 half" })
			sb := sendAsync(ctx, sat.client(), "logs", b)
			b.feed(t, "b1\n")
			b.close()
			if tc.stall < time.Minute {
				eventually(t, "b's line once a's stalls", func() bool { return agg.out.String() == "a1 half\nb1\n" })
			} else {
				// b's line waits (taken in: b is not held back).
				time.Sleep(3 * sat.cfg.Tick) // not a synchronisation: a window for a wrong write to show
				if got := agg.out.String(); got != "a1 half" {
					t.Fatalf("b's line cut into a's: %q", got)
				}
			}
			a.feed(t, " rest\n")
			a.close()
			if _, err := sa.wait(t); err != nil {
				t.Fatal(err)
			}
			if _, err := sb.wait(t); err != nil {
				t.Fatal(err)
			}
			eventually(t, "every line", func() bool { return agg.out.Len() == len(tc.want) })
			if got := agg.out.String(); got != tc.want {
				t.Fatalf("aggregated %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLateReceiverJoinsAtTheNextLine: a receiver attaching to an item
// mid-way starts at the next line start, never mid-line.
func TestLateReceiverJoinsAtTheNextLine(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	first := sat.receive(ctx, sat.client(), "mid", ReceiveOptions{Role: Listen})
	sat.attached(ctx, "mid", 1)
	g := newGate()
	s := sendAsync(ctx, sat.client(), "mid", g)
	g.feed(t, "line one\n")
	eventually(t, "the first line out", func() bool { return first.out.Len() == 9 })
	notices := make(chan string, 10)
	late := sat.receive(ctx, sat.client(WithNotice(func(m string) { notices <- m })), "mid", ReceiveOptions{Role: Listen})
	sat.attached(ctx, "mid", 2)
	g.feed(t, "tail of two\nline three\n")
	g.close()
	if _, err := s.wait(t); err != nil {
		t.Fatal(err)
	}
	// Only a tail: a receiver without Follow says so.
	if _, err := late.wait(t); !errors.Is(err, ErrPartial) {
		t.Fatalf("the late receiver: %v, want ErrPartial", err)
	}
	if got := late.out.String(); got != "tail of two\nline three\n" {
		t.Fatalf("the late receiver got %q", got)
	}
	if _, err := first.wait(t); err != nil || first.out.String() != "line one\ntail of two\nline three\n" {
		t.Fatalf("the first receiver: %q, %v", first.out.String(), err)
	}
	if n := <-notices; !strings.Contains(n, "mid-way, at byte 9") {
		t.Fatalf("notice %q: want one saying it joined mid-way at byte 9", n)
	}
}
