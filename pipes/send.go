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
	"github.com/skypipe/skypipe/internal/wire"
)

// SendResult says where an item went.
type SendResult struct {
	Item  string // the item's id
	Bytes uint64 // its length
	Kept  bool   // part or all of it was kept in the pipe
	// KeptFrom is the offset its kept part starts at (0: the whole item).
	KeptFrom uint64
}

// sendState is where the item being sent stands. Each state allows the
// moves sendMoves lists, and no other.
type sendState uint8

const (
	sendRolling    sendState = iota // the roll call is out: who is attached?
	sendLive                        // live to the attached receivers, nothing kept
	sendKept                        // kept in the pipe from keptFrom on, live to any attached
	sendLiveEnding                  // the end went out live: waiting for the receivers to write it
	sendKeptEnding                  // the end is stored: waiting for the satellite to confirm all
	sendDone                        // every byte written out by a receiver or stored
	sendFailed                      // given up: receivers and the store learn it is broken
)

var sendStateNames = [...]string{"rolling", "live", "kept", "live-ending", "kept-ending", "done", "failed"}

func (s sendState) String() string { return sendStateNames[s] }

var sendMoves = map[sendState][]sendState{
	sendRolling:    {sendLive, sendKept, sendFailed},
	sendLive:       {sendKept, sendLiveEnding, sendFailed},
	sendKept:       {sendKeptEnding, sendFailed},
	sendLiveEnding: {sendKeptEnding, sendDone, sendFailed},
	sendKeptEnding: {sendDone, sendFailed},
}

// chunk is a buffer of the reader's: frame header room, then data.
type chunk struct {
	buf       []byte // wire.HeaderLen + up to chunkSize
	n         int    // data bytes
	offset    uint64
	lineStart bool // the byte before it is '\n' (or it starts the item)
}

func (ch *chunk) data() []byte { return ch.buf[wire.HeaderLen : wire.HeaderLen+ch.n] }

// sender sends one item. Its loop (run) owns all its fields but ctl; the
// control listener and the probes feed ctl.
type sender struct {
	c     *Client
	cfg   Config
	s     wire.Subjects
	item  string
	state sendState

	aud       audience
	ctl       ctlQueue // acks, joins, leaves, claims, deaths, in arrival order
	subs      []*nats.Subscription
	listening sync.WaitGroup
	done      chan struct{}
	probes    *prober

	offset   uint64 // bytes read and sent so far
	keptFrom uint64 // offset of the first kept byte
	ring     ring   // the last bytes sent live, for keeping what no one took
	store    *storeWriter
	pool     *sync.Pool
	out      []byte // scratch frame for storing the ring's bytes
	tick     *time.Ticker
}

// Send reads r to its end and sends what it reads, as one item, into the
// pipe name: live to the receivers attached at each moment, kept in the
// pipe while none is. It returns once every byte is written out by a
// receiver or stored by the satellite. If it fails, receivers learn that
// the item is broken and nothing of it stays kept in the pipe.
//
// A Read of r that blocks when ctx ends is left to return in its own time:
// Send returns without waiting for it (stdin cannot be interrupted).
func (c *Client) Send(ctx context.Context, name string, r io.Reader) (SendResult, error) {
	s, err := checkName(name)
	if err != nil {
		return SendResult{}, err
	}
	snd := &sender{
		c: c, cfg: c.cfg, s: s, item: nuid.Next(),
		aud:  newAudience(),
		ctl:  newCtlQueue(),
		done: make(chan struct{}),
		pool: c.chunks,
	}
	ctx, explain, stop := c.watch(ctx)
	defer stop()
	snd.probes = newProber(ctx, c, func(rid string, gone bool) {
		kind := byte(ctlAlive)
		if gone {
			kind = ctlDead
		}
		snd.ctl.push(wire.Ctl{Kind: kind, RID: rid})
	})
	res, err := snd.run(ctx, r)
	snd.close()
	if err = explain(err); errors.Is(err, ErrDisconnected) {
		// Whatever failed after the loss (a publish, a flush) adds nothing.
		err = fmt.Errorf("%w after %d bytes of item %s", ErrDisconnected, res.Bytes, res.Item)
	}
	return res, err
}

// move changes the item's state, or fails the item if the move is not one
// sendMoves allows.
func (snd *sender) move(to sendState) error {
	for _, ok := range sendMoves[snd.state] {
		if ok == to {
			snd.state = to
			return nil
		}
	}
	return snd.c.invariant("item %s: a sender moved from %v to %v", snd.item, snd.state, to)
}

// kept tells whether the item is stored from keptFrom on.
func (snd *sender) kept() bool { return snd.state == sendKept || snd.state == sendKeptEnding }

// close ends the sender's subscriptions and waits for its goroutines: the
// control listener, the probes and the store's watchdog.
func (snd *sender) close() {
	close(snd.done)
	for _, sub := range snd.subs {
		_ = sub.Unsubscribe()
	}
	snd.listening.Wait()
	snd.probes.close()
	if snd.tick != nil {
		snd.tick.Stop()
	}
	snd.store.close()
}

// ctlBacklog is how many control messages the satellite may have sent a
// sender before it reads them. The listener never blocks, so this is only
// reached by a flood; past it NATS drops the subscription's messages,
// which the sender notices as a stalled receiver and probes. Small, since
// every sender, a trigger's too, allocates it at start.
const ctlBacklog = 4096

// listen takes in the item's control subject and the pipe's join subject on
// one channel, so that the NATS connection hands them over in the order they
// came (an ack before the leave that follows it). Probes are answered at
// once; everything else queues for the sending loop. rolled gets the first
// answer to the roll call: true for a receiver, false for nobody.
func (snd *sender) listen(rolled chan<- bool) error {
	raw := make(chan *nats.Msg, ctlBacklog)
	for _, subject := range []string{snd.s.Item(snd.item), snd.s.Join()} {
		sub, err := snd.c.nc.ChanSubscribe(subject, raw)
		if err != nil {
			return err
		}
		snd.subs = append(snd.subs, sub)
	}
	itemSubject := snd.s.Item(snd.item)
	snd.listening.Go(func() {
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
			cm, ok := wire.ParseCtl(m.Data)
			if !ok {
				continue
			}
			if m.Subject != itemSubject {
				// On the join subject: a join counts from now on; a leave
				// there carries no offset of this item.
				cm.Offset = 0
				if cm.Kind == wire.Join {
					cm.Offset = ^uint64(0)
				}
			} else if cm.Kind == wire.Join {
				cm.Offset = 0 // answered our roll call: attached from the start
			}
			snd.ctl.push(cm) // before the roll call's answer, so run finds it there
			if cm.Kind == wire.Join && m.Subject == itemSubject {
				select {
				case rolled <- true:
				default:
				}
			}
		}
	})
	return nil
}

func (snd *sender) run(ctx context.Context, r io.Reader) (SendResult, error) {
	rolled := make(chan bool, 1)
	if err := snd.listen(rolled); err != nil {
		return snd.result(), err
	}

	// Read ahead while the roll call goes out.
	chunks := make(chan *chunk, 2)
	readErr := make(chan error, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go snd.read(readCtx, r, chunks, readErr) // may outlive Send: see Send

	snd.tick = time.NewTicker(snd.cfg.IdleProbe / 2)
	someone, err := snd.rollCall(ctx, rolled)
	if err != nil {
		return snd.fail(ctx, err)
	}
	// With nobody there the item is kept from its first byte; the store is
	// opened with the first chunk, so that an input that fails at once
	// keeps nothing.
	to := sendKept
	if someone {
		to = sendLive
	}
	if err := snd.move(to); err != nil {
		return snd.fail(ctx, err)
	}

	for more := true; more; {
		var ch *chunk
		select {
		case ch, more = <-chunks:
		case <-ctx.Done():
			return snd.fail(ctx, ctx.Err())
		}
		if !more {
			break
		}
		if err := snd.send(ctx, ch); err != nil {
			return snd.fail(ctx, err)
		}
	}
	if err := <-readErr; err != nil {
		return snd.fail(ctx, fmt.Errorf("reading input: %w", err))
	}
	if err := snd.finish(ctx); err != nil {
		return snd.fail(ctx, err)
	}
	return snd.result(), nil
}

// fail gives the item up. Receivers reading it live get an abort frame;
// what was kept of it is removed from the pipe, unless a receiver reads it
// from the store: then the store gets the abort frame too, and that
// receiver removes the item when it meets it. Either way nobody takes the
// item for whole, and a failed send keeps nothing.
func (snd *sender) fail(ctx context.Context, cause error) (SendResult, error) {
	if snd.state == sendFailed {
		return snd.result(), cause
	}
	snd.state = sendFailed
	cctx, cancel := cleanupContext(ctx, snd.cfg.FailoverWait+snd.cfg.APITimeout)
	defer cancel()
	snd.drain()
	abort := wire.EndFrame(wire.FlagAbort, snd.offset)
	if snd.store != nil && snd.store.headStored {
		marked := false
		if snd.aud.claimant != "" {
			marked = snd.store.write(cctx, abort) == nil && snd.store.wait(cctx) == nil
		}
		if !marked {
			// Let the frames in flight land first, so none lands after
			// the purge, headless.
			wctx, wcancel := context.WithTimeout(cctx, snd.cfg.AckTimeout)
			_ = snd.store.wait(wctx)
			wcancel()
			if err := snd.c.purgeItem(cctx, snd.s, snd.item); err != nil {
				cause = fmt.Errorf("%w; and its partial item stays in the pipe (%v): 'skypipe rm %s --item %s' removes it", cause, err, snd.s.Name, snd.item)
			}
		}
	}
	if len(snd.aud.members) > 0 {
		_ = snd.publishLive(wire.Seal(abort, wire.FlagEnd|wire.FlagAbort|snd.liveFlags(), snd.offset))
	}
	_ = snd.c.nc.FlushTimeout(snd.cfg.ProbeTimeout)
	return snd.result(), cause
}

func (snd *sender) result() SendResult {
	kept := snd.store != nil && snd.store.headStored
	return SendResult{Item: snd.item, Bytes: snd.offset, Kept: kept, KeptFrom: snd.keptFrom}
}

// read fills chunks from r. A read returns what is there, so a slow writer's
// lines travel at once rather than when a chunk is full.
func (snd *sender) read(ctx context.Context, r io.Reader, out chan<- *chunk, errc chan<- error) {
	defer close(out)
	var off uint64
	lineStart := true
	for {
		ch := snd.pool.Get().(*chunk)
		n, err := r.Read(ch.buf[wire.HeaderLen:])
		if n > 0 {
			ch.n, ch.offset, ch.lineStart = n, off, lineStart
			off += uint64(n)
			lineStart = ch.buf[wire.HeaderLen+n-1] == '\n'
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

// rollCall asks who is attached: true once one answers, false when the
// satellite says nobody listens, or when nobody answers in time (the item
// is then kept, to be safe).
func (snd *sender) rollCall(ctx context.Context, rolled <-chan bool) (bool, error) {
	msg := nats.Msg{Subject: snd.s.Roll(), Reply: snd.s.Item(snd.item)}
	if err := snd.c.nc.PublishMsg(&msg); err != nil {
		return false, fmt.Errorf("looking for receivers: %w", err)
	}
	t := time.NewTimer(snd.cfg.RollCallTimeout)
	defer t.Stop()
	select {
	case someone := <-rolled:
		return someone, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// drain applies every control message already there.
func (snd *sender) drain() {
	now := time.Now()
	for {
		cm, ok := snd.ctl.pop()
		if !ok {
			return
		}
		snd.aud.apply(cm, snd.offset, now)
	}
}

// wait blocks for the next control message, probing receivers that have
// made no progress for a while.
func (snd *sender) wait(ctx context.Context) error {
	select {
	case <-snd.ctl.ready:
		snd.drain()
	case now := <-snd.tick.C:
		for _, rid := range snd.aud.stalled(now, snd.cfg.IdleProbe) {
			snd.probes.probe(rid, snd.s.Rcv(rid))
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// settle moves a live item to kept once nobody is left to write out the
// bytes to come, and opens the store of a kept item.
func (snd *sender) settle(ctx context.Context) error {
	if snd.state == sendLive && (len(snd.aud.members) == 0 || snd.aud.keep.due) {
		if err := snd.move(sendKept); err != nil {
			return err
		}
	}
	if snd.kept() && snd.store == nil {
		return snd.startKeeping(ctx)
	}
	return nil
}

// send moves one chunk on: to the store if the item is kept, live to every
// attached receiver, after the slowest has made room for it.
func (snd *sender) send(ctx context.Context, ch *chunk) error {
	snd.drain()
	end := ch.offset + uint64(ch.n)
	for {
		if err := snd.settle(ctx); err != nil {
			return err
		}
		lo, someone := snd.aud.slowest()
		if !someone || end-lo <= uint64(snd.cfg.LiveWindow) {
			break
		}
		if err := snd.wait(ctx); err != nil {
			return err
		}
	}
	snd.offset = end
	var flags byte
	if ch.lineStart {
		flags = wire.FlagLineStart
	}
	if snd.kept() {
		if err := snd.store.write(ctx, wire.Seal(ch.buf[:wire.HeaderLen+ch.n], flags, ch.offset)); err != nil {
			return err
		}
	}
	if len(snd.aud.members) > 0 {
		if err := snd.publishLive(wire.Seal(ch.buf[:wire.HeaderLen+ch.n], flags|snd.liveFlags(), ch.offset)); err != nil {
			return err
		}
	}
	if !snd.kept() {
		snd.ring.put(ch.offset, ch.data(), snd.cfg.ringSize())
	}
	snd.pool.Put(ch)
	return nil
}

func (snd *sender) liveFlags() byte {
	if snd.kept() {
		return wire.FlagKept
	}
	return 0
}

func (snd *sender) publishLive(frame []byte) error {
	if err := snd.c.nc.Publish(snd.s.Live(snd.item), frame); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

// startKeeping opens the store of a kept item: a head at the first byte
// due to be kept, then the bytes the ring holds from there.
func (snd *sender) startKeeping(ctx context.Context) error {
	snd.keptFrom = 0 // nobody was attached: the whole item
	if snd.aud.keep.due {
		snd.keptFrom = snd.aud.keep.from
	}
	if snd.keptFrom < snd.offset && !snd.ring.holds(snd.keptFrom) {
		// A receiver takes in bytes no further than LiveWindow behind the
		// offset and writes them out no further than HoldLimit and a chunk
		// behind that; the ring holds more. Keeping from later on would
		// leave a hole at the start of the kept item.
		return snd.c.invariant("item %s: bytes from %d on are due to be kept, but the ring holds only %d to %d",
			snd.item, snd.keptFrom, snd.ring.end-min(snd.ring.end, uint64(len(snd.ring.buf))), snd.ring.end)
	}
	w, err := snd.c.newStoreWriter(snd.s, snd.item)
	if err != nil {
		return err
	}
	snd.store = w
	if snd.out == nil && snd.keptFrom < snd.offset {
		snd.out = make([]byte, wire.HeaderLen+chunkSize)
	}
	var head [wire.HeaderLen]byte
	if err := w.write(ctx, wire.Seal(head[:], 0, snd.keptFrom)); err != nil {
		return err
	}
	for off := snd.keptFrom; off < snd.offset; {
		n := snd.ring.get(off, snd.out[wire.HeaderLen:wire.HeaderLen+min(chunkSize, snd.offset-off)])
		if err := w.write(ctx, wire.Seal(snd.out[:wire.HeaderLen+n], 0, off)); err != nil {
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
	if err := snd.settle(ctx); err != nil {
		return err
	}
	end := wire.EndFrame(0, snd.offset)
	if snd.kept() {
		if err := snd.store.write(ctx, end); err != nil {
			return err
		}
	}
	if len(snd.aud.members) > 0 {
		if err := snd.publishLive(wire.Seal(end, wire.FlagEnd|snd.liveFlags(), snd.offset)); err != nil {
			return err
		}
	}
	snd.aud.closed = true
	if snd.kept() {
		if err := snd.move(sendKeptEnding); err != nil {
			return err
		}
		if len(snd.aud.members) > 0 {
			if err := snd.c.nc.FlushTimeout(snd.cfg.APITimeout); err != nil {
				return fmt.Errorf("sending: %w", err)
			}
		}
		// The satellite's confirmations say it has every frame: no flush.
		if err := snd.store.wait(ctx); err != nil {
			return err
		}
		return snd.move(sendDone)
	}
	if err := snd.move(sendLiveEnding); err != nil {
		return err
	}
	if err := snd.c.nc.FlushTimeout(snd.cfg.APITimeout); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	// Live only: wait until each receiver wrote the end or left.
	for snd.aud.unfinished(snd.offset) > 0 {
		if err := snd.wait(ctx); err != nil {
			return err
		}
	}
	if snd.aud.endOut && !snd.aud.keep.due {
		return snd.move(sendDone)
	}
	// Receivers left before the end with bytes nobody wrote out: keep them
	// (from keep.from, or the whole item if nobody wrote out anything).
	if err := snd.move(sendKeptEnding); err != nil {
		return err
	}
	if err := snd.startKeeping(ctx); err != nil {
		return err
	}
	if err := snd.store.write(ctx, wire.EndFrame(0, snd.offset)); err != nil {
		return err
	}
	if err := snd.store.wait(ctx); err != nil {
		return err
	}
	return snd.move(sendDone)
}
