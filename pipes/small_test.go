package pipes

import (
	"bytes"
	"strings"
	"testing"

	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// frameAt is a stored frame of item on s: its head if head, else a kept
// frame, carrying data at offset (an end frame if end).
func frameAt(s wire.Subjects, item string, seq uint64, head bool, offset uint64, data string, end, abort bool) jsapi.Head {
	subj := s.Kept(item)
	if head {
		subj = s.Head(item)
	}
	var flags byte
	switch {
	case abort:
		return jsapi.Head{Subject: subj, Seq: seq, Data: wire.EndFrame(wire.FlagAbort, offset)}
	case end:
		return jsapi.Head{Subject: subj, Seq: seq, Data: wire.EndFrame(0, offset)}
	}
	buf := append(make([]byte, wire.HeaderLen), data...)
	return jsapi.Head{Subject: subj, Seq: seq, Data: wire.Seal(buf, flags, offset)}
}

func TestWholeItemTakesOnlyACompleteItemInOrder(t *testing.T) {
	s := wire.NewSubjects("jobs")
	h := func(seq uint64) jsapi.Head { return frameAt(s, "A", seq, true, 0, "", false, false) }
	d := func(seq, off uint64, data string) jsapi.Head {
		return frameAt(s, "A", seq, false, off, data, false, false)
	}
	e := func(seq, n uint64) jsapi.Head { return frameAt(s, "A", seq, false, n, "", true, false) }
	other := frameAt(s, "B", 0, false, 0, "other", false, false)
	corrupt := d(2, 0, "job\n")
	corrupt.Data = bytes.Clone(corrupt.Data)
	corrupt.Data[len(corrupt.Data)-1] ^= 1
	for _, tc := range []struct {
		name   string
		frames []jsapi.Head
		head   uint64
		want   int // frames returned; 0: none
	}{
		{"head, data, end", []jsapi.Head{h(1), d(2, 0, "job\n"), e(3, 4)}, 1, 3},
		{"an empty item", []jsapi.Head{h(1), e(2, 0)}, 1, 2},
		{"another item's frames between", []jsapi.Head{h(1), func() jsapi.Head { o := other; o.Seq = 2; return o }(), d(3, 0, "job\n"), e(4, 4)}, 1, 3},
		{"older frames before the head", []jsapi.Head{func() jsapi.Head { o := other; o.Seq = 1; return o }(), h(2), d(3, 0, "x"), e(4, 1)}, 2, 3},
		{"no end among them", []jsapi.Head{h(1), d(2, 0, "job\n")}, 1, 0},
		{"the head alone", []jsapi.Head{h(1)}, 1, 0},
		{"a gap", []jsapi.Head{h(1), d(2, 0, "jo"), d(3, 3, "\n"), e(4, 4)}, 1, 0},
		{"an end at the wrong length", []jsapi.Head{h(1), d(2, 0, "job\n"), e(3, 5)}, 1, 0},
		{"an abort", []jsapi.Head{h(1), d(2, 0, "job\n"), frameAt(s, "A", 3, false, 4, "", false, true)}, 1, 0},
		{"a damaged frame", []jsapi.Head{h(1), corrupt, e(3, 4)}, 1, 0},
		{"the head not first", []jsapi.Head{d(1, 0, "job\n"), h(2), e(3, 4)}, 1, 0},
		{"nothing", nil, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := wholeItem(tc.frames, s, "A", tc.head)
			if len(got) != tc.want {
				t.Fatalf("got %d frames, want %d", len(got), tc.want)
			}
		})
	}
}

// pulls counts the pull requests a satellite got so far, as a connection
// of the test's own sees them on JetStream's API: its flush returns once
// every request routed before it is queued on its subscription.
func pulls(t *testing.T, sat *satellite) func() int {
	nc := sat.conn()
	sub, err := nc.SubscribeSync("$JS.API.CONSUMER.MSG.NEXT.>")
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	return func() int {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		n, _, err := sub.Pending()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// TestSmallKeptItemComesWithTheLookForIt: a receiver that takes a small
// kept item writes it out with no pull: its frames came with the first
// look for kept items. It is claimed first (two receivers never share
// it) and removed after. A larger one is pulled as before.
func TestSmallKeptItemComesWithTheLookForIt(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	count := pulls(t, sat)
	small := []byte("a small job\n")
	big := payload(300<<10, 7)
	for _, item := range [][]byte{small, {}, big} {
		if _, err := sat.client().Send(ctx, "jobs", bytes.NewReader(item)); err != nil {
			t.Fatal(err)
		}
	}
	sat.kept(ctx, "jobs", 3)
	for i, tc := range []struct {
		want  []byte
		pulls bool
	}{{small, false}, {[]byte{}, false}, {big, true}} {
		before := count()
		var out bytes.Buffer
		res, err := sat.client().Receive(ctx, "jobs", &out, ReceiveOptions{})
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if res.Items != 1 || !bytes.Equal(out.Bytes(), tc.want) {
			t.Fatalf("item %d: got %q (%d items)", i, strings.TrimSpace(out.String()), res.Items)
		}
		sat.kept(ctx, "jobs", 2-i)
		if got := count() - before; (got > 0) != tc.pulls {
			t.Errorf("item %d (%d bytes): %d pulls, want pulls=%v", i, len(tc.want), got, tc.pulls)
		}
	}
}
