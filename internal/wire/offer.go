package wire

import (
	"encoding/binary"
	"fmt"
)

// An offer of a new item to one taker (on the take subject) is empty, or,
// for a small item whose sender has read it whole before offering it, it
// carries the item: the kind byte OfferData, then each of the item's
// frames, as they would travel live, behind its length (4 bytes,
// big-endian): its data frames from offset 0 on and its end frame. A
// taker that wins the item's decision (see pipes/doc.go, "Offers") writes
// it out from there; one that does not, or a skypipe that reads only empty
// offers, takes the item as it is sent live. An offer whose payload does
// not parse is an empty one.
const (
	OfferData = 'D'
	// MaxOffer is how many bytes of data an offer carries at most: a
	// trigger, a job line, a small file.
	MaxOffer = 64 << 10
)

// AppendOffer appends an offer carrying the item data, read whole, to b:
// one data frame (none for an empty item) and the end frame. lineStart
// is the flag of the first frame, as the sender's live frames have it.
func AppendOffer(b, data []byte) []byte {
	b = append(b, OfferData)
	if len(data) > 0 {
		frame := make([]byte, HeaderLen+len(data))
		copy(frame[HeaderLen:], data)
		b = appendOfferFrame(b, Seal(frame, FlagLineStart, 0))
	}
	return appendOfferFrame(b, Seal(make([]byte, HeaderLen), FlagEnd, uint64(len(data))))
}

func appendOfferFrame(b, frame []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)))
	return append(b, frame...)
}

// ParseOffer reads the frames an offer carries: ok is false for an empty
// offer. A payload that is not a whole item (frames damaged, out of
// order, more than MaxOffer bytes, an abort, no end) is an error wrapping
// ErrCorrupt. The frames alias b.
func ParseOffer(b []byte) (frames [][]byte, ok bool, err error) {
	if len(b) == 0 {
		return nil, false, nil
	}
	if b[0] != OfferData {
		return nil, false, fmt.Errorf("%w: an offer of kind %#x", ErrCorrupt, b[0])
	}
	b = b[1:]
	var next uint64
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, false, fmt.Errorf("%w: an offer cut inside a frame's length", ErrCorrupt)
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, false, fmt.Errorf("%w: an offer's frame of %d bytes, %d left", ErrCorrupt, n, len(b)-4)
		}
		raw := b[4 : 4+n : 4+n]
		b = b[4+n:]
		f, err := Parse(raw)
		if err != nil {
			return nil, false, err
		}
		switch {
		case f.Offset != next:
			return nil, false, fmt.Errorf("%w: an offer's frame at offset %d, want %d", ErrCorrupt, f.Offset, next)
		case f.Flags&(FlagKept|FlagAbort) != 0:
			return nil, false, fmt.Errorf("%w: an offer's frame flagged %#x", ErrCorrupt, f.Flags)
		case !f.End() && len(f.Data) == 0:
			return nil, false, fmt.Errorf("%w: an empty data frame in an offer", ErrCorrupt)
		}
		frames = append(frames, raw)
		if f.End() {
			if len(b) > 0 {
				return nil, false, fmt.Errorf("%w: %d bytes after an offer's end frame", ErrCorrupt, len(b))
			}
			return frames, true, nil
		}
		if next += uint64(len(f.Data)); next > MaxOffer {
			return nil, false, fmt.Errorf("%w: an offer of more than %d bytes", ErrCorrupt, MaxOffer)
		}
	}
	return nil, false, fmt.Errorf("%w: an offer without an end frame", ErrCorrupt)
}
