// Package linemux writes the bytes of several items to one output, never
// one inside another's line.
//
// While one item's line is open on the output (its last byte written was
// not '\n'), bytes of other items wait in their own buffer, and the items
// that wait take turns, first come first served; an item writes only whole
// lines while others wait, so none starves.
//
// Waiting bytes count as taken in, up to HoldLimit per item, so that a
// sender is not held back by a line another sender has not finished: two
// receivers waiting on each other's open lines would otherwise hold both
// senders forever. Beyond HoldLimit a live item's bytes still wait, up to
// MaxHeld, without counting as taken in, so its sender slows down until the
// open line ends. The open line is cut (what waits is written out) only
// when its item sends nothing for LineStall (its sender stopped mid-line),
// or when the line is itself longer than HoldLimit: lines are kept whole up
// to HoldLimit bytes. A cut line is ended with '\n' before the others'
// bytes, so that no line holds bytes of two items: the rest of the cut
// line comes later as a line of its own. An item read from the store (not
// Live) waits up to HoldLimit.
//
// A Mux does not talk to senders: it returns the acks due (Acks) and the
// items whose end it wrote out (Ended), and its owner acts on them.
package linemux

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// Limits shape a Mux.
type Limits struct {
	// HoldLimit is the longest line kept whole, and how many bytes of an
	// item count as taken in while they wait.
	HoldLimit int
	// MaxHeld bounds the bytes of a live item waiting behind an open line;
	// its sender's credit runs out before.
	MaxHeld int
	// LineStall: an open line whose item sent nothing for this long is
	// cut.
	LineStall time.Duration
}

// Stream is one item's way onto the output.
type Stream struct {
	ID string
	// Live: the item comes from a live sender, which wants acks; its
	// bytes may wait beyond HoldLimit.
	Live bool
	// Written is how many of the item's bytes are on the output, counted
	// from the offset the Stream was opened at.
	Written uint64

	held   []byte
	ending bool // the end arrived while bytes waited
	queued bool // in the waiting queue
	ended  bool
}

// Taken is how far the stream's bytes count as taken in: written, and
// waiting up to limit.
func (s *Stream) taken(limit int) uint64 { return s.Written + uint64(min(len(s.held), limit)) }

// Held is how many of its bytes wait behind another item's line.
func (s *Stream) Held() int { return len(s.held) }

// Ack tells a live item's sender what was written out and taken in.
type Ack struct {
	Stream  *Stream
	Written uint64
	Taken   uint64
}

// OutputError is a failed write to the output.
type OutputError struct {
	Stream *Stream
	Err    error
}

func (e *OutputError) Error() string { return fmt.Sprintf("item %s: %v", e.Stream.ID, e.Err) }
func (e *OutputError) Unwrap() error { return e.Err }

// Mux is the output of one receiver. It is not safe for concurrent use.
type Mux struct {
	w         io.Writer
	lim       Limits
	owner     *Stream // whose line is open on the output
	ownerAt   time.Time
	ownerLine int // how long the open line is so far
	waiting   []*Stream
	acks      []Ack
	ended     []*Stream
	bytes     uint64
}

// New returns a Mux writing to w.
func New(w io.Writer, lim Limits) *Mux { return &Mux{w: w, lim: lim} }

// Bytes is how many bytes the Mux wrote out.
func (m *Mux) Bytes() uint64 { return m.bytes }

// Write puts bytes of s on the output, or makes them wait.
func (m *Mux) Write(s *Stream, data []byte, now time.Time) error {
	if s.ended {
		return fmt.Errorf("linemux: write to ended item %s", s.ID)
	}
	if m.owner != nil && m.owner != s {
		if m.mayHold(s, len(data), now) {
			m.hold(s, data)
			return nil
		}
		if err := m.cut(); err != nil {
			return err
		}
	}
	if len(s.held) > 0 { // what waits goes first
		data = append(s.held, data...)
		s.held = nil
	}
	if err := m.emitLines(s, data, now); err != nil {
		return err
	}
	return m.flush(now)
}

// End says the last byte of s arrived: s ends once all of it is written
// out, now or after what waits.
func (m *Mux) End(s *Stream, now time.Time) error {
	if len(s.held) > 0 {
		s.ending = true
		return nil
	}
	m.finish(s)
	return m.flush(now)
}

// Drop takes s off the output without ending it (it broke, or its receiver
// left it): what of it waits is discarded, and a line it left open is
// closed with '\n' if close says so, so that the next item's bytes start
// a line of their own. It reports whether it wrote that '\n'.
func (m *Mux) Drop(s *Stream, close bool, now time.Time) (bool, error) {
	s.held, s.ending, s.ended = nil, false, true
	m.unqueue(s)
	wrote := false
	if m.owner == s {
		m.owner = nil
		if close {
			if _, err := m.w.Write([]byte{'\n'}); err != nil {
				return false, &OutputError{Stream: s, Err: err}
			}
			m.bytes++
			wrote = true
		}
	}
	return wrote, m.flush(now)
}

// Tick writes out what waits behind an open line whose item stopped
// sending.
func (m *Mux) Tick(now time.Time) error {
	if len(m.waiting) == 0 || !m.lineStalled(now) {
		return nil
	}
	if err := m.cut(); err != nil {
		return err
	}
	return m.flush(now)
}

// cut ends the open line with '\n', which is not a byte of its item, so
// that another item's bytes may follow.
func (m *Mux) cut() error {
	s := m.owner
	if s == nil {
		return nil
	}
	m.owner = nil
	if _, err := m.w.Write([]byte{'\n'}); err != nil {
		return &OutputError{Stream: s, Err: err}
	}
	m.bytes++
	return nil
}

// Acks returns the acks due since the last call.
func (m *Mux) Acks() []Ack {
	a := m.acks
	m.acks = m.acks[:0:0]
	return a
}

// Ended returns the streams whose end was written out since the last call.
func (m *Mux) Ended() []*Stream {
	e := m.ended
	m.ended = nil
	return e
}

// Waiting tells whether bytes of any item wait.
func (m *Mux) Waiting() bool { return len(m.waiting) > 0 }

// mayHold tells whether n more bytes of s may wait behind the open line.
func (m *Mux) mayHold(s *Stream, n int, now time.Time) bool {
	held := len(s.held) + n
	if held <= m.lim.HoldLimit {
		return true
	}
	return s.Live && held <= m.lim.MaxHeld && !m.lineStalled(now)
}

// lineStalled tells whether the open line may be cut: its item stopped
// sending, or the line is longer than HoldLimit.
func (m *Mux) lineStalled(now time.Time) bool {
	return m.owner != nil && (now.Sub(m.ownerAt) >= m.lim.LineStall || m.ownerLine > m.lim.HoldLimit)
}

// hold keeps bytes of s until the open line ends.
func (m *Mux) hold(s *Stream, data []byte) {
	s.held = append(s.held, data...)
	if !s.queued {
		s.queued = true
		m.waiting = append(m.waiting, s)
	}
	m.ack(s)
}

func (m *Mux) ack(s *Stream) {
	if !s.Live {
		return
	}
	a := Ack{Stream: s, Written: s.Written, Taken: s.taken(m.lim.HoldLimit)}
	if n := len(m.acks); n > 0 && m.acks[n-1].Stream == s {
		m.acks[n-1] = a // the newer says all the older did
		return
	}
	m.acks = append(m.acks, a)
}

// emitLines writes bytes of s; while other items wait, only up to its last
// line end, and the rest waits its turn.
func (m *Mux) emitLines(s *Stream, data []byte, now time.Time) error {
	if m.othersWait(s) {
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 && i+1 < len(data) {
			rest := data[i+1:]
			if err := m.emit(s, data[:i+1], now); err != nil {
				return err
			}
			m.hold(s, rest)
			return nil
		}
	}
	return m.emit(s, data, now)
}

func (m *Mux) othersWait(s *Stream) bool {
	for _, w := range m.waiting {
		if w != s {
			return true
		}
	}
	return false
}

func (m *Mux) emit(s *Stream, data []byte, now time.Time) error {
	if len(data) == 0 {
		return nil
	}
	n, err := m.w.Write(data)
	s.Written += uint64(n)
	m.bytes += uint64(n)
	if err != nil {
		return &OutputError{Stream: s, Err: err}
	}
	if i := bytes.LastIndexByte(data, '\n'); i == len(data)-1 {
		m.owner = nil
	} else {
		if m.owner != s || i >= 0 {
			m.ownerLine = 0
		}
		m.owner, m.ownerAt = s, now
		m.ownerLine += len(data) - (i + 1)
	}
	m.ack(s)
	return nil
}

// finish ends s: its line, if open, no longer holds the others back.
func (m *Mux) finish(s *Stream) {
	s.ending, s.ended = false, true
	if m.owner == s {
		m.owner = nil
	}
	m.ended = append(m.ended, s)
}

func (m *Mux) unqueue(s *Stream) {
	if !s.queued {
		return
	}
	s.queued = false
	for i, w := range m.waiting {
		if w == s {
			m.waiting = append(m.waiting[:i], m.waiting[i+1:]...)
			return
		}
	}
}

// flush lets waiting items write, in turn, while the output is at a line
// boundary.
func (m *Mux) flush(now time.Time) error {
	for m.owner == nil && len(m.waiting) > 0 {
		next := m.waiting[0]
		m.waiting = m.waiting[1:]
		next.queued = false
		data := next.held
		next.held = nil
		if err := m.emitLines(next, data, now); err != nil {
			return err
		}
		if next.ending && len(next.held) == 0 {
			m.finish(next)
		}
	}
	return nil
}
