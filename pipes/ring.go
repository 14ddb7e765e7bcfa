package pipes

// ring holds the last bytes a sender sent live: all that an attached
// receiver may not have written out yet (Config.ringSize), so that the
// sender can keep them in the pipe if that receiver leaves.
type ring struct {
	buf []byte
	end uint64 // offset just past the last byte put
}

func (r *ring) put(off uint64, data []byte, size int) {
	if len(r.buf) < size && off == uint64(len(r.buf)) && off+uint64(len(data)) <= uint64(size) {
		// Not full yet: the ring grows with the item, so that a trigger
		// or a line costs its bytes, not the whole window (allocating
		// the ~9.5 MiB window for every small item cost a sender up to
		// 75 ms of GC on a busy machine). Past an eighth of the window it
		// takes the whole window at once: doubling all the way would
		// leave about a window of garbage on the sender's heap (11 MiB
		// more RSS for a 256 MiB item).
		n := len(r.buf) + len(data)
		if n > cap(r.buf) {
			c := max(2*cap(r.buf), n, 64<<10)
			if c > size/8 {
				c = size
			}
			grown := make([]byte, len(r.buf), c)
			copy(grown, r.buf)
			r.buf = grown
		}
		r.buf = append(r.buf, data...)
		r.end = uint64(n)
		return
	}
	if len(r.buf) < size {
		full := make([]byte, size)
		copy(full, r.buf) // the bytes from 0 on sit where the ring keeps them
		r.buf = full
	}
	for len(data) > 0 {
		i := int(off % uint64(len(r.buf)))
		n := copy(r.buf[i:], data)
		data, off = data[n:], off+uint64(n)
	}
	r.end = off
}

// holds tells whether the ring still has the byte at off.
func (r *ring) holds(off uint64) bool {
	return r.buf != nil && off <= r.end && r.end-off <= uint64(len(r.buf))
}

// get copies the bytes from off on into p, up to the end of the ring's
// backing array or the last byte put, and returns how many.
func (r *ring) get(off uint64, p []byte) int {
	i := int(off % uint64(len(r.buf)))
	n := min(len(p), len(r.buf)-i, int(r.end-off))
	return copy(p, r.buf[i:i+n])
}
