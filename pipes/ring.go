package pipes

// ring holds the last bytes a sender sent live: all that an attached
// receiver may not have written out yet (Config.ringSize), so that the
// sender can keep them in the pipe if that receiver leaves.
type ring struct {
	buf []byte
	end uint64 // offset just past the last byte put
}

func (r *ring) put(off uint64, data []byte, size int) {
	if r.buf == nil {
		r.buf = make([]byte, size)
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
