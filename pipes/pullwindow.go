package pipes

import "time"

// pullWindow is how many pulls of stored frames a kept item's reader keeps
// out: the drain's window. It starts at KeptPullsOut, enough near the
// satellite, and doubles, up to KeptPullsMax, when the path to the
// satellite is long (its round trip at least KeptPullPath) and the reader
// waited for a frame more than half of it while more frames were stored:
// the pulls out did not cover the round trip, so the drain was bound by
// the window, not by the receiver's output. The round trip is the least
// time a pull asked with none out took to bring its first frame (the
// satellite's own delays only add to it). A reader near the satellite
// never grows its window, however long a busy satellite makes it wait, so
// its memory stays what KeptPullsOut bounds (a larger window there only
// piles frames up in memory: RSS 33 -> 47 MiB draining 1 GiB); one across
// a WAN grows it to cover the bandwidth-delay product, up to KeptPullsMax
// pulls, which bound what it holds if its output stalls. Owned by one
// claim's read goroutine.
type pullWindow struct {
	pulls, max int
	long       time.Duration // KeptPullPath
	path       time.Duration // the least round trip seen; 0 before any
	probe      time.Time     // when a pull went out with none before it
}

func newPullWindow(cfg Config) pullWindow {
	return pullWindow{pulls: cfg.KeptPullsOut, max: max(cfg.KeptPullsMax, cfg.KeptPullsOut), long: cfg.KeptPullPath}
}

// frames is how many frames may be asked for and not yet come, at batch
// frames a pull.
func (w *pullWindow) frames(batch int) int { return w.pulls * batch }

// asking reports a pull asked at now with inFlight frames already asked
// for and not come.
func (w *pullWindow) asking(now time.Time, inFlight int) {
	if inFlight == 0 {
		w.probe = now
	}
}

// got reports a frame that came at now after the reader waited for it
// waited, with more frames stored than asked for (moreStored).
func (w *pullWindow) got(now time.Time, waited time.Duration, moreStored bool) {
	if !w.probe.IsZero() {
		if rtt := now.Sub(w.probe); w.path == 0 || rtt < w.path {
			w.path = rtt
		}
		w.probe = time.Time{}
	}
	if moreStored && w.path >= w.long && waited > w.path/2 && w.pulls < w.max {
		w.pulls = min(2*w.pulls, w.max)
	}
}
