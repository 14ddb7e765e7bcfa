package pipes

import "testing"

func TestRingKeepsTheLastWindow(t *testing.T) {
	const size = 1000
	var r ring
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var off uint64
	for off < 2*size {
		r.put(off, data, size)
		off += uint64(len(data))
	}
	for _, tc := range []struct {
		from  uint64
		holds bool
	}{
		{off - size, true},
		{off - size + 100, true},
		{off, true}, // nothing to read, but nothing lost either
		{off - size - 1, false},
		{off + 1, false},
	} {
		if got := r.holds(tc.from); got != tc.holds {
			t.Errorf("holds(%d) = %v, want %v (end %d)", tc.from, got, tc.holds, off)
		}
	}
	// Everything from off-size on reads back, chunk by chunk.
	p := make([]byte, 128)
	for from := off - size; from < off; {
		n := r.get(from, p)
		if n == 0 {
			t.Fatalf("nothing read at %d", from)
		}
		for i := 0; i < n; i++ {
			if want := data[(from+uint64(i))%uint64(len(data))]; p[i] != want {
				t.Fatalf("byte %d: got %d want %d", from+uint64(i), p[i], want)
			}
		}
		from += uint64(n)
	}
}
