package pipes

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLiveWindowGrowsOnlyAcrossALongPathWithNoQueueBuilding(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LiveWindow, cfg.LiveWindowMax, cfg.LivePath = 8<<20, 24<<20, 10*time.Millisecond
	ms := time.Millisecond
	// round is one frame timed: sent, then acked rtt later, then the
	// sender waits waited for the window before the next.
	type round struct{ rtt, waited time.Duration }
	for _, tc := range []struct {
		name   string
		seen   time.Duration // the roll call's round trip, if answered
		rounds []round
		want   int
	}{
		{"nothing timed yet: the configured start", 0, nil, 8 << 20},
		{"near the satellite: never grows, however long it waits", 0, []round{{ms, 50 * ms}, {2 * ms, time.Second}, {ms, time.Second}}, 8 << 20},
		{"across a WAN, acks keep up (the input is the slower side): never grows", 0, []round{{200 * ms, 0}, {200 * ms, ms}, {210 * ms, 50 * ms}}, 8 << 20},
		{"across a WAN, waited most of a round trip: doubles", 0, []round{{200 * ms, 190 * ms}}, 16 << 20},
		{"across a WAN, round trip after round trip: doubles up to the cap and stays", 0, []round{{200 * ms, 190 * ms}, {210 * ms, 180 * ms}, {205 * ms, 170 * ms}, {200 * ms, 150 * ms}}, 24 << 20},
		{"a queue building in front of a receiver (acks later and later): stops growing", 0, []round{{200 * ms, 190 * ms}, {400 * ms, 390 * ms}, {800 * ms, 790 * ms}}, 16 << 20},
		{"the least round trip is the path: a late ack does not lengthen it", 0, []round{{400 * ms, 0}, {20 * ms, 15 * ms}}, 16 << 20},
		{"20 ms away, window-bound: grows", 0, []round{{20 * ms, 15 * ms}, {21 * ms, 12 * ms}}, 24 << 20},
		{"near the satellite (the roll call answered at once), frames queued behind the window: never grows", 300 * time.Microsecond, []round{{11 * ms, 7 * ms}, {17 * ms, 10 * ms}, {17 * ms, 12 * ms}}, 8 << 20},
		{"across a WAN (the roll call answered a round trip later), window-bound: grows", 205 * ms, []round{{200 * ms, 190 * ms}}, 16 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newLiveWindow(cfg)
			w.seen(tc.seen)
			now := time.Unix(1000, 0)
			var off uint64
			for _, r := range tc.rounds {
				off += 256 << 10
				w.sent(now, off)
				w.sent(now.Add(ms), off+1) // a frame sent while one is timed: not timed
				now = now.Add(r.rtt)
				w.acked(now, off-1) // short of the timed frame: no round trip yet
				w.acked(now, off)
				if w.last != r.rtt {
					t.Fatalf("latest round trip = %v, want %v", w.last, r.rtt)
				}
				if r.waited > 0 {
					w.waited(r.waited)
				}
				now = now.Add(r.waited)
			}
			if w.size != tc.want {
				t.Fatalf("window = %d MiB, want %d MiB", w.size>>20, tc.want>>20)
			}
		})
	}
	t.Run("a cap below the start keeps the start", func(t *testing.T) {
		c := cfg
		c.LiveWindowMax = 1 << 20
		w := newLiveWindow(c)
		now := time.Unix(1000, 0)
		w.sent(now, 1)
		w.acked(now.Add(200*ms), 1)
		if w.waited(190*ms) || w.size != 8<<20 {
			t.Fatalf("window = %d, want the start, 8 MiB", w.size)
		}
	})
	t.Run("a lost connection: the frame being timed is forgotten", func(t *testing.T) {
		w := newLiveWindow(cfg)
		now := time.Unix(1000, 0)
		w.sent(now, 10)
		w.restart()
		w.acked(now.Add(30*time.Second), 10) // sent again after the outage
		if w.path != 0 {
			t.Fatalf("the outage was taken for the path's round trip: %v", w.path)
		}
	})
}

// A live sender across a long path grows its window to the cap, and
// still holds every byte its receiver may not have written out: the
// receiver leaves mid-way and the rest of the item is kept from the byte
// it wrote last, whole (its ring grew with the window: laid out again for
// the larger size, it holds what the receiver lacked). Run under the
// strict config, where a ring short of the bytes to keep panics.
func TestALiveSenderAcrossALongPathGrowsItsWindowAndKeepsWhatItsReceiverLeft(t *testing.T) {
	sat := newSatellite(t)
	// Windows of 512 KiB to 2 MiB across 300 ms: a round trip that a busy
	// machine's time to move a window (under the race detector) does not
	// stretch by half, so that the window grows however busy the machine
	// (across 60 ms with windows of 1 to 4 MiB, the frames' round trips
	// on a loaded machine were 160-1600 ms against a path of 97 ms: a
	// queue, to the window, and it rightly did not grow).
	sat.cfg.LiveWindow, sat.cfg.LiveWindowMax, sat.cfg.LivePath = 512<<10, 2<<20, 20*time.Millisecond
	grew := recordGrowth(&sat.cfg)
	sizes := grew.sizes
	ctx := testCtx(t)
	p := sat.linkTo(t)
	p.SetRTT(300 * time.Millisecond)
	sc := New(reconnecting(t, "nats://"+p.Addr()), WithConfig(sat.cfg))

	// A whole item across the link: the window doubles to the cap.
	data := payload(8<<20, 21)
	r := sat.receive(ctx, sat.client(), "far", ReceiveOptions{})
	sat.attached(ctx, "far", 1)
	if res, err := sc.Send(ctx, "far", strings.NewReader(string(data))); err != nil || res.Kept {
		t.Fatalf("send: %+v, %v", res, err)
	}
	if _, err := r.wait(t); err != nil || r.out.String() != string(data) {
		t.Fatalf("receive: %v; got %d bytes of %d, first difference at %d", err, r.out.Len(), len(data), firstDiff(r.out.String(), string(data)))
	}
	if got := sizes(); len(got) != 2 || got[0] != 1<<20 || got[1] != 2<<20 {
		t.Fatalf("the window grew to %v, want 1 MiB then 2 MiB", got)
	}

	// The receiver leaves once the window grew and the ring (3.5 MiB at
	// the cap) wrapped.
	grew.reset()
	data = payload(12<<20, 22)
	rctx, leave := context.WithCancel(ctx)
	defer leave()
	r = sat.receive(rctx, sat.client(), "far", ReceiveOptions{})
	sat.attached(ctx, "far", 1)
	in := newGate()
	s := sendAsync(ctx, sc, "far", in)
	off := 0
	for ; off < len(data); off += 256 << 10 {
		if off >= 6<<20 && len(sizes()) == 2 {
			break
		}
		in.feed(t, string(data[off:off+256<<10]))
	}
	if len(sizes()) != 2 {
		t.Fatalf("the window grew to %v by byte %d, want 1 MiB then 2 MiB", sizes(), off)
	}
	leave()
	r.wait(t)
	written := r.out.Len()
	for ; off < len(data); off += 256 << 10 {
		in.feed(t, string(data[off:off+256<<10]))
	}
	in.close()
	res, err := s.wait(t)
	if err != nil || !res.Kept || res.KeptFrom != uint64(written) {
		t.Fatalf("send: %+v, %v; want kept from byte %d, what the receiver wrote", res, err, written)
	}
	if r.out.String() != string(data[:written]) {
		t.Fatalf("the first receiver's %d bytes are not the item's first", written)
	}
	var out lockedBuffer
	_, err = sat.client().Receive(ctx, "far", &out, ReceiveOptions{})
	itemErr(t, err, ErrPartial)
	if out.String() != string(data[written:]) {
		t.Fatalf("the kept rest: %d bytes, want %d from byte %d; first difference at %d", out.Len(), len(data)-written, written, firstDiff(out.String(), string(data[written:])))
	}
}

// A sender near the satellite whose receiver's output is the slower side
// never grows its window, however late each frame's ack (the window ahead
// of it drains at the output's pace) and however long it waits: the
// receiver answered its roll call at once, and that is the path. Before,
// the frames' round trips alone made the path look long, and a live
// sender on loopback grew its window (its receiver's peak RSS 37 -> 47-54
// MiB in go run ./tests/bench -cases live).
func TestALiveSenderNearTheSatelliteKeepsItsWindowBehindASlowOutput(t *testing.T) {
	sat := newSatellite(t)
	sat.cfg.LiveWindow, sat.cfg.LiveWindowMax, sat.cfg.LivePath = 1<<20, 4<<20, 10*time.Millisecond
	grew := recordGrowth(&sat.cfg)
	ctx := testCtx(t)
	// 256 KiB frames written at one per 15 ms: an ack comes 60 ms after
	// its frame went out behind a full window of 1 MiB, and the sender
	// waits 15 ms for each.
	out := &slowWriter{delay: 15 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := sat.client().Receive(ctx, "near", out, ReceiveOptions{})
		done <- err
	}()
	sat.attached(ctx, "near", 1)
	data := payload(6<<20, 23)
	if res, err := sat.client().Send(ctx, "near", strings.NewReader(string(data))); err != nil || res.Kept {
		t.Fatalf("send: %+v, %v", res, err)
	}
	if err := <-done; err != nil || !bytes.Equal(out.buf.Bytes(), data) {
		t.Fatalf("receive: %v; %d bytes of %d", err, out.n(), len(data))
	}
	if got := grew.sizes(); len(got) != 0 {
		t.Fatalf("the window grew to %v near the satellite", got)
	}
}

// growthLog is what the live windows of a Config grew to (its windowGrew
// hook), in order.
type growthLog struct {
	mu   sync.Mutex
	grew []int
}

// recordGrowth hooks a growthLog into cfg.
func recordGrowth(cfg *Config) *growthLog {
	g := &growthLog{}
	cfg.windowGrew = func(_ string, size int) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.grew = append(g.grew, size)
	}
	return g
}

func (g *growthLog) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.grew...)
}

func (g *growthLog) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.grew = nil
}
