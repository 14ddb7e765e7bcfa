package pipes

import "time"

// liveWindow is how far a sender may run ahead of the acks of its slowest
// attached receiver: the live item's window. It starts at LiveWindow,
// enough near the satellite, and doubles, up to LiveWindowMax, when all of
// these hold:
//   - the path is long: the least round trip seen is at least LivePath,
//     of a receiver's answer to the roll call (nothing queued ahead of it)
//     or of a frame (from its publish to the slowest receiver's ack that
//     covers it);
//   - the sender waited for acks more than half of that round trip: the
//     window did not cover the round trip;
//   - no queue is building on the path: the latest round trip is within
//     half the least one more. A receiver whose own link is the bottleneck
//     (or whose output is slow) makes its acks come later and later as the
//     window fills the queue in front of it; a larger window would only
//     pile more bytes into that queue (the satellite drops a connection
//     with 64 MiB waiting for it as a slow consumer), not move them faster.
//
// A sender near the satellite never grows its window, so its ring (which
// holds a window of bytes) and its receivers' memory stay what LiveWindow
// bounds. One across a WAN grows it to cover the bandwidth-delay product,
// up to LiveWindowMax. A window only grows: the sender's ring grows with
// it before a byte beyond the old window goes out, so that it still holds
// every byte an attached receiver may not have written out.
//
// Owned by the sender's loop.
type liveWindow struct {
	size, max int
	long      time.Duration // LivePath
	path      time.Duration // the least round trip seen; 0 before any
	last      time.Duration // the latest round trip
	probeEnd  uint64        // the end of the frame being timed; 0: none
	probeAt   time.Time     // when it went out
}

func newLiveWindow(cfg Config) liveWindow {
	return liveWindow{size: cfg.LiveWindow, max: max(cfg.LiveWindowMax, cfg.LiveWindow), long: cfg.LivePath}
}

// sent reports a live frame that ends at end, published at now: the next
// round trip is timed on it unless one is already being timed.
func (w *liveWindow) sent(now time.Time, end uint64) {
	if w.probeEnd == 0 && end > 0 {
		w.probeEnd, w.probeAt = end, now
	}
}

// acked reports that at now the slowest receiver has taken in the item up
// to lo.
func (w *liveWindow) acked(now time.Time, lo uint64) {
	if w.probeEnd == 0 || lo < w.probeEnd {
		return
	}
	rtt := now.Sub(w.probeAt)
	w.seen(rtt)
	w.last = rtt
	w.probeEnd = 0
}

// seen reports a round trip to a receiver with nothing queued in front of
// it: its answer to the roll call. A frame's round trip includes the time
// the window ahead of it takes to drain; near the satellite, with the
// receiver's output the slower side, that alone is 17 ms for 8 MiB at 470
// MB/s, past LivePath, and a sender whose first frames were timed late
// (the receiver starting) grew its window on loopback, its receiver's RSS
// from 37 to 47-54 MiB (go run ./tests/bench -cases live). The roll call
// times the path itself.
func (w *liveWindow) seen(rtt time.Duration) {
	if rtt > 0 && (w.path == 0 || rtt < w.path) {
		w.path = rtt
	}
}

// restart forgets the frame being timed: after a lost connection its ack
// may come only once it is sent again, which times the outage, not the
// path.
func (w *liveWindow) restart() { w.probeEnd = 0 }

// waited reports that the sender waited d for acks to make room in the
// window, and grows the window if the path calls for it; true if it grew.
func (w *liveWindow) waited(d time.Duration) bool {
	if w.size >= w.max || w.path < w.long || d <= w.path/2 {
		return false
	}
	if w.last > w.path+w.path/2 {
		return false // a queue is building: the window is not what binds
	}
	w.size = min(2*w.size, w.max)
	return true
}
