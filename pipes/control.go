package pipes

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Control messages between receivers and senders. Each is one kind byte, an
// offset (big-endian uint64) and the receiver's id; an ack has a second
// offset before the id:
//
//	ctlJoin   a receiver is attached (reply to a roll call, or on the join subject)
//	ctlAck    a receiver wrote the item out up to offset (end included at
//	          length+1) and took it in up to the second offset (bytes
//	          waiting behind another item's open line: see output.go)
//	ctlClaim  a receiver took the kept item: it reads it from the store, not live
//	ctlLeave  a receiver detaches; offset is what it wrote of the item
const (
	ctlJoin  = 'J'
	ctlAck   = 'A'
	ctlClaim = 'C'
	ctlLeave = 'L'
)

const ctlHeaderLen = 9

// Timings of presence and liveness.
const (
	// idleProbe: after this long without news from a peer it waits on, a
	// party asks whether that peer still lives.
	idleProbe = 2 * time.Second
	// probeTimeout: a peer that does not answer a probe in this time, while
	// the satellite itself answers, is gone.
	probeTimeout = 3 * time.Second
	// rollCallTimeout bounds the wait for the first answer to a roll call.
	rollCallTimeout = 2 * time.Second
)

type ctlMsg struct {
	kind     byte
	offset   uint64
	accepted uint64 // acks only: taken in, written or waiting
	rid      string
}

func appendCtl(b []byte, kind byte, offset uint64, rid string) []byte {
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, offset)
	return append(b, rid...)
}

func appendAck(b []byte, written, accepted uint64, rid string) []byte {
	b = append(b, ctlAck)
	b = binary.BigEndian.AppendUint64(b, written)
	b = binary.BigEndian.AppendUint64(b, accepted)
	return append(b, rid...)
}

func parseCtl(b []byte) (ctlMsg, bool) {
	if len(b) <= ctlHeaderLen {
		return ctlMsg{}, false
	}
	m := ctlMsg{kind: b[0], offset: binary.BigEndian.Uint64(b[1:9])}
	switch m.kind {
	case ctlAck:
		if len(b) <= ctlHeaderLen+8 {
			return ctlMsg{}, false
		}
		m.accepted = max(m.offset, binary.BigEndian.Uint64(b[9:17]))
		m.rid = string(b[17:])
	case ctlJoin, ctlClaim, ctlLeave:
		m.rid = string(b[9:])
	default:
		return ctlMsg{}, false
	}
	return m, true
}

// ctlQueue is an unbounded FIFO of control messages: whoever pushes never
// waits, and ready has a value whenever the queue may be non-empty.
type ctlQueue struct {
	mu    sync.Mutex
	items []ctlMsg
	ready chan struct{}
}

func newCtlQueue() ctlQueue { return ctlQueue{ready: make(chan struct{}, 1)} }

func (q *ctlQueue) push(m ctlMsg) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *ctlQueue) pop() (ctlMsg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return ctlMsg{}, false
	}
	m := q.items[0]
	q.items = q.items[1:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return m, true
}

// peerGone probes a peer's inbox and tells whether the peer is gone. Only a
// definite answer counts: "no responders" (the satellite knows nobody
// listens there, as after the peer's process died), or silence to two
// probes in a row while the satellite itself answers. Silence from a
// satellite that is paused, overloaded or electing a leader proves
// nothing, and the peer is kept; so does a first probe lost in a pause.
func (c *Client) peerGone(subject string) bool {
	for range 2 {
		_, err := c.nc.Request(subject, nil, probeTimeout)
		switch {
		case err == nil:
			return false
		case errors.Is(err, nats.ErrNoResponders):
			return true
		case !errors.Is(err, nats.ErrTimeout):
			return false // the connection is gone: the caller hears of that anyway
		case c.nc.FlushTimeout(probeTimeout) != nil:
			return false // the satellite does not answer either
		}
	}
	return true
}
