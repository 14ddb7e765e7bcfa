package pipes

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// A frame is one message of an item, live or kept: a 16-byte header followed
// by the chunk's bytes.
//
//	byte 0      version (frameVersion)
//	byte 1      flags (flagEnd, flagKept, flagLineStart, flagAbort)
//	bytes 2-3   zero
//	bytes 4-7   CRC-32C of bytes 0-3, 8-15 and the chunk, big-endian
//	bytes 8-15  offset of the chunk's first byte in the item, big-endian;
//	            in the end frame, the item's length
//
// The header sits in the payload, not in NATS headers, so that a sender can
// read stdin straight into a reused buffer behind it and publish that buffer
// with no per-chunk allocation.
const (
	frameHeaderLen = 16
	frameVersion   = 1

	flagEnd       = 1 << 0 // the item ends here: no chunk follows
	flagKept      = 1 << 1 // on a live frame: the item is also kept in the pipe
	flagLineStart = 1 << 2 // the chunk starts a line: the byte before it is '\n'
	flagAbort     = 1 << 3 // with flagEnd: the sender gave up, the item is broken
	knownFlags    = flagEnd | flagKept | flagLineStart | flagAbort
)

// chunkSize is how many bytes of an item one frame carries at most. 256 KiB
// is where NATS moves bytes fastest (../shared/notes/nats-facts.md), well
// under the 1 MiB max_payload.
const chunkSize = 256 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is a decoded frame. data aliases the message it came from.
type frame struct {
	flags  byte
	offset uint64
	data   []byte
}

func (f frame) end() bool  { return f.flags&flagEnd != 0 }
func (f frame) kept() bool { return f.flags&flagKept != 0 }

func (f frame) lineStart() bool { return f.flags&flagLineStart != 0 }

func (f frame) aborted() bool { return f.flags&flagAbort != 0 }

// sealFrame writes the header into buf[:frameHeaderLen], in front of the
// chunk already in buf[frameHeaderLen:], and returns buf.
func sealFrame(buf []byte, flags byte, offset uint64) []byte {
	buf[0] = frameVersion
	buf[1] = flags
	buf[2], buf[3] = 0, 0
	binary.BigEndian.PutUint64(buf[8:16], offset)
	binary.BigEndian.PutUint32(buf[4:8], frameSum(buf))
	return buf
}

func frameSum(buf []byte) uint32 {
	sum := crc32.Update(0, castagnoli, buf[0:4])
	sum = crc32.Update(sum, castagnoli, buf[8:16])
	return crc32.Update(sum, castagnoli, buf[frameHeaderLen:])
}

// parseFrame decodes and checks a frame. The errors wrap ErrCorrupt.
func parseFrame(buf []byte) (frame, error) {
	if len(buf) < frameHeaderLen {
		return frame{}, fmt.Errorf("%w: a frame of %d bytes is shorter than its header", ErrCorrupt, len(buf))
	}
	if buf[0] != frameVersion {
		return frame{}, fmt.Errorf("%w: frame version %d, this skypipe speaks %d", ErrCorrupt, buf[0], frameVersion)
	}
	if buf[1]&^knownFlags != 0 || buf[2] != 0 || buf[3] != 0 {
		return frame{}, fmt.Errorf("%w: unknown frame flags %#x", ErrCorrupt, buf[1:4])
	}
	if got, want := frameSum(buf), binary.BigEndian.Uint32(buf[4:8]); got != want {
		return frame{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	f := frame{flags: buf[1], offset: binary.BigEndian.Uint64(buf[8:16]), data: buf[frameHeaderLen:]}
	if len(f.data) > chunkSize {
		return frame{}, fmt.Errorf("%w: a frame carries %d bytes, more than the %d a frame may", ErrCorrupt, len(f.data), chunkSize)
	}
	if f.end() && len(f.data) != 0 {
		return frame{}, fmt.Errorf("%w: an end frame carries data", ErrCorrupt)
	}
	if f.aborted() && !f.end() {
		return frame{}, fmt.Errorf("%w: an abort flag on a data frame", ErrCorrupt)
	}
	return f, nil
}
