package pipes

import (
	"bytes"
	"context"
	"fmt"
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
// both senders forever. Past holdLimit (a line that long, or a sender that
// stopped mid-line) the waiting bytes are written out anyway: lines are
// kept whole up to holdLimit bytes.

// holdLimit is how many bytes of an item may wait behind an open line: the
// longest line kept whole. Senders keep this much more in their ring.
const holdLimit = 1 << 20

// write puts an item's bytes on the output, or makes them wait.
func (r *receiver) write(it *inItem, data []byte) error {
	if r.owner != "" && r.owner != it.id && len(it.held)+len(data) <= holdLimit {
		r.hold(it, data)
		return nil
	}
	if len(it.held) > 0 { // over holdLimit: what waits goes first
		data = append(it.held, data...)
		it.held = nil
	}
	if err := r.emitLines(it, data); err != nil {
		return err
	}
	return r.flushHeld()
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
		r.sendAck(it.id, it.written, it.written+uint64(len(it.held)))
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
	if data[len(data)-1] == '\n' {
		r.owner = ""
	} else {
		r.owner = it.id
	}
	if it.claim == nil {
		r.sendAck(it.id, it.written, it.written+uint64(len(it.held)))
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
