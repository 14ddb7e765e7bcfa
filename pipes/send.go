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
	"github.com/skypipe/skypipe/internal/jsapi"
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
	live  string // the item's live subject, where every live frame goes
	state sendState

	aud       audience
	win       liveWindow     // how far ahead of the slowest receiver it may run
	ctl       ctlQueue       // acks, joins, leaves, claims, deaths, in arrival order
	raw       chan *nats.Msg // what the listener takes in: control subjects, probes' verdicts
	subs      []*nats.Subscription
	listening sync.WaitGroup
	done      chan struct{}
	probes    *prober
	offer     offerGate // the item offered to one taker, until decided
	withData  bool      // a small item read whole rides with its offer

	offset   uint64 // bytes read and sent so far
	keptFrom uint64 // offset of the first kept byte
	ring     ring   // the last bytes sent live, for keeping what no one took
	store    *storeWriter
	input    *input // r, if a regular file: the store reads it again (retain)
	// storeFound says whether the store exists (Client.lookForStore,
	// asked beside the roll call); looking waits for the question,
	// stopLooking ends it.
	storeFound <-chan bool
	// nobodyAfter is how long the satellite took to say that nobody
	// takes or listens (its "no responders" to the roll call): the path
	// to it, which starts a kept item's store window (pathWindow.timed).
	nobodyAfter time.Duration
	looking     sync.WaitGroup
	stopLooking context.CancelFunc
	pool        *sync.Pool
	out         []byte // scratch frame for storing the ring's bytes
	tick        *time.Ticker
}

// Send reads r to its end and sends what it reads, as one item, into the
// pipe name: live to the receivers attached at each moment, kept in the
// pipe while none is. It returns once every byte is written out by a
// receiver or stored by the satellite. If it fails, receivers learn that
// the item is broken and nothing of it stays kept in the pipe.
//
// A Read of r that blocks when ctx ends is left to return in its own time:
// Send returns without waiting for it (stdin cannot be interrupted).
//
// If r is a regular file (an *os.File, or a reader with its ReadAt, Seek
// and Stat), the part of it on its way into the store is read again from
// it after a lost connection, not kept in memory; if it changed meanwhile,
// Send fails with ErrInputChanged. r's offset when Send is called is the
// item's first byte.
func (c *Client) Send(ctx context.Context, name string, r io.Reader) (SendResult, error) {
	return c.send(ctx, name, r, true)
}

// send is Send; withData lets a small item read whole ride with its offer
// to a taker (decide.go). SendLines' items do not: a record in the
// satellite for every line would cost a stream of lines more than the
// round trip it saves.
func (c *Client) send(ctx context.Context, name string, r io.Reader, withData bool) (SendResult, error) {
	s, err := checkName(name)
	if err != nil {
		return SendResult{}, err
	}
	snd := &sender{
		c: c, cfg: c.cfg, s: s, item: nuid.Next(),
		aud:  newAudience(),
		win:  newLiveWindow(c.cfg),
		ctl:  newCtlQueue(),
		raw:  make(chan *nats.Msg, ctlBacklog),
		done: make(chan struct{}),
		pool: c.chunks,

		input:    rereadInput(r),
		withData: withData,
	}
	snd.live = s.Live(snd.item)
	snd.offer.ctl = &snd.ctl
	ctx, explain, stop := c.watch(ctx, func() { snd.ctl.push(wire.Ctl{Kind: ctlReconnected}) })
	snd.probes = newProber(ctx, c, func(rid string, gone bool) {
		if gone {
			snd.foundGone(rid)
			return
		}
		snd.ctl.push(wire.Ctl{Kind: ctlAlive, RID: rid})
	})
	res, err := snd.run(ctx, r)
	snd.close()
	stop()
	snd.unsubscribe()
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

// close waits for the sender's goroutines: the control listener, the
// probes and the store's watchdog.
func (snd *sender) close() {
	close(snd.done)
	if snd.stopLooking != nil {
		snd.stopLooking()
	}
	snd.looking.Wait()
	snd.listening.Wait()
	snd.probes.close()
	if snd.tick != nil {
		snd.tick.Stop()
	}
	snd.store.close()
}

// unsubscribe ends the sender's subscriptions. Send does it last, with no
// wait after it, so that their ends leave in one write, with the start of
// the next item of a SendLines.
func (snd *sender) unsubscribe() {
	for _, sub := range snd.subs {
		_ = sub.Unsubscribe()
	}
}

// ctlBacklog is how many control messages the satellite may have sent a
// sender before it reads them. The listener never blocks, so this is only
// reached by a flood; past it NATS drops the subscription's messages,
// which the sender notices as a stalled receiver and probes. Small, since
// every sender, a trigger's too, allocates it at start.
const ctlBacklog = 4096

// verdictSubject marks a probe's verdict on raw (foundGone): no message
// NATS delivers has an empty subject.
const verdictSubject = ""

// foundGone hands the listener a probe's verdict that receiver rid is
// gone, on the channel that receiver's own messages come on: behind all
// it sent before it went, since the satellite answered the probe ("no
// responders", or the flush that found the satellite there and the
// receiver silent) after it passed those on. So an ack sent as the
// receiver finished is never read after the verdict; read after it, the
// sender would keep for the next taker a part the receiver wrote out.
func (snd *sender) foundGone(rid string) {
	select {
	case snd.raw <- &nats.Msg{Subject: verdictSubject, Data: []byte(rid)}:
	case <-snd.done:
		return
	}
	if snd.cfg.verdictQueued != nil {
		snd.cfg.verdictQueued(snd.item, rid)
	}
}

// answer is what a receiver, or the satellite, said to a sender's roll
// call or offer.
type answer uint8

const (
	answerTaken       answer = iota // a taker took the item
	answerPassed                    // the taker offered it passed: offer it again
	answerNoTakers                  // no taker waits
	answerListener                  // a listener is attached
	answerNoListeners               // no listener is attached
)

// listen takes in the item's control subjects and the pipe's join subject
// on one channel, so that the NATS connection hands them over in the order
// they came (an ack before the leave that follows it). Probes are answered
// at once; answers to the roll call and the offer go to answers (which
// only the start of the item reads), everything else queues for the
// sending loop.
func (snd *sender) listen(answers chan<- answer) error {
	raw := snd.raw
	itemSubject, takeReply := snd.s.Item(snd.item), snd.s.TakeReply(snd.item)
	for _, subject := range []string{itemSubject, takeReply, snd.s.Join()} {
		sub, err := snd.c.nc.ChanSubscribe(subject, raw)
		if err != nil {
			return err
		}
		snd.subs = append(snd.subs, sub)
	}
	refuse := func(rid string) {
		ctl := wire.AppendCtl(nil, wire.Pass, 0, rid)
		_ = snd.c.nc.PublishMsg(&nats.Msg{Subject: snd.s.Rcv(rid), Reply: itemSubject, Data: ctl})
	}
	tell := func(a answer) {
		select {
		case answers <- a:
		default: // the item's start is past: nobody asks any more
		}
	}
	snd.listening.Go(func() {
		for {
			var m *nats.Msg
			select {
			case m = <-raw:
			case <-snd.done:
				return
			}
			if snd.cfg.ctlHeard != nil {
				snd.cfg.ctlHeard(snd.item, m)
			}
			if m.Subject == verdictSubject {
				snd.ctl.push(wire.Ctl{Kind: ctlDead, RID: string(m.Data)})
				continue
			}
			if m.Reply != "" && len(m.Data) == 0 { // a liveness probe
				_ = m.Respond(nil)
				continue
			}
			if jsapi.Status(m) == jsapi.StatusNoResponse { // nobody there
				if m.Subject == takeReply {
					tell(answerNoTakers)
				} else {
					tell(answerNoListeners)
				}
				continue
			}
			cm, ok := wire.ParseCtl(m.Data)
			if !ok {
				continue
			}
			switch {
			case m.Subject == takeReply && cm.Kind == wire.Take:
				switch snd.offer.take(cm.RID) {
				case takeRefused:
					// Too late: the item is kept (or another took it). A
					// taker told nothing would wait for it forever.
					refuse(cm.RID)
					continue
				case takeAgain:
					continue // its record said so first (settleOffer)
				}
				tell(answerTaken) // the gate queued its Take: run finds the taker there
			case m.Subject == takeReply && cm.Kind == wire.Pass:
				tell(answerPassed)
			case m.Subject == takeReply:
			case m.Subject != itemSubject:
				// On the join subject: a join counts from now on; a leave
				// there carries no offset of this item.
				cm.Offset = 0
				if cm.Kind == wire.Join {
					cm.Offset = ^uint64(0)
				}
				snd.ctl.push(cm)
			case cm.Kind == wire.Join:
				cm.Offset = 0 // answered our roll call: attached from the start
				snd.ctl.push(cm)
				tell(answerListener)
			default:
				snd.ctl.push(cm)
			}
		}
	})
	return nil
}

func (snd *sender) run(ctx context.Context, r io.Reader) (SendResult, error) {
	answers := make(chan answer, 64)
	if err := snd.listen(answers); err != nil {
		return snd.result(), err
	}

	// Read ahead while the roll call goes out.
	chunks := make(chan *chunk, 2)
	readErr := make(chan error, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go snd.read(readCtx, r, chunks, readErr) // may outlive Send: see Send

	// The item begins with its first byte (or its end): an input that
	// fails before either announces nothing and keeps nothing.
	var first *chunk
	more := true
	select {
	case first, more = <-chunks:
	case <-ctx.Done():
		return snd.fail(ctx, ctx.Err())
	}
	var inputErr error
	if !more {
		if inputErr = <-readErr; inputErr != nil {
			return snd.fail(ctx, fmt.Errorf("reading input: %w", inputErr))
		}
	}
	// A small first read: is that the whole item? Then it rides with the
	// offer. The end of a short input comes right behind its bytes.
	whole := !more
	var second *chunk
	if more && snd.withData && first.n <= wire.MaxOffer && snd.cfg.WholeWait > 0 {
		t := time.NewTimer(snd.cfg.WholeWait)
		select {
		case second, more = <-chunks:
			if !more {
				// An input that fails after its first bytes breaks an
				// item its receivers see begin, as it would later.
				inputErr = <-readErr
				whole = inputErr == nil
			}
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return snd.fail(ctx, ctx.Err())
		}
		t.Stop()
	}
	var offerData []byte
	if whole && snd.withData {
		var data []byte
		if first != nil {
			data = first.data()
		}
		offerData = wire.AppendOffer(nil, data)
		snd.aud.offered = uint64(len(data))
	}

	snd.tick = time.NewTicker(snd.cfg.IdleProbe / 2)
	someone, err := snd.rollCall(ctx, answers, offerData)
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

	for ch := first; ch != nil; {
		if err := snd.send(ctx, ch); err != nil {
			return snd.fail(ctx, err)
		}
		ch, second = second, nil
		if ch == nil && more {
			select {
			case ch, more = <-chunks:
			case <-ctx.Done():
				return snd.fail(ctx, ctx.Err())
			}
			if !more {
				inputErr = <-readErr
			}
		}
	}
	if inputErr != nil {
		return snd.fail(ctx, fmt.Errorf("reading input: %w", inputErr))
	}
	if err := snd.finish(ctx); err != nil {
		return snd.fail(ctx, err)
	}
	return snd.result(), nil
}

// fail gives the item up. Receivers reading it live get an abort frame;
// what was kept of it gets the abort frame too, and is then removed from
// the pipe, unless a receiver is known to read it from the store: that
// receiver removes the item when it meets the abort. Either way nobody
// takes the item for whole, and a failed send keeps nothing.
func (snd *sender) fail(ctx context.Context, cause error) (SendResult, error) {
	if snd.state == sendFailed {
		return snd.result(), cause
	}
	snd.state = sendFailed
	cctx, cancel := cleanupContext(ctx, snd.cfg.FailoverWait+snd.cfg.APITimeout)
	defer cancel()
	snd.drain()
	abort := wire.EndFrame(wire.FlagAbort, snd.offset)
	if snd.store != nil && snd.store.headSent {
		// headSent, not headStored: an interrupted sender may not have
		// heard the head's confirmation, yet the head may be stored.
		//
		// The abort is stored even when no receiver is known to hold the
		// item: a receiver's claim may still be on its way here, and its
		// reader, pulling for frames as they come, gets the abort before
		// the purge below can land (it said "sender vanished" instead:
		// TestInterruptedSenderBreaksTheItemForItsReceivers, 1 run in 10).
		// Unless a receiver is known to hold the item, marking it and
		// letting the frames in flight land share one AckTimeout, as the
		// wait alone did before.
		wctx, wcancel := context.WithTimeout(cctx, snd.cfg.AckTimeout)
		defer wcancel()
		mctx := wctx
		if snd.aud.claimant != "" {
			mctx = cctx
		}
		// The abort follows the head on this connection: stored, it is
		// stored behind it (one not stored, or refused, is purged below).
		marked := snd.store.write(mctx, abort) == nil && snd.store.wait(mctx) == nil
		snd.drain() // a claim that came meanwhile
		if !marked || snd.aud.claimant == "" {
			// Let the frames in flight land first, so none lands after
			// the purge, headless.
			_ = snd.store.wait(wctx)
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
	kept := snd.store != nil && snd.store.stored()
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

// maxPasses is how many times a sender offers its item again when the
// taker it was offered to passes (it took another item meanwhile).
const maxPasses = 16

// rollCall finds who the item goes to. It offers the item to one taker
// (the satellite picks one of the queue group) and calls the roll of the
// listeners, at once. true: a taker took it, or listeners are attached;
// false: nobody is there (the satellite says so, or nobody answers in
// time), and the item is kept.
func (snd *sender) rollCall(ctx context.Context, answers <-chan answer, data []byte) (bool, error) {
	offer := nats.Msg{Subject: snd.s.Take(), Reply: snd.s.TakeReply(snd.item), Data: data}
	roll := nats.Msg{Subject: snd.s.Roll(), Reply: snd.s.Item(snd.item)}
	called := time.Now() // a receiver's answer times the path (liveWindow.seen)
	for _, m := range []*nats.Msg{&offer, &roll} {
		if err := snd.c.nc.PublishMsg(m); err != nil {
			return false, fmt.Errorf("looking for receivers: %w", err)
		}
	}
	// Behind the roll call, in the same flight: is the store there, for
	// the head of an item kept (startKeeping)?
	var lookCtx context.Context
	lookCtx, snd.stopLooking = context.WithCancel(ctx)
	snd.storeFound = snd.c.lookForStore(lookCtx, &snd.looking)
	t := time.NewTimer(snd.cfg.RollCallTimeout)
	defer t.Stop()
	const (
		unknown = iota
		none
		some
	)
	takers, listeners, passes := unknown, unknown, 0
	for takers != some && (takers == unknown || listeners == unknown) {
		select {
		case a := <-answers:
			switch a {
			case answerTaken:
				takers = some
				snd.win.seen(time.Since(called))
			case answerPassed:
				if passes++; passes > maxPasses {
					takers = none
				} else if err := snd.c.nc.PublishMsg(&offer); err != nil {
					return false, fmt.Errorf("looking for receivers: %w", err)
				}
			case answerNoTakers:
				takers = none
				snd.nobodyAfter = time.Since(called)
			case answerListener:
				listeners = some
				snd.win.seen(time.Since(called))
			case answerNoListeners:
				listeners = none
				snd.nobodyAfter = time.Since(called)
			}
		case <-t.C:
			// Not even a "nobody": keep the item, to be safe, unless a
			// listener answered. A taker may have the item from its offer
			// and be about to say so: the satellite settles it.
			taken := takers == some
			if !taken && data != nil {
				rid, err := snd.c.settleOffer(ctx, snd.s, snd.item)
				if err != nil {
					snd.offer.close()
					return false, err
				}
				if rid != "" {
					snd.offer.take(rid)
					taken = true
				}
			}
			return snd.decide(taken, listeners == some), nil
		case <-ctx.Done():
			snd.offer.close()
			return false, ctx.Err()
		}
	}
	return snd.decide(takers == some, listeners == some), nil
}

// decide closes the offer of the item: a taker that answers later is
// refused. A take that came in meanwhile counts.
func (snd *sender) decide(taken, listeners bool) bool {
	if !taken && snd.offer.close() {
		taken = true
	}
	return taken || listeners
}

// offerState is where a sender's offer of its item to one taker stands.
type offerState uint8

const (
	offerOpen   offerState = iota // offered: a taker may still take it
	offerTaken                    // a taker took it: its Take is in the audience
	offerClosed                   // the sender went on without a taker
)

// offerGate settles the race between a taker's late Take and the sender's
// decision to go on without one: exactly one of them wins, and the loser
// is told (a Take refused, a decision that finds the item taken). A Take
// that comes after the sender is gone finds nobody to refuse it: the
// taker's probe finds the sender gone before the item's first byte, and
// the taker waits on (receiver.checkSenders).
type offerGate struct {
	mu    sync.Mutex
	state offerState
	taker string    // the taker that took it
	ctl   *ctlQueue // the sender's: the taker's Take goes there
}

// takeResult is what the gate made of a taker's Take.
type takeResult uint8

const (
	takeNew     takeResult = iota // the item is now that taker's
	takeAgain                     // it was already that taker's (its record said so)
	takeRefused                   // too late, or another's
)

// take: a taker's Take, or its decision record read by the sender. The
// first queues the Take for the sender's loop, under the gate's lock: the
// listener, told takeAgain by a take that waited for that lock, queues the
// taker's acks behind it. (Queued after an ack, the Take would make a
// taker that wrote the item out from its offer a member that wrote
// nothing.)
func (g *offerGate) take(rid string) takeResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.state == offerTaken && g.taker == rid:
		return takeAgain
	case g.state != offerOpen:
		return takeRefused
	}
	g.state, g.taker = offerTaken, rid
	g.ctl.push(wire.Ctl{Kind: wire.Take, RID: rid})
	return takeNew
}

// close ends the offer; true if a taker took the item first.
func (g *offerGate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == offerOpen {
		g.state = offerClosed
	}
	return g.state == offerTaken
}

// drain applies every control message already there.
func (snd *sender) drain() {
	now := time.Now()
	for {
		cm, ok := snd.ctl.pop()
		if !ok {
			return
		}
		switch cm.Kind {
		case ctlReconnected:
			// Frames in flight when the connection went may be lost:
			// send again from the least any attached receiver took in.
			snd.aud.restart(now)
			snd.win.restart()
			if from, ok := snd.aud.slowest(); ok {
				snd.resend(from)
			}
		case wire.Resend:
			if m := snd.aud.members[cm.RID]; m != nil {
				if !m.lost.IsZero() {
					snd.c.noticef("the receiver of item %s that did not answer is back", snd.item)
				}
				m.lost = time.Time{}
				snd.resend(cm.Offset)
			}
		case ctlDead:
			m := snd.aud.members[cm.RID]
			first := m != nil && m.lost.IsZero()
			if snd.c.reconnects() && snd.aud.spare(cm.RID, now, snd.cfg.Reconnect) {
				if first {
					snd.c.noticef("a receiver of item %s does not answer; waiting up to %v for it to come back", snd.item, snd.cfg.Reconnect)
				}
				continue
			}
			snd.aud.apply(cm, snd.offset, now)
		default:
			m := snd.aud.members[cm.RID]
			lost := m != nil && !m.lost.IsZero()
			snd.aud.apply(cm, snd.offset, now)
			if lost && m.lost.IsZero() {
				snd.c.noticef("the receiver of item %s that did not answer is back", snd.item)
			}
		}
	}
}

// resend publishes the item's live frames again from offset from, and its
// end if that went out, for receivers that lost them to a lost
// connection; those that have them skip them by their offsets. Only the
// bytes of a live item's ring can go again: a receiver asking for more
// gets nothing and finds its item broken (a kept item's receivers read the
// store). A failed publish is left to the next ask.
func (snd *sender) resend(from uint64) {
	if snd.state != sendLive && snd.state != sendLiveEnding || from > snd.offset {
		return
	}
	if from < snd.offset && !snd.ring.holds(from) {
		return
	}
	if snd.out == nil {
		snd.out = make([]byte, wire.HeaderLen+chunkSize)
	}
	for off := from; off < snd.offset; {
		n := snd.ring.get(off, snd.out[wire.HeaderLen:wire.HeaderLen+min(chunkSize, snd.offset-off)])
		if snd.publishLive(wire.Seal(snd.out[:wire.HeaderLen+n], 0, off)) != nil {
			return
		}
		off += uint64(n)
	}
	if snd.aud.closed {
		_ = snd.publishLive(wire.Seal(wire.EndFrame(0, snd.offset), wire.FlagEnd, snd.offset))
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
	// A taker that wrote the item out from its offer (decide.go) may be
	// gone before the sender sends a byte: the item is delivered.
	if snd.state == sendLive && !snd.aud.endOut && (len(snd.aud.members) == 0 || snd.aud.keep.due) {
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
	var waiting time.Time // since when the window held the sender back
	for {
		if err := snd.settle(ctx); err != nil {
			return err
		}
		lo, someone := snd.aud.slowest()
		if someone {
			snd.win.acked(time.Now(), lo)
		}
		// lo may be past end: a taker that wrote the item out from its
		// offer acked all of it before a byte went live.
		if !someone || end <= lo || end-lo <= uint64(snd.win.size) {
			break
		}
		if waiting.IsZero() {
			waiting = time.Now()
		}
		if err := snd.wait(ctx); err != nil {
			return err
		}
	}
	if !waiting.IsZero() && snd.win.waited(time.Since(waiting)) && snd.cfg.windowGrew != nil {
		snd.cfg.windowGrew(snd.item, snd.win.size)
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
		snd.win.sent(time.Now(), end)
	}
	if !snd.kept() {
		snd.ring.put(ch.offset, ch.data(), snd.cfg.ringSize(snd.win.size))
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

// publishLive sends a live frame. A frame lost with a connection that is
// being re-established is no error: it goes again once the connection is
// back (resend).
func (snd *sender) publishLive(frame []byte) error {
	if err := snd.c.nc.Publish(snd.live, frame); err != nil && !snd.c.lostInFlight(err) {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

// flush waits until the satellite has what was published, unless the
// connection is being re-established: then what it lacks goes again
// once the connection is back.
func (snd *sender) flush() error {
	if err := snd.c.nc.FlushTimeout(snd.cfg.APITimeout); err != nil && !snd.c.lostInFlight(err) {
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
		// A receiver takes in bytes no further than the window behind the
		// offset and writes them out no further than HoldLimit and a chunk
		// behind that; the ring holds more. Keeping from later on would
		// leave a hole at the start of the kept item.
		return snd.c.invariant("item %s: bytes from %d on are due to be kept, but the ring holds only %d to %d",
			snd.item, snd.keptFrom, snd.ring.start(), snd.ring.end)
	}
	w, err := snd.c.newStoreWriter(snd.s, snd.item)
	if err != nil {
		return err
	}
	snd.store = w
	w.input = snd.input
	w.timed(snd.nobodyAfter)
	if snd.storeFound != nil {
		// Asked with the roll call: the answer is here, or nearly.
		select {
		case w.headAsync = <-snd.storeFound:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
			if err := snd.flush(); err != nil {
				return err
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
	if err := snd.flush(); err != nil {
		return err
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
