package pipes

import "time"

// pathWindow is how much a party keeps in flight to the satellite, in
// units: pulls of stored frames a kept item's reader keeps out, frames a
// kept item's sender has published and not had confirmed. It starts at a
// size that is enough near the satellite, and doubles, up to a cap, when
// the path to the satellite is long (its round trip at least long) and
// the party waited more than half of it while it had more to move (a
// store window goes to its cap at once, see newStoreWindow): what
// it had in flight did not cover the round trip, so it was bound by the
// window, not by its input or output. The round trip is the least time
// a unit sent with none in flight took to be answered (the satellite's
// own delays only add to it). A party near the satellite never grows its
// window, however long a busy satellite makes it wait, so its memory
// stays what the start bounds (a larger window there only piles bytes up
// in memory: RSS 33 -> 47 MiB draining 1 GiB, 18 -> 38 MiB storing it
// with a copy of each unconfirmed frame); one across a WAN grows it to
// cover the bandwidth-delay product, up to the cap, which bounds what it
// holds. Owned by one goroutine, or guarded by its owner's lock.
type pathWindow struct {
	units, max int
	jump       bool          // grows to max at once rather than doubling
	long       time.Duration // the least round trip that counts as a long path
	path       time.Duration // the least round trip seen; 0 before any
	probe      time.Time     // when a unit went out with none before it
}

// newPullWindow is a kept item's reader's window, in pulls: KeptPullsOut
// at first, up to KeptPullsMax across KeptPullPath or more.
func newPullWindow(cfg Config) pathWindow {
	return pathWindow{units: cfg.KeptPullsOut, max: max(cfg.KeptPullsMax, cfg.KeptPullsOut), long: cfg.KeptPullPath}
}

// newStoreWindow is a kept item's sender's window, in frames: StoreWindow
// at first, StoreWindowMax across StorePath or more. It goes to its cap at
// once: a sender far from the satellite stores at most a window a round
// trip, so it is window-bound from its first frames, and doubling from 8
// to 64 frames cost a 128 MiB item 3 round trips of its store across 200
// ms (49 MB/s against 59), for memory such a sender spends anyway.
func newStoreWindow(cfg Config) pathWindow {
	return pathWindow{units: cfg.StoreWindow, max: max(cfg.StoreWindowMax, cfg.StoreWindow), long: cfg.StorePath, jump: true}
}

// timed reports a round trip to the satellite timed before the first unit
// (a sender's roll call, a reader's looks for kept items): a store
// window across a long path then starts at its cap. It costs memory only
// if the input outruns the path: a window bounds what is in flight, and a
// slow input has little in flight. A reader's first pull, slow only
// because the satellite reads a big item from a cold store, then does not
// make a short path look long: the path is the least round trip seen.
func (w *pathWindow) timed(rtt time.Duration) {
	if rtt > 0 && (w.path == 0 || rtt < w.path) {
		w.path = rtt
	}
	if w.jump && w.path >= w.long {
		w.units = w.max
	}
}

// size is how many units may be in flight.
func (w *pathWindow) size() int { return w.units }

// frames is how many frames may be asked for and not yet come, at batch
// frames a pull.
func (w *pathWindow) frames(batch int) int { return w.units * batch }

// asking reports a unit sent at now with inFlight units (or frames) already
// in flight.
func (w *pathWindow) asking(now time.Time, inFlight int) {
	if inFlight == 0 {
		w.probe = now
	}
}

// heard reports an answer (a frame pulled, a frame confirmed) that came at
// now.
func (w *pathWindow) heard(now time.Time) {
	if !w.probe.IsZero() {
		if rtt := now.Sub(w.probe); w.path == 0 || rtt < w.path {
			w.path = rtt
		}
		w.probe = time.Time{}
	}
}

// waited reports that the party waited for waited before it could go on,
// with more to move than it had in flight (more); the window doubles if
// that wait was the window's doing across a long path.
func (w *pathWindow) waited(waited time.Duration, more bool) {
	if more && w.path >= w.long && waited > w.path/2 && w.units < w.max {
		w.units = min(2*w.units, w.max)
		if w.jump {
			w.units = w.max
		}
	}
}

// got reports a frame that came at now after the reader waited for it
// waited, with more frames stored than asked for (moreStored).
func (w *pathWindow) got(now time.Time, waited time.Duration, moreStored bool) {
	w.heard(now)
	w.waited(waited, moreStored)
}
