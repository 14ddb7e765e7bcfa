package pipes

import (
	"fmt"
	"testing"
)

// ringByte is the test item's byte at off.
func ringByte(off uint64) byte { return byte(off*31 + off/251) }

// ringPut puts the test item's bytes from off on, chunk bytes at a time,
// up to end, at size; it returns end.
func ringPut(r *ring, off, end uint64, chunk, size int) uint64 {
	for off < end {
		data := make([]byte, min(uint64(chunk), end-off))
		for i := range data {
			data[i] = ringByte(off + uint64(i))
		}
		r.put(off, data, size)
		off += uint64(len(data))
	}
	return off
}

// ringHolds checks that r holds the item from from to its end, reading it
// back through p of each size given, and nothing before from.
func ringHolds(t *testing.T, r *ring, from uint64) {
	t.Helper()
	if !r.holds(from) || !r.holds(r.end) {
		t.Fatalf("the ring (%d to %d) does not hold %d to %d", r.start(), r.end, from, r.end)
	}
	for _, n := range []int{4093, ringBlock + 3} {
		p := make([]byte, n)
		for at := from; at < r.end; {
			got := r.get(at, p)
			if got == 0 {
				t.Fatalf("nothing read at %d", at)
			}
			for i := range got {
				if p[i] != ringByte(at+uint64(i)) {
					t.Fatalf("byte %d reads back %d, want %d", at+uint64(i), p[i], ringByte(at+uint64(i)))
				}
			}
			at += uint64(got)
		}
	}
}

func TestRingKeepsTheLastSizeAndLittleMore(t *testing.T) {
	const size = 5*ringBlock/2 + 100
	for _, chunk := range []int{7, 1000, ringBlock, ringBlock + 1, 256 << 10} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			var r ring
			end := ringPut(&r, 0, 4*size+13, chunk, size)
			ringHolds(t, &r, end-size)
			if r.holds(end + 1) {
				t.Fatalf("holds a byte past the end")
			}
			if s := r.start(); s < end-size-2*ringBlock {
				t.Fatalf("holds from %d, more than the size and two blocks before the end %d", s, end)
			}
			if r.holds(r.start() - 1) {
				t.Fatalf("holds the byte before its start")
			}
		})
	}
}

// TestRingOfASmallItemIsSmall: the ring grows with what it holds, a block
// at a time.
func TestRingOfASmallItemIsSmall(t *testing.T) {
	var r ring
	r.put(0, []byte("hello\n"), 10<<20)
	if len(r.blocks) != 1 {
		t.Fatalf("a ring holding 6 bytes has %d blocks", len(r.blocks))
	}
	p := make([]byte, 16)
	if n := r.get(0, p); string(p[:n]) != "hello\n" || !r.holds(0) {
		t.Fatalf("read back %q", p[:n])
	}
}

// TestRingOfABigItemAllocatesItsSizeOnce: the blocks a ring ever
// allocated add up to its size and a block or two: it reuses them, and
// leaves nothing for the sender's collector.
func TestRingOfABigItemAllocatesItsSizeOnce(t *testing.T) {
	cfg := DefaultConfig()
	size := cfg.ringSize(cfg.LiveWindow)
	var r ring
	seen := map[*byte]bool{}
	data := make([]byte, chunkSize)
	for off := uint64(0); off < 3*uint64(size); off += uint64(len(data)) {
		r.put(off, data, size)
		for _, b := range r.blocks {
			seen[&b[0]] = true
		}
	}
	if len(seen) != len(r.blocks) || len(r.blocks)*ringBlock > size+2*ringBlock {
		t.Fatalf("the ring allocated %d blocks and holds %d, of %d bytes, for a size of %d", len(seen), len(r.blocks), ringBlock, size)
	}
}

// TestRingGivenALargerSizeKeepsWhatItHeld: a ring that wrapped at one size
// and is then given a larger one (the sender's window grew) still holds
// every byte it held, and from then on fills the larger size.
func TestRingGivenALargerSizeKeepsWhatItHeld(t *testing.T) {
	for _, tc := range []struct {
		name        string
		small, big  int
		chunk       int
		before, all uint64 // bytes put at the small size, in all
	}{
		{"wrapped, then larger", 3 * ringBlock, 7 * ringBlock, 256 << 10, 10 * ringBlock, 30 * ringBlock},
		{"wrapped mid-block, odd sizes and chunks", 2*ringBlock + 77, 5*ringBlock + 3, 1000, 9*ringBlock + 5, 20 * ringBlock},
		{"not wrapped yet", 8 * ringBlock, 16 * ringBlock, 4096, 3 * ringBlock, 40 * ringBlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r ring
			off := ringPut(&r, 0, tc.before, tc.chunk, tc.small)
			held := r.start()
			ringHolds(t, &r, held)
			for off < tc.all {
				off = ringPut(&r, off, off+uint64(tc.chunk), tc.chunk, tc.big)
				want := held
				if off > uint64(tc.big) {
					want = max(held, off-uint64(tc.big)) // at least the last big bytes, from what it held on
				}
				if r.start() > want {
					t.Fatalf("at %d the ring holds from %d, want from %d at most", off, r.start(), want)
				}
			}
			ringHolds(t, &r, r.start())
			if s := r.start(); s < off-uint64(tc.big)-2*ringBlock {
				t.Fatalf("holds from %d, more than the larger size and two blocks before the end %d", s, off)
			}
		})
	}
}
