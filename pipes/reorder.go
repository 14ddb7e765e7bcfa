package pipes

import (
	"cmp"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/wire"
)

// reorder puts a claimed item's kept frames back in the order of their
// offsets, as its reader pulls them. A sender whose connection was lost
// publishes again the frames the satellite had not confirmed, and frames it
// published meanwhile (buffered by nats.go while it reconnected) may be
// stored before them: out of order, by at most the frames a sender has in
// flight (Config.StoreWindowMax). Held back until the gap fills, they reach
// the receiver's loop in order; a gap that does not fill (frames this
// reader lost in flight) reaches it as a gap, and the loop reads the item
// again (receiver.reread).
type reorder struct {
	next  uint64 // the offset of the next frame in order
	known bool   // next is known: the head came
	limit int    // frames held at most
	held  []*nats.Msg
}

// add takes the next message the reader pulled and returns those that may
// go to the loop now, in order.
func (o *reorder) add(m *nats.Msg, head bool) []*nats.Msg {
	off, n, ok := wire.Place(m.Data)
	switch {
	case !ok:
		return []*nats.Msg{m} // the loop finds it broken
	case head:
		o.next, o.known = off, true
	case !o.known || off <= o.next:
		// In order; or a frame the loop has, which it skips; or data
		// before the head, which it reports.
		o.next = max(o.next, off+uint64(n))
	case len(o.held) < o.limit:
		o.held = append(o.held, m)
		return nil
	default:
		// More out of order than any sender puts in flight: not a
		// reordering. The loop meets the gap.
		return append(o.flush(), m)
	}
	return append([]*nats.Msg{m}, o.release()...)
}

// release returns the held frames that are now in order.
func (o *reorder) release() []*nats.Msg {
	var out []*nats.Msg
	for {
		i := slices.IndexFunc(o.held, func(m *nats.Msg) bool {
			off, _, _ := wire.Place(m.Data)
			return off <= o.next
		})
		if i < 0 {
			return out
		}
		m := o.held[i]
		o.held = slices.Delete(o.held, i, i+1)
		off, n, _ := wire.Place(m.Data)
		o.next = max(o.next, off+uint64(n))
		out = append(out, m)
	}
}

// holding tells whether frames are held back, waiting for earlier ones.
func (o *reorder) holding() bool { return len(o.held) > 0 }

// flush returns every held frame, in the order of their offsets.
func (o *reorder) flush() []*nats.Msg {
	out := o.held
	o.held = nil
	slices.SortStableFunc(out, func(a, b *nats.Msg) int {
		x, _, _ := wire.Place(a.Data)
		y, _, _ := wire.Place(b.Data)
		return cmp.Compare(x, y)
	})
	return out
}
