package pipes

import (
	"testing"
	"time"
)

// A receiver given time to come back holds its sender back only when the
// bytes it misses would be lost to the item.
func TestAVanishedListenerBesideATakerDoesNotHoldTheSenderBack(t *testing.T) {
	now := time.Now()
	lost := now.Add(-time.Second)
	tests := []struct {
		name    string
		taken   bool
		members map[string]*member
		slowest uint64
		someone bool
		pending int // unfinished at 100
	}{
		{"a lost listener beside a taker", true, map[string]*member{
			"t": {taker: true, acked: 90, wrote: 90},
			"l": {acked: 10, wrote: 10, lost: lost},
		}, 90, true, 1},
		{"a lost taker", true, map[string]*member{
			"t": {taker: true, acked: 10, wrote: 10, lost: lost},
			"l": {acked: 90, wrote: 90},
		}, 10, true, 2},
		{"lost listeners of an item nobody took", false, map[string]*member{
			"a": {acked: 10, wrote: 10, lost: lost},
			"b": {acked: 90, wrote: 90},
		}, 10, true, 2},
		{"only a lost listener beside a taker that left", true, map[string]*member{
			"l": {acked: 10, wrote: 10, lost: lost},
		}, 0, false, 0},
		{"a listener back in time", true, map[string]*member{
			"t": {taker: true, acked: 90, wrote: 90},
			"l": {acked: 10, wrote: 10},
		}, 10, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &audience{members: tt.members, taken: tt.taken}
			lo, someone := a.slowest()
			if lo != tt.slowest || someone != tt.someone {
				t.Errorf("slowest() = %d, %v; want %d, %v", lo, someone, tt.slowest, tt.someone)
			}
			if n := a.unfinished(100); n != tt.pending {
				t.Errorf("unfinished(100) = %d; want %d", n, tt.pending)
			}
		})
	}
}

// A sender found gone is given Config.Reconnect from when it went; the
// sender of a kept item, from the last frame the satellite stored if that
// is earlier, so a partial item left by a crash long ago is not waited for.
func TestASenderFoundGoneIsWaitedForUntilItsBoundRunsOut(t *testing.T) {
	now := time.Now()
	r := &receiver{cfg: Config{Reconnect: time.Minute}}
	tests := []struct {
		name     string
		lostAt   time.Time
		claim    *claim
		wantLeft time.Duration
	}{
		{"live, just found gone", now, nil, time.Minute},
		{"live, found gone 50 s ago", now.Add(-50 * time.Second), nil, 10 * time.Second},
		{"live, past its bound", now.Add(-2 * time.Minute), nil, -time.Minute},
		{"kept, stored a moment before", now, &claim{storedAt: now.Add(-5 * time.Second)}, 55 * time.Second},
		{"kept, left behind an hour ago", now, &claim{storedAt: now.Add(-time.Hour)}, -59 * time.Minute},
		{"kept, the satellite did not say when", now, &claim{}, time.Minute},
		{"kept, stored after it was found gone", now.Add(-10 * time.Second), &claim{storedAt: now}, 50 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := &inItem{lostAt: tt.lostAt, claim: tt.claim}
			if got := r.graceLeft(it, now); got != tt.wantLeft {
				t.Errorf("graceLeft = %v; want %v", got, tt.wantLeft)
			}
		})
	}
}
