package pipes

import "slices"

// ringBlock is the unit a ring allocates: a trigger or a line costs one
// block, not the whole window.
const ringBlock = 64 << 10

// ring holds the last bytes a sender sent live: all that an attached
// receiver may not have written out yet (Config.ringSize), so that the
// sender can keep them if that receiver leaves.
//
// It is a circular queue of blocks of ringBlock bytes, by their place in
// the item: it grows a block at a time as the item does, until the blocks
// but the oldest hold the size asked for, then reuses its oldest block for
// the newest. A size that grows (the sender's window grew) only lets it
// hold more blocks: nothing is laid out again or left to the collector (a
// ring of one contiguous buffer, copied into a larger one as the window
// doubled, took a sender across a WAN from 30 to 48 MiB RSS).
type ring struct {
	blocks [][]byte // circular: blocks[head] holds the item's block number first
	head   int
	first  uint64
	from   uint64 // offset of the first byte ever put
	end    uint64 // offset just past the last byte put
}

// put adds the bytes of the item at off, which is where the last put
// ended, and keeps at least the last size bytes.
func (r *ring) put(off uint64, data []byte, size int) {
	if len(r.blocks) == 0 {
		r.first, r.from = off/ringBlock, off
	}
	for len(data) > 0 {
		b := off / ringBlock
		if n := len(r.blocks); b == r.first+uint64(n) { // a new block
			switch {
			case n > 0 && (n-1)*ringBlock >= size:
				// The blocks but the oldest hold size bytes: the
				// oldest becomes the newest.
				r.first++
				r.head = (r.head + 1) % n
			case r.head == 0:
				r.blocks = append(r.blocks, make([]byte, ringBlock))
			default: // the newest goes just before the oldest
				r.blocks = slices.Insert(r.blocks, r.head, make([]byte, ringBlock))
				r.head++
			}
		}
		i := int(off % ringBlock)
		n := copy(r.block(b)[i:], data)
		data, off = data[n:], off+uint64(n)
	}
	r.end = off
}

func (r *ring) block(b uint64) []byte {
	return r.blocks[(r.head+int(b-r.first))%len(r.blocks)]
}

// start is the first offset the ring holds.
func (r *ring) start() uint64 { return max(r.first*ringBlock, r.from) }

// holds tells whether the ring still has the byte at off.
func (r *ring) holds(off uint64) bool {
	return len(r.blocks) > 0 && off >= r.start() && off <= r.end
}

// get copies the bytes from off on into p, up to the end of off's block or
// the last byte put, and returns how many.
func (r *ring) get(off uint64, p []byte) int {
	i := int(off % ringBlock)
	n := min(len(p), ringBlock-i, int(r.end-off))
	return copy(p, r.block(off / ringBlock)[i:i+n])
}
