package pipes

import (
	"testing"
	"time"
)

func TestPullWindowGrowsOnlyAcrossALongPathWhenTheReaderWaitedForStoredFrames(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KeptPullsOut, cfg.KeptPullsMax, cfg.KeptPullPath = 2, 8, 10*time.Millisecond
	ms := time.Millisecond
	type frame struct {
		waited     time.Duration
		moreStored bool
	}
	for _, tc := range []struct {
		name   string
		rtt    time.Duration // how long the first pull, asked with none out, took to bring its first frame
		frames []frame       // what the reader waited for each later frame
		want   int           // pulls out after them
	}{
		{"no frame yet: the configured start", 0, nil, 2},
		{"near the satellite: never grows, however long a busy satellite makes it wait", ms, []frame{{50 * ms, true}, {200 * ms, true}, {time.Second, true}}, 2},
		{"across a WAN with frames waiting (the output is the slower side): never grows", 200 * ms, []frame{{0, true}, {ms, true}, {20 * ms, true}}, 2},
		{"across a WAN, waited most of a round trip with more stored: doubles", 200 * ms, []frame{{190 * ms, true}}, 4},
		{"across a WAN, waited for frames not stored yet (a sender still sending): never grows", 200 * ms, []frame{{time.Second, false}, {time.Second, false}}, 2},
		{"across a WAN, round trip after round trip: doubles up to the cap and stays", 200 * ms, []frame{{190 * ms, true}, {180 * ms, true}, {170 * ms, true}, {150 * ms, true}}, 8},
		{"20 ms away, window-bound: grows", 20 * ms, []frame{{15 * ms, true}, {12 * ms, true}}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newPullWindow(cfg)
			now := time.Unix(1000, 0)
			if tc.rtt > 0 {
				w.asking(now, 0)
				w.asking(now, 4) // a second pull out: not a probe of the round trip
				now = now.Add(tc.rtt)
				w.got(now, tc.rtt, true)
				if w.path != tc.rtt {
					t.Fatalf("round trip = %v, want %v", w.path, tc.rtt)
				}
				w.units = cfg.KeptPullsOut // the first frame's own wait is not what the case is about
			}
			for _, f := range tc.frames {
				now = now.Add(f.waited)
				w.got(now, f.waited, f.moreStored)
			}
			if w.units != tc.want {
				t.Fatalf("pulls out = %d, want %d", w.units, tc.want)
			}
			if got := w.frames(4); got != 4*tc.want {
				t.Fatalf("frames(4) = %d, want %d", got, 4*tc.want)
			}
		})
	}
	t.Run("the round trip is the least one seen", func(t *testing.T) {
		w := newPullWindow(cfg)
		now := time.Unix(1000, 0)
		for _, rtt := range []time.Duration{300 * ms, 200 * ms, 250 * ms} {
			w.asking(now, 0)
			now = now.Add(rtt)
			w.got(now, rtt, false)
		}
		if w.path != 200*ms {
			t.Fatalf("round trip = %v, want 200ms", w.path)
		}
	})
	t.Run("timed short by the look that found the item: a slow first pull (a cold store) does not grow it", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			looked time.Duration // the look's round trip; 0: none
			want   int
		}{
			{"no look timed: the first pull times the path, which looks long", 0, 4},
			{"a look of 1 ms: the path is short", ms, 2},
			{"a look of 200 ms: the path is long", 200 * ms, 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := newPullWindow(cfg)
				w.timed(tc.looked)
				now := time.Unix(1000, 0)
				w.asking(now, 0)
				now = now.Add(15 * ms) // the first frames read from disk
				w.got(now, 15*ms, true)
				if w.units != tc.want {
					t.Fatalf("pulls out = %d (round trip %v), want %d", w.units, w.path, tc.want)
				}
			})
		}
	})
	t.Run("a cap below the start keeps the start", func(t *testing.T) {
		c := cfg
		c.KeptPullsMax = 1
		w := newPullWindow(c)
		w.asking(time.Unix(0, 0), 0)
		w.got(time.Unix(1, 0), time.Second, true)
		if w.units != 2 {
			t.Fatalf("pulls out = %d, want 2", w.units)
		}
	})
}

func TestStoreWindowStartsAtItsCapAcrossAPathTimedLongAndJumpsThereWhenBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StoreWindow, cfg.StoreWindowMax, cfg.StorePath = 8, 64, 10*time.Millisecond
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		timed time.Duration // the roll call's round trip; 0: none timed
		probe time.Duration // the first frame's confirmation, sent with none in flight
		wait  time.Duration // then the sender waited this long for the window
		want  int
	}{
		{"nothing timed, nothing waited: the start", 0, 0, 0, 8},
		{"a roll call answered near the satellite: the start", ms, 0, 0, 8},
		{"a roll call answered across 200 ms: the cap at once", 200 * ms, 0, 0, 64},
		{"near the satellite, waiting on a busy satellite: the start", 0, ms, 500 * ms, 8},
		{"across 200 ms, window-bound: the cap, not a doubling", 0, 200 * ms, 190 * ms, 64},
		{"across 200 ms, not bound (the input is slower): the start", 0, 200 * ms, 50 * ms, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newStoreWindow(cfg)
			w.timed(tc.timed)
			if tc.probe > 0 {
				now := time.Unix(1000, 0)
				w.asking(now, 0)
				w.heard(now.Add(tc.probe))
				w.waited(tc.wait, true)
			}
			if w.size() != tc.want {
				t.Fatalf("window = %d frames, want %d", w.size(), tc.want)
			}
		})
	}
	t.Run("a pull window does not start at its cap: it doubles on evidence", func(t *testing.T) {
		w := newPullWindow(cfg)
		w.timed(200 * ms)
		if w.size() != cfg.KeptPullsOut {
			t.Fatalf("pulls out = %d, want %d", w.size(), cfg.KeptPullsOut)
		}
	})
}
