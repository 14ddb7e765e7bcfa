package pipes

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// The output of a receiver: bytes of several items, never one inside
// another's line. While one item's line is open on the output (its last
// byte written was not '\n'), bytes of other items wait in their own
// buffer, and the items that wait take turns, first come first served; an
// item writes only whole lines while others wait, so none starves.
//
// Waiting bytes are acknowledged as taken in, up to holdLimit per item, so
// that a sender is not held back by a line that another sender has not
// finished: two receivers waiting on each other's open lines would hold
// both senders forever. Beyond holdLimit a live item's bytes still wait,
// unacknowledged, so its sender slows down until the open line ends. The
// open line is cut (what waits is written out) only when its sender makes
// no progress for lineStall (it stopped mid-line), or when the line is
// itself longer than holdLimit: lines are kept whole up to holdLimit bytes.
// A kept item, read from the store at the receiver's pace, waits up to
// holdLimit.

// holdLimit is how many bytes of an item may wait behind an open line,
// acknowledged: the longest line kept whole. Senders keep this much more
// in their ring.
const holdLimit = 1 << 20

// maxHeld bounds the bytes of a live item waiting behind an open line: its
// sender's credit runs out before.
const maxHeld = holdLimit + liveWindow + 2*chunkSize

// lineStall: an open line whose item sent nothing for this long is cut, so
// that a sender stopped mid-line (a log writer between two writes) does not
// hold everyone else back.
const lineStall = time.Second

// write puts an item's bytes on the output, or makes them wait.
func (r *receiver) write(it *inItem, data []byte) error {
	if r.owner != "" && r.owner != it.id && r.mayHold(it, len(data)) {
		r.hold(it, data)
		return nil
	}
	if len(it.held) > 0 { // what waits goes first
		data = append(it.held, data...)
		it.held = nil
	}
	if err := r.emitLines(it, data); err != nil {
		return err
	}
	return r.flushHeld()
}

// mayHold tells whether n more bytes of it may wait behind the open line.
func (r *receiver) mayHold(it *inItem, n int) bool {
	held := len(it.held) + n
	if held <= holdLimit {
		return true
	}
	return it.claim == nil && held <= maxHeld && !r.lineStalled(time.Now())
}

// lineStalled tells whether the open line may be cut: its item stopped
// sending, or the line is longer than holdLimit.
func (r *receiver) lineStalled(now time.Time) bool {
	return r.owner != "" && (now.Sub(r.ownerAt) >= lineStall || r.ownerLine > holdLimit)
}

// cutStalledLine writes out what waits behind an open line whose item
// stopped sending.
func (r *receiver) cutStalledLine(now time.Time) error {
	if len(r.waiting) == 0 || !r.lineStalled(now) {
		return nil
	}
	r.owner = ""
	return r.flushHeld()
}

// taken is how far an item's bytes count as taken in: written, and
// waiting up to holdLimit.
func taken(it *inItem) uint64 {
	return it.written + uint64(min(len(it.held), holdLimit))
}

// hold keeps bytes of an item until the open line ends, and tells its
// sender they are taken in.
func (r *receiver) hold(it *inItem, data []byte) {
	it.held = append(it.held, data...)
	if !it.queued {
		it.queued = true
		r.waiting = append(r.waiting, it)
	}
	if it.claim == nil {
		r.sendAck(it.id, it.written, taken(it))
	}
}

// emitLines writes an item's bytes; while other items wait, only up to its
// last line end, and the rest waits its turn.
func (r *receiver) emitLines(it *inItem, data []byte) error {
	if r.othersWait(it) {
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 && i+1 < len(data) {
			rest := data[i+1:]
			if err := r.emit(it, data[:i+1]); err != nil {
				return err
			}
			r.hold(it, rest)
			return nil
		}
	}
	return r.emit(it, data)
}

func (r *receiver) othersWait(it *inItem) bool {
	for _, w := range r.waiting {
		if w != it {
			return true
		}
	}
	return false
}

func (r *receiver) emit(it *inItem, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	n, err := r.w.Write(data)
	it.written += uint64(n)
	r.res.Bytes += uint64(n)
	if err != nil {
		return &ItemError{Item: it.id, Written: it.written, Err: fmt.Errorf("%w: %v", ErrOutput, err)}
	}
	if i := bytes.LastIndexByte(data, '\n'); i == len(data)-1 {
		r.owner = ""
	} else {
		if r.owner != it.id || i >= 0 {
			r.ownerLine = 0
		}
		r.owner, r.ownerAt = it.id, time.Now()
		r.ownerLine += len(data) - (i + 1)
	}
	if it.claim == nil {
		r.sendAck(it.id, it.written, taken(it))
	}
	return nil
}

// flushHeld lets waiting items write, in turn, while the output is at a
// line boundary.
func (r *receiver) flushHeld() error {
	for r.owner == "" && len(r.waiting) > 0 {
		next := r.waiting[0]
		r.waiting = r.waiting[1:]
		next.queued = false
		data := next.held
		next.held = nil
		if err := r.emitLines(next, data); err != nil {
			return err
		}
		if next.heldEnd && len(next.held) == 0 {
			next.heldEnd = false
			if err := r.end(context.Background(), next); err != nil {
				return err
			}
		}
	}
	return nil
}
