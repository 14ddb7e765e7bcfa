// Package wire is skypipe's wire format: the frames an item travels as, the
// control messages between receivers and senders, and the subjects of a
// pipe. It is what every skypipe, and anyone with a satellite's token,
// reads and writes, so its parsers are fuzzed (frame_test.go, ctl_test.go).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A frame is one message of an item, live or kept: a 16-byte header followed
// by the chunk's bytes.
//
//	byte 0      version (Version)
//	byte 1      flags (FlagEnd, FlagKept, FlagLineStart, FlagAbort)
//	bytes 2-3   zero
//	bytes 4-7   CRC-32C of bytes 0-3, 8-15 and the chunk, big-endian
//	bytes 8-15  offset of the chunk's first byte in the item, big-endian;
//	            in the end frame, the item's length
//
// The header sits in the payload, not in NATS headers, so that a sender can
// read stdin straight into a reused buffer behind it and publish that buffer
// with no per-chunk allocation.
const (
	HeaderLen = 16
	Version   = 1

	FlagEnd       = 1 << 0 // the item ends here: no chunk follows
	FlagKept      = 1 << 1 // on a live frame: the item is also kept in the pipe
	FlagLineStart = 1 << 2 // the chunk starts a line: the byte before it is '\n'
	FlagAbort     = 1 << 3 // with FlagEnd: the sender gave up, the item is broken
	knownFlags    = FlagEnd | FlagKept | FlagLineStart | FlagAbort
)

// MaxChunk is how many bytes of an item one frame carries at most. 256 KiB
// is where NATS moves bytes fastest (shared/notes/nats-facts.md), well
// under the 1 MiB max_payload.
const MaxChunk = 256 << 10

// ErrCorrupt: a frame is damaged, or an item's frames are out of order.
var ErrCorrupt = errors.New("item data corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame is a decoded frame. Data aliases the message it came from.
type Frame struct {
	Flags  byte
	Offset uint64
	Data   []byte
}

// End tells whether the item ends with this frame.
func (f Frame) End() bool { return f.Flags&FlagEnd != 0 }

// Kept tells whether a live frame's item is also kept in the pipe.
func (f Frame) Kept() bool { return f.Flags&FlagKept != 0 }

// LineStart tells whether the chunk starts a line.
func (f Frame) LineStart() bool { return f.Flags&FlagLineStart != 0 }

// Aborted tells whether the sender gave the item up here.
func (f Frame) Aborted() bool { return f.Flags&FlagAbort != 0 }

// Seal writes the header into buf[:HeaderLen], in front of the chunk
// already in buf[HeaderLen:], and returns buf.
func Seal(buf []byte, flags byte, offset uint64) []byte {
	buf[0] = Version
	buf[1] = flags
	buf[2], buf[3] = 0, 0
	binary.BigEndian.PutUint64(buf[8:16], offset)
	binary.BigEndian.PutUint32(buf[4:8], sum(buf))
	return buf
}

// EndFrame returns a new end frame of an item of length n.
func EndFrame(flags byte, n uint64) []byte {
	return Seal(make([]byte, HeaderLen), flags|FlagEnd, n)
}

func sum(buf []byte) uint32 {
	s := crc32.Update(0, castagnoli, buf[0:4])
	s = crc32.Update(s, castagnoli, buf[8:16])
	return crc32.Update(s, castagnoli, buf[HeaderLen:])
}

// Parse decodes and checks a frame. The errors wrap ErrCorrupt.
func Parse(buf []byte) (Frame, error) {
	if len(buf) < HeaderLen {
		return Frame{}, fmt.Errorf("%w: a frame of %d bytes is shorter than its header", ErrCorrupt, len(buf))
	}
	if buf[0] != Version {
		return Frame{}, fmt.Errorf("%w: frame version %d, this skypipe speaks %d", ErrCorrupt, buf[0], Version)
	}
	if buf[1]&^knownFlags != 0 || buf[2] != 0 || buf[3] != 0 {
		return Frame{}, fmt.Errorf("%w: unknown frame flags %#x", ErrCorrupt, buf[1:4])
	}
	if got, want := sum(buf), binary.BigEndian.Uint32(buf[4:8]); got != want {
		return Frame{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	f := Frame{Flags: buf[1], Offset: binary.BigEndian.Uint64(buf[8:16]), Data: buf[HeaderLen:]}
	if len(f.Data) > MaxChunk {
		return Frame{}, fmt.Errorf("%w: a frame carries %d bytes, more than the %d a frame may", ErrCorrupt, len(f.Data), MaxChunk)
	}
	if f.End() && len(f.Data) != 0 {
		return Frame{}, fmt.Errorf("%w: an end frame carries data", ErrCorrupt)
	}
	if f.Aborted() && !f.End() {
		return Frame{}, fmt.Errorf("%w: an abort flag on a data frame", ErrCorrupt)
	}
	return f, nil
}

// IsEnd tells whether a frame says it ends its item, without checking it.
func IsEnd(b []byte) bool { return len(b) >= HeaderLen && b[1]&FlagEnd != 0 }

// Place reads where a frame belongs in its item, without checking it
// (Parse does): its offset and how many data bytes it carries. ok is false
// for anything too short to be a frame.
func Place(b []byte) (offset uint64, n int, ok bool) {
	if len(b) < HeaderLen {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b[8:16]), len(b) - HeaderLen, true
}
