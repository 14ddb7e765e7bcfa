package pipes

import (
	"fmt"
	"testing"
)

func TestRingKeepsTheLastWindow(t *testing.T) {
	for _, chunk := range []int{300, 1000, 7} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) { ringKeepsTheLastWindow(t, chunk) })
	}
}

// TestRingOfASmallItemIsSmall: the ring grows with what it holds, up to
// its size.
func TestRingOfASmallItemIsSmall(t *testing.T) {
	var r ring
	r.put(0, []byte("hello\n"), 10<<20)
	if cap(r.buf) > 64<<10 {
		t.Fatalf("a ring holding 6 bytes has room for %d", cap(r.buf))
	}
	p := make([]byte, 16)
	if n := r.get(0, p); string(p[:n]) != "hello\n" || !r.holds(0) {
		t.Fatalf("read back %q", p[:n])
	}
}

func ringKeepsTheLastWindow(t *testing.T, chunk int) {
	const size = 1000
	var r ring
	data := make([]byte, chunk)
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

// TestRingOfABigItemTakesTheWindowOnce: a ring that outgrows an eighth of
// its size takes the whole size at once, so that all the buffers it ever
// had add up to little more than its size (doubling to the end would add
// up to about twice as much, garbage the sender's heap carries).
func TestRingOfABigItemTakesTheWindowOnce(t *testing.T) {
	size := DefaultConfig().ringSize()
	var r ring
	data := make([]byte, chunkSize)
	total, last := 0, 0
	for off := uint64(0); off < 2*uint64(size); off += uint64(len(data)) {
		r.put(off, data, size)
		if c := cap(r.buf); c != last {
			total, last = total+c, c
		}
	}
	if len(r.buf) != size {
		t.Fatalf("the ring of a big item holds %d bytes, want %d", len(r.buf), size)
	}
	if total > size+size/4 {
		t.Fatalf("the ring's buffers add up to %d bytes for a size of %d", total, size)
	}
}
