package pipes

import (
	"sync"
	"time"

	"github.com/skypipe/skypipe/internal/wire"
)

// The live sender's pacing: who is attached to the item being sent, how
// far each has written it out and taken it in, and from where the item
// must be kept when receivers leave before its end.

// memberState is where a receiver attached to an item stands.
type memberState uint8

const (
	memberActive  memberState = iota // acking as it goes
	memberProbing                    // quiet for a while: a probe asks whether it lives
)

// member is a receiver attached to the item being sent.
type member struct {
	state    memberState
	taker    bool   // the taker the item was handed to, not a listener
	from     uint64 // where it started: 0 if it answered the roll call, else its join point
	acked    uint64 // where the window counts from: from, then what it took in
	wrote    uint64 // what it acked writing out; length+1 once it wrote the end
	progress time.Time
	// lost: when it was first found gone, while the sender gives it
	// time to come back (Config.Reconnect); zero otherwise.
	lost time.Time
}

// Synthetic control kinds, from the sender's own probes and its watch of
// the connection.
const (
	ctlDead        = 'X' // the receiver did not answer: gone
	ctlAlive       = 'Y' // the receiver answered: slow, not gone
	ctlReconnected = 'Z' // the connection was lost and is back
)

// audience is the receivers of one item being sent. Its owner, the sender's
// loop, feeds it control messages in the order they came.
type audience struct {
	members  map[string]*member
	claimant string // a receiver reading the kept item from the store
	// taken: a taker took the item. It is that taker's alone: listeners
	// get a copy, and if the taker leaves before the end, the rest is kept
	// for the next taker, whoever listens.
	taken bool
	// keep says from where the item must be kept: the lowest offset a
	// departed receiver did not write out and that no remaining receiver
	// attached before it will.
	keep struct {
		due  bool
		from uint64
	}
	endOut bool // a receiver wrote out the end of the item
	// offered is the item's length if it rode whole with its offer: its
	// taker may write it all out before a byte of it goes live, so an ack
	// of its last byte is not one of its end.
	offered uint64
	// closed: the end went out live, so a receiver that joins now cannot
	// get it and is not waited for.
	closed bool
}

func newAudience() audience { return audience{members: map[string]*member{}} }

// apply takes in one control message; sent is how many bytes of the item
// went out so far.
func (a *audience) apply(cm wire.Ctl, sent uint64, now time.Time) {
	m := a.members[cm.RID]
	switch cm.Kind {
	case wire.Join:
		if m != nil || cm.RID == a.claimant || a.closed {
			return // known, reading the store, or too late: the end went out
		}
		at := min(cm.Offset, sent)
		a.members[cm.RID] = &member{from: at, acked: at, progress: now}
	case wire.Take:
		a.taken = true
		a.members[cm.RID] = &member{taker: true, progress: now}
	case wire.Ack:
		if a.wroteEnd(cm.Offset, sent) {
			a.endOut = true
		}
		if m != nil && (cm.Offset > m.wrote || cm.Accepted > m.acked) {
			m.wrote = max(m.wrote, cm.Offset)
			m.acked, m.progress, m.state = max(m.acked, cm.Accepted), now, memberActive
			m.lost = time.Time{}
		}
	case ctlAlive:
		if m != nil {
			m.progress, m.state, m.lost = now, memberActive, time.Time{}
		}
	case wire.Claim:
		a.claimant = cm.RID
		delete(a.members, cm.RID)
	case wire.Leave, ctlDead:
		if m == nil {
			return
		}
		at := max(m.wrote, m.from) // a leave on the item's inbox says what it wrote out
		if cm.Kind == wire.Leave && cm.Offset > at {
			at = cm.Offset
		}
		delete(a.members, cm.RID)
		a.departed(at, sent, m.taker)
	}
}

// departed notes that a receiver left having written the item out up to
// at. If it was the item's taker, or if no remaining receiver was there
// before at, nobody will take the bytes from at on: they must be kept,
// from at.
func (a *audience) departed(at, sent uint64, taker bool) {
	if a.wroteEnd(at, sent) { // the item is delivered
		return
	}
	if a.taken && !taker {
		return // a listener's copy: the taker's bytes are the item
	}
	for _, m := range a.members {
		if !a.taken && m.from <= at {
			return // m writes the bytes from at on, or departs itself
		}
	}
	if !a.keep.due || at < a.keep.from {
		a.keep.from = at
	}
	a.keep.due = true
}

// wroteEnd tells whether a receiver that wrote out the item up to at (an
// ack's offset) wrote its end: the length of the item, sent or offered,
// plus one.
func (a *audience) wroteEnd(at, sent uint64) bool { return at > max(sent, a.offered) }

// paces tells whether m holds the sender back. A receiver given time to
// come back does, if the bytes it misses would be lost to the item: the
// taker, or a listener of an item nobody took. A listener beside a taker
// does not: it gets what goes by live, and what goes by while it is away
// it finds missing when it asks for it again.
func (a *audience) paces(m *member) bool {
	return m.lost.IsZero() || m.taker || !a.taken
}

// slowest is the position of the slowest attached receiver that paces the
// sender.
func (a *audience) slowest() (uint64, bool) {
	var lo uint64
	first := true
	for _, m := range a.members {
		if !a.paces(m) {
			continue
		}
		if first || m.acked < lo {
			lo, first = m.acked, false
		}
	}
	return lo, !first
}

// spare tells whether a receiver found gone is still given time to come
// back (its connection may be being re-established): grace from when it
// was first found gone. Meanwhile it counts as attached, and is probed
// again after the usual quiet.
func (a *audience) spare(rid string, now time.Time, grace time.Duration) bool {
	m := a.members[rid]
	if m == nil || grace <= 0 {
		return false
	}
	if m.lost.IsZero() {
		m.lost = now
	}
	if now.Sub(m.lost) >= grace {
		return false
	}
	m.progress, m.state = now, memberActive
	return true
}

// restart gives every receiver a fresh IdleProbe before it is probed:
// after a lost connection, nobody's silence means anything yet.
func (a *audience) restart(now time.Time) {
	for _, m := range a.members {
		m.progress, m.state = now, memberActive
	}
}

// unfinished counts the receivers that have not written out the end of an
// item of length n, but those that do not pace the sender.
func (a *audience) unfinished(n uint64) int {
	pending := 0
	for _, m := range a.members {
		if m.wrote <= n && a.paces(m) {
			pending++
		}
	}
	return pending
}

// stalled returns the receivers that made no progress for idle, and marks
// them probed.
func (a *audience) stalled(now time.Time, idle time.Duration) []string {
	var out []string
	for rid, m := range a.members {
		if m.state == memberActive && now.Sub(m.progress) >= idle {
			m.state = memberProbing
			out = append(out, rid)
		}
	}
	return out
}

// ctlQueue is an unbounded FIFO of control messages: whoever pushes never
// waits, and ready has a value whenever the queue may be non-empty.
type ctlQueue struct {
	mu    sync.Mutex
	items []wire.Ctl
	ready chan struct{}
}

func newCtlQueue() ctlQueue { return ctlQueue{ready: make(chan struct{}, 1)} }

func (q *ctlQueue) push(m wire.Ctl) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *ctlQueue) pop() (wire.Ctl, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return wire.Ctl{}, false
	}
	m := q.items[0]
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return m, true
}
