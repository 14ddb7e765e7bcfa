package pipes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// liveWindow is how far a sender may run ahead of the slowest attached
// receiver, in bytes: the credit each receiver has. Far below the 64 MiB a
// NATS server or client buffers per connection before it drops one.
const liveWindow = 8 << 20

// SendResult says where an item went.
type SendResult struct {
	Item  string // the item's id
	Bytes uint64 // its length
	Kept  bool   // part or all of it was kept in the pipe
	// KeptFrom is the offset its kept part starts at (0: the whole item).
	KeptFrom uint64
}

// member is a receiver attached to the item being sent.
type member struct {
	from     uint64 // where it started: 0 if it answered the roll call, else its join point
	acked    uint64 // where the window counts from: from, then its acks
	wrote    uint64 // what it acked writing out; length+1 once it wrote the end
	progress time.Time
	probing  bool
}

// chunk is a buffer of the reader's: frame header room, then data.
type chunk struct {
	buf       []byte // frameHeaderLen + up to chunkSize
	n         int    // data bytes
	offset    uint64
	lineStart bool // the byte before it is '\n' (or it starts the item)
}

func (ch *chunk) data() []byte { return ch.buf[frameHeaderLen : frameHeaderLen+ch.n] }

type sender struct {
	c    *Client
	s    subjects
	item string
	ctl  ctlQueue // acks, joins, leaves, claims, deaths, in arrival order
	subs []*nats.Subscription
	done chan struct{}

	members  map[string]*member
	claimant string
	kept     bool   // once true, every later byte is stored as well
	keptFrom uint64 // offset of the first kept byte
	// keepFrom is where keeping must start once due: the lowest offset a
	// departed receiver did not write out and no remaining receiver that
	// was attached before it will; mustKeep says it is due now.
	keepFrom uint64
	mustKeep bool
	offset   uint64 // bytes read so far
	endOut   bool   // a receiver wrote out the end of the item
	// liveEnded: the end frame went out live, so a receiver that joins
	// now cannot get it and is not waited for.
	liveEnded bool
	ring      ring // the last bytes sent live, for keeping what no one took
	store     *storeWriter
	pool      *sync.Pool
	out       []byte // scratch frame for storing retained bytes
	probe     *time.Ticker
}

// Synthetic control kinds, from the sender's own probes.
const (
	ctlDead  = 'X' // the receiver did not answer: gone
	ctlAlive = 'Y' // the receiver answered: slow, not gone
)

// Send reads r to its end and sends what it reads, as one item, into the
// pipe name: live to the receivers attached at each moment, kept in the
// pipe while none is. It returns once every byte is written out by a
// receiver or stored by the satellite.
func (c *Client) Send(ctx context.Context, name string, r io.Reader) (SendResult, error) {
	s, err := checkName(name)
	if err != nil {
		return SendResult{}, err
	}
	snd := &sender{
		c: c, s: s, item: nuid.Next(),
		ctl:     newCtlQueue(),
		done:    make(chan struct{}),
		members: map[string]*member{},
		pool:    c.chunks,
	}
	defer snd.close()
	ctx, explain, stop := c.watch(ctx)
	defer stop()
	res, err := snd.run(ctx, r)
	if err = explain(err); errors.Is(err, ErrDisconnected) {
		// Whatever failed after the loss (a publish, a flush) adds nothing.
		err = fmt.Errorf("%w after %d bytes of item %s", ErrDisconnected, res.Bytes, res.Item)
	}
	return res, err
}

func (snd *sender) close() {
	close(snd.done)
	if snd.probe != nil {
		snd.probe.Stop()
	}
	for _, sub := range snd.subs {
		_ = sub.Unsubscribe()
	}
	snd.store.close()
}

// ctlBacklog is how many control messages the satellite may have sent a
// sender before it reads them. The reading goroutine never blocks, so this
// is only reached by a flood; past it NATS drops the subscription's
// messages, which the sender notices as a stalled receiver and probes.
// Small, since every sender, a trigger's too, allocates it at start.
const ctlBacklog = 4096

// listen takes in the item's control subject and the pipe's join subject on
// one channel, so that the NATS connection hands them over in the order they
// came (an ack before the leave that follows it). Probes are answered at
// once; everything else queues for the sending loop.
func (snd *sender) listen(rolled chan<- bool) error {
	raw := make(chan *nats.Msg, ctlBacklog)
	for _, subject := range []string{snd.s.item(snd.item), snd.s.join()} {
		sub, err := snd.c.nc.ChanSubscribe(subject, raw)
		if err != nil {
			return err
		}
		snd.subs = append(snd.subs, sub)
	}
	itemSubject := snd.s.item(snd.item)
	go func() {
		for {
			var m *nats.Msg
			select {
			case m = <-raw:
			case <-snd.done:
				return
			}
			if m.Reply != "" && len(m.Data) == 0 { // a liveness probe
				_ = m.Respond(nil)
				continue
			}
			if len(m.Data) == 0 && m.Header.Get("Status") == "503" { // roll call: nobody
				select {
				case rolled <- false:
				default:
				}
				continue
			}
			cm, ok := parseCtl(m.Data)
			if !ok {
				continue
			}
			if m.Subject != itemSubject {
				// On the join subject: a join counts from now on; a leave
				// there carries no offset of this item.
				cm.offset = 0
				if cm.kind == ctlJoin {
					cm.offset = ^uint64(0)
				}
			} else if cm.kind == ctlJoin {
				cm.offset = 0 // answered our roll call: attached from the start
			}
			snd.ctl.push(cm) // before the roll call's answer, so run finds it there
			if cm.kind == ctlJoin && m.Subject == itemSubject {
				select {
				case rolled <- true:
				default:
				}
			}
		}
	}()
	return nil
}

func (snd *sender) run(ctx context.Context, r io.Reader) (SendResult, error) {
	rolled := make(chan bool, 1) // first answer to the roll call: someone there?
	if err := snd.listen(rolled); err != nil {
		return SendResult{}, err
	}

	// Read ahead while the roll call goes out.
	chunks := make(chan *chunk, 2)
	readErr := make(chan error, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go snd.read(readCtx, r, chunks, readErr)

	snd.probe = time.NewTicker(idleProbe / 2)
	someone, err := snd.rollCall(ctx, rolled)
	if err != nil {
		return SendResult{}, err
	}
	if !someone {
		if err := snd.startKeeping(ctx); err != nil {
			return snd.result(), err
		}
	}

	for more := true; more; {
		var ch *chunk
		select {
		case ch, more = <-chunks:
		case <-ctx.Done():
			return snd.result(), snd.abort(ctx.Err())
		}
		if !more {
			break
		}
		if err := snd.send(ctx, ch); err != nil {
			return snd.result(), snd.abort(err)
		}
	}
	if err := <-readErr; err != nil {
		return snd.result(), snd.abort(fmt.Errorf("reading input: %w", err))
	}
	if err := snd.finish(ctx); err != nil {
		return snd.result(), snd.abort(err)
	}
	return snd.result(), nil
}

// abort tells the item's receivers, and the store, that the item ends
// broken here, so that nobody takes it for whole or waits for more.
func (snd *sender) abort(cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	end := sealFrame(make([]byte, frameHeaderLen), flagEnd|flagAbort, snd.offset)
	if snd.store != nil && snd.store.started {
		err := snd.store.write(ctx, end)
		if err == nil {
			err = snd.store.wait(ctx)
		}
		if err != nil {
			// The store cannot take the abort mark (full, or lost frames):
			// take the partial item out, so nobody mistakes it for whole.
			_ = snd.c.purgeItem(ctx, snd.s, snd.item)
		}
	}
	if len(snd.members) > 0 {
		_ = snd.publishLive(sealFrame(end, flagEnd|flagAbort|snd.liveFlags(), snd.offset))
	}
	_ = snd.c.nc.FlushTimeout(probeTimeout)
	return cause
}

func (snd *sender) result() SendResult {
	return SendResult{Item: snd.item, Bytes: snd.offset, Kept: snd.kept, KeptFrom: snd.keptFrom}
}

// read fills chunks from r. A read returns what is there, so a slow writer's
// lines travel at once rather than when a chunk is full.
func (snd *sender) read(ctx context.Context, r io.Reader, out chan<- *chunk, errc chan<- error) {
	defer close(out)
	var off uint64
	lineStart := true
	for {
		ch := snd.pool.Get().(*chunk)
		n, err := r.Read(ch.buf[frameHeaderLen:])
		if n > 0 {
			ch.n, ch.offset, ch.lineStart = n, off, lineStart
			off += uint64(n)
			lineStart = ch.buf[frameHeaderLen+n-1] == '\n'
			select {
			case out <- ch:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		} else {
			snd.pool.Put(ch)
		}
		if err == io.EOF {
			errc <- nil
			return
		}
		if err != nil {
			errc <- err
			return
		}
	}
}

// rollCall asks who is attached. With nobody there the item is kept from
// its first byte.
func (snd *sender) rollCall(ctx context.Context, rolled <-chan bool) (bool, error) {
	msg := nats.Msg{Subject: snd.s.roll(), Reply: snd.s.item(snd.item)}
	if err := snd.c.nc.PublishMsg(&msg); err != nil {
		return false, fmt.Errorf("looking for receivers: %w", err)
	}
	select {
	case someone := <-rolled:
		return someone, nil
	case <-time.After(rollCallTimeout):
		return false, nil // not even a "nobody": keep the item, to be safe
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// handle applies one control message.
func (snd *sender) handle(cm ctlMsg) {
	m := snd.members[cm.rid]
	switch cm.kind {
	case ctlJoin:
		if m != nil || cm.rid == snd.claimant || snd.liveEnded {
			return // known, reading the store, or too late: the end went out
		}
		at := cm.offset
		if at > snd.offset {
			at = snd.offset
		}
		snd.members[cm.rid] = &member{from: at, acked: at, progress: time.Now()}
	case ctlAck:
		if cm.offset > snd.offset {
			snd.endOut = true
		}
		if m != nil && (cm.offset > m.wrote || cm.accepted > m.acked) {
			m.wrote = max(m.wrote, cm.offset)
			m.acked, m.progress, m.probing = max(m.acked, cm.accepted), time.Now(), false
		}
	case ctlAlive:
		if m != nil {
			m.progress, m.probing = time.Now(), false
		}
	case ctlClaim:
		snd.claimant = cm.rid
		delete(snd.members, cm.rid)
	case ctlLeave, ctlDead:
		if m == nil {
			return
		}
		at := max(m.wrote, m.from) // a leave on the item's inbox says what it wrote out
		if cm.kind == ctlLeave && cm.offset > at {
			at = cm.offset
		}
		delete(snd.members, cm.rid)
		snd.departed(at)
	}
}

// departed notes that a receiver left having written the item out up to
// at. If no remaining receiver was there before at, nobody will write out
// the bytes from at on: they must be kept, from at.
func (snd *sender) departed(at uint64) {
	if at > snd.offset { // it wrote the end: the item is delivered
		return
	}
	for _, m := range snd.members {
		if m.from <= at {
			return // m writes the bytes from at on, or departs itself
		}
	}
	if !snd.mustKeep || at < snd.keepFrom {
		snd.keepFrom = at
	}
	snd.mustKeep = true
}

// drain applies every control message already there.
func (snd *sender) drain() {
	for {
		cm, ok := snd.ctl.pop()
		if !ok {
			return
		}
		snd.handle(cm)
	}
}

// minAcked is the position of the slowest attached receiver.
func (snd *sender) minAcked() (uint64, bool) {
	var lo uint64
	first := true
	for _, m := range snd.members {
		if first || m.acked < lo {
			lo, first = m.acked, false
		}
	}
	return lo, !first
}

// wait blocks for the next control message, probing receivers that have
// made no progress for a while.
func (snd *sender) wait(ctx context.Context) error {
	select {
	case <-snd.ctl.ready:
		snd.drain()
	case <-snd.probe.C:
		snd.probeStalled()
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (snd *sender) probeStalled() {
	for rid, m := range snd.members {
		if m.probing || time.Since(m.progress) < idleProbe {
			continue
		}
		m.probing = true
		go func(rid string) {
			if snd.c.peerGone(snd.s.rcv(rid)) {
				snd.ctl.push(ctlMsg{kind: ctlDead, rid: rid})
				return
			}
			snd.ctl.push(ctlMsg{kind: ctlAlive, rid: rid})
		}(rid)
	}
}

// send moves one chunk on: to the store if the item is kept, live to every
// attached receiver, after the slowest has made room for it.
func (snd *sender) send(ctx context.Context, ch *chunk) error {
	snd.drain()
	end := ch.offset + uint64(ch.n)
	for {
		if !snd.kept && (len(snd.members) == 0 || snd.mustKeep) {
			if err := snd.startKeeping(ctx); err != nil {
				return err
			}
		}
		lo, someone := snd.minAcked()
		if !someone || end-lo <= liveWindow {
			break
		}
		if err := snd.wait(ctx); err != nil {
			return err
		}
	}
	snd.offset = end
	var flags byte
	if ch.lineStart {
		flags = flagLineStart
	}
	if snd.kept {
		if err := snd.store.write(ctx, sealFrame(ch.buf[:frameHeaderLen+ch.n], flags, ch.offset)); err != nil {
			return err
		}
	}
	if len(snd.members) > 0 {
		if err := snd.publishLive(sealFrame(ch.buf[:frameHeaderLen+ch.n], flags|snd.liveFlags(), ch.offset)); err != nil {
			return err
		}
	}
	if !snd.kept {
		snd.ring.put(ch.offset, ch.data())
	}
	snd.pool.Put(ch)
	return nil
}

func (snd *sender) liveFlags() byte {
	if snd.kept {
		return flagKept
	}
	return 0
}

func (snd *sender) publishLive(frame []byte) error {
	if err := snd.c.nc.Publish(snd.s.live(snd.item), frame); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

// startKeeping switches the item to kept: the store gets a head at the
// first byte due to be kept (keepFrom), then the bytes the ring holds from there.
func (snd *sender) startKeeping(ctx context.Context) error {
	snd.kept = true
	snd.keptFrom = snd.keepFrom
	if snd.offset > ringSize && snd.keptFrom < snd.offset-ringSize {
		// Cannot happen: a receiver takes in bytes no further than
		// liveWindow behind the offset, and writes them out no further
		// than holdLimit and a chunk behind that; the ring holds more.
		snd.keptFrom = snd.offset - ringSize
	}
	w, err := snd.c.newStoreWriter(snd.s, snd.item)
	if err != nil {
		return err
	}
	snd.store = w
	if snd.out == nil && snd.keptFrom < snd.offset {
		snd.out = make([]byte, frameHeaderLen+chunkSize)
	}
	var head [frameHeaderLen]byte
	if err := w.write(ctx, sealFrame(head[:], 0, snd.keptFrom)); err != nil {
		return err
	}
	for off := snd.keptFrom; off < snd.offset; {
		n := snd.ring.get(off, snd.out[frameHeaderLen:frameHeaderLen+min(chunkSize, snd.offset-off)])
		if err := w.write(ctx, sealFrame(snd.out[:frameHeaderLen+n], 0, off)); err != nil {
			return err
		}
		off += uint64(n)
	}
	snd.ring = ring{}
	return nil
}

// finish sends the end of the item and waits until it is safe: stored, or
// written out by the receivers attached. If they all leave before the end,
// the rest of the item is kept.
func (snd *sender) finish(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // interrupted at the very end: still not a whole item
	}
	snd.drain()
	if !snd.kept && (len(snd.members) == 0 || snd.mustKeep) {
		if err := snd.startKeeping(ctx); err != nil {
			return err
		}
	}
	end := sealFrame(make([]byte, frameHeaderLen), flagEnd, snd.offset)
	if snd.kept {
		if err := snd.store.write(ctx, end); err != nil {
			return err
		}
	}
	if len(snd.members) > 0 {
		end[1] = snd.liveFlags() | flagEnd
		if err := snd.publishLive(sealFrame(end, end[1], snd.offset)); err != nil {
			return err
		}
	}
	snd.liveEnded = true
	if snd.kept && len(snd.members) == 0 {
		return snd.store.wait(ctx) // the satellite's acks say it has every frame: no flush
	}
	if err := snd.c.nc.FlushTimeout(apiTimeout); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	if snd.kept {
		return snd.store.wait(ctx)
	}
	// Live only: wait until each receiver wrote the end or left.
	for {
		pending := 0
		for _, m := range snd.members {
			if m.wrote <= snd.offset {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if err := snd.wait(ctx); err != nil {
			return err
		}
	}
	if snd.endOut && !snd.mustKeep {
		return nil
	}
	// Receivers left before the end with bytes nobody wrote out: keep them
	// (from keepFrom, or the whole item if nobody wrote out anything).
	if err := snd.startKeeping(ctx); err != nil {
		return err
	}
	if err := snd.store.write(ctx, sealFrame(end, flagEnd, snd.offset)); err != nil {
		return err
	}
	return snd.store.wait(ctx)
}

// ring holds the last bytes sent live: all that an attached receiver may
// not have written out yet (up to liveWindow not taken in, and holdLimit
// and a chunk taken in but waiting behind another item's line).
type ring struct {
	buf []byte
}

const ringSize = liveWindow + holdLimit + 2*chunkSize

func (r *ring) put(off uint64, data []byte) {
	if r.buf == nil {
		r.buf = make([]byte, ringSize)
	}
	for len(data) > 0 {
		i := int(off % ringSize)
		n := copy(r.buf[i:], data)
		data, off = data[n:], off+uint64(n)
	}
}

// get copies the bytes from off on into p, up to the end of the ring's
// backing array, and returns how many.
func (r *ring) get(off uint64, p []byte) int {
	i := int(off % ringSize)
	return copy(p, r.buf[i:])
}
