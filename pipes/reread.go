package pipes

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/skypipe/skypipe/internal/wire"
)

// rereadable is what Send looks for in its reader to read a kept item's
// bytes again instead of keeping copies of them: *os.File has it, and so
// can a reader that wraps one (cmd/skypipe's counting reader).
type rereadable interface {
	io.ReaderAt
	io.Seeker
	Stat() (os.FileInfo, error)
}

// input is a kept item's input when it is a regular file, which can be
// read again at an offset. A store writer that must publish the frames a
// lost connection left unconfirmed again (storeWriter.retain) then keeps
// each one's header, not a copy of its bytes, and reads them again from
// here only if the connection is lost: a sender of a file holds no copies
// (2 MiB at a store window of 8 frames, 16 at its cap) and copies none of
// its bytes a second time.
//
// A file that changed since is caught by the frame's checksum, which was
// sealed over the bytes first read: the writer then fails, and the item is
// given up, rather than stored with bytes the sender never read.
type input struct {
	r    io.ReaderAt
	base int64  // the file's offset of the item's first byte
	buf  []byte // the frame read again: storeWriter.mu's
}

// rereadInput returns r as an input to read again, or nil: for anything
// but a regular file (a pipe, a socket, a terminal, a device), and for
// one whose offset cannot be asked.
func rereadInput(r io.Reader) *input {
	f, ok := r.(rereadable)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	base, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil
	}
	return &input{r: f, base: base}
}

// frame reads again the frame sealed as hdr over size bytes of the item,
// into the input's buffer, which the next call reuses.
func (in *input) frame(hdr *[wire.HeaderLen]byte, size int) ([]byte, error) {
	if cap(in.buf) < wire.HeaderLen+size {
		in.buf = make([]byte, wire.HeaderLen+max(size, chunkSize))
	}
	buf := in.buf[:wire.HeaderLen+size]
	copy(buf, hdr[:])
	off := binary.BigEndian.Uint64(hdr[8:16])
	if off > math.MaxInt64-uint64(in.base)-uint64(size) {
		return nil, fmt.Errorf("%w: item offset %d out of the file's range", ErrInputChanged, off)
	}
	if size > 0 {
		if _, err := in.r.ReadAt(buf[wire.HeaderLen:], in.base+int64(off)); err != nil {
			return nil, fmt.Errorf("%w: reading its bytes %d to %d again: %v", ErrInputChanged, off, off+uint64(size), err)
		}
	}
	// The checksum was sealed over the bytes first read: a mismatch is the
	// file's change, not corruption on the way.
	if _, err := wire.Parse(buf); err != nil {
		return nil, fmt.Errorf("%w: its bytes %d to %d differ from those first read", ErrInputChanged, off, off+uint64(size))
	}
	return buf, nil
}
