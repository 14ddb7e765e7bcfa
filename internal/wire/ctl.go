package wire

import "encoding/binary"

// Control messages between receivers and senders. Each is one kind byte, an
// offset (big-endian uint64) and the receiver's id; an ack has a second
// offset before the id:
//
//	Join   a receiver is attached (reply to a roll call, or on the join subject)
//	Ack    a receiver wrote the item out up to offset (end included at
//	       length+1) and took it in up to the second offset (bytes waiting
//	       behind another item's open line)
//	Claim  a receiver took the kept item: it reads it from the store, not live
//	Leave  a receiver detaches; offset is what it wrote of the item
//	Take   a taker takes the item offered to it (reply to an offer)
//	Pass   a taker passes on the item offered to it: offer it to another;
//	       or, on the taker's rcv subject, a sender refuses a Take that came
//	       after it went on without a taker
//	Resend a receiver that lost live frames (its connection, or the
//	       sender's, was re-established meanwhile) asks the sender to send
//	       the item again from offset
const (
	Join   = 'J'
	Ack    = 'A'
	Claim  = 'C'
	Leave  = 'L'
	Take   = 'T'
	Pass   = 'P'
	Resend = 'R'
)

const ctlHeaderLen = 9

// Ctl is a decoded control message.
type Ctl struct {
	Kind     byte
	Offset   uint64
	Accepted uint64 // acks only: taken in, written or waiting
	RID      string // the receiver's id
}

// AppendCtl appends a join, claim or leave message to b.
func AppendCtl(b []byte, kind byte, offset uint64, rid string) []byte {
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, offset)
	return append(b, rid...)
}

// AppendAck appends an ack to b.
func AppendAck(b []byte, written, accepted uint64, rid string) []byte {
	b = append(b, Ack)
	b = binary.BigEndian.AppendUint64(b, written)
	b = binary.BigEndian.AppendUint64(b, accepted)
	return append(b, rid...)
}

// ParseCtl decodes a control message; false for anything else. An ack's
// Accepted is never below its Offset.
func ParseCtl(b []byte) (Ctl, bool) {
	if len(b) <= ctlHeaderLen {
		return Ctl{}, false
	}
	m := Ctl{Kind: b[0], Offset: binary.BigEndian.Uint64(b[1:9])}
	switch m.Kind {
	case Ack:
		if len(b) <= ctlHeaderLen+8 {
			return Ctl{}, false
		}
		m.Accepted = max(m.Offset, binary.BigEndian.Uint64(b[9:17]))
		m.RID = string(b[17:])
	case Join, Claim, Leave, Take, Pass, Resend:
		m.RID = string(b[9:])
	default:
		return Ctl{}, false
	}
	return m, true
}
