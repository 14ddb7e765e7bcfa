package pipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/linemux"
	"github.com/skypipe/skypipe/internal/wire"
)

// Role is how a receiver shares a pipe with other receivers.
type Role uint8

const (
	// Take: the receiver takes items for itself alone, as a receive from
	// a Go channel does. It takes the oldest kept item no other receiver
	// is taking, else the next item a sender hands it: a sender hands each
	// new item to exactly one of the takers waiting on the pipe.
	Take Role = iota
	// Listen: the receiver gets a copy of what is sent live, whoever takes
	// it, joining an item under way at its next line. With no taker
	// waiting, listeners take the items sent (they are not kept unless
	// every listener leaves before the end); a listener also takes a kept
	// item if the pipe keeps one when it looks and no taker waits on the
	// pipe (kept items are the takers').
	Listen
)

func (r Role) String() string {
	if r == Listen {
		return "listener"
	}
	return "taker"
}

// ReceiveOptions shape a receiver.
type ReceiveOptions struct {
	// Role: Take (the zero value) or Listen.
	Role Role
	// Follow keeps the receiver going across items, kept and live alike,
	// instead of returning at the end of the first.
	Follow bool
	// Timeout, if not zero, ends the receiver with ErrTimeout when nothing
	// arrives for that long.
	Timeout time.Duration
	// PartialOK: a receiver without Follow that writes out only a tail of
	// an item (ErrPartial) returns no error for it.
	PartialOK bool
	// Strict: a follower stops at the first item it cannot write out
	// whole, with that item's error. Without it, a follower reports such
	// an item (WithNotice) and goes on with the next.
	Strict bool
}

// ReceiveResult says what a receiver wrote out.
type ReceiveResult struct {
	Items int    // items written out to their end
	Bytes uint64 // bytes written out
	// NotWhole counts the items a follower wrote out only in part: broken
	// mid-way, or a tail (each reported through WithNotice).
	NotWhole int
}

// eventKind tells what an event of the receiver's loop carries.
type eventKind uint8

const (
	evLive        eventKind = iota // a live frame: msg
	evKept                         // a kept frame of a claimed item: msg, seq, more, head
	evReadFailed                   // a claimed item's reader stopped: err
	evProbed                       // a probe of an item's sender answered: gone
	evOffer                        // a sender offers this taker a new item: msg
	evRefused                      // the sender of an item this taker took went on without it
	evReconnected                  // the connection to the satellite was lost and is back
	evDecided                      // the satellite's answer to this taker's record of an item: msg
)

// event is what the receiver's loop reacts to, from its subscriptions, its
// kept-item readers and its probes.
type event struct {
	kind   eventKind
	item   string
	msg    *nats.Msg
	cl     *claim    // evKept, evReadFailed: the claim the reader serves
	seq    uint64    // evKept: stream sequence
	more   uint64    // evKept: frames still pending in the store
	stored time.Time // evKept: when the satellite stored it
	head   bool      // evKept: msg is the item's head
	err    error     // evReadFailed
	gone   bool      // evProbed
	at     time.Time // evOffer: when it came in
}

// itemState is where an incoming item stands. Each state allows the moves
// itemMoves lists, and no other.
type itemState uint8

const (
	itemWaiting itemState = iota // known, nothing of it read yet
	itemReading                  // its bytes go out as they come
	itemEnding                   // its end came; some of it waits behind another item's line
	itemDone                     // written out whole, or not ours to write
	itemBroken                   // it cannot be written out whole: reported
)

var itemStateNames = [...]string{"waiting", "reading", "ending", "done", "broken"}

func (s itemState) String() string { return itemStateNames[s] }

var itemMoves = map[itemState][]itemState{
	itemWaiting: {itemReading, itemDone, itemBroken},
	itemReading: {itemEnding, itemDone, itemBroken},
	itemEnding:  {itemDone, itemBroken},
}

// peerState is what a receiver knows of an item's sender.
type peerState uint8

const (
	peerHeard   peerState = iota // it sent something lately
	peerProbing                  // quiet: a probe asks whether it lives
	peerGone                     // the probe found it gone
)

// inItem is the receiver's view of one item.
type inItem struct {
	id    string
	state itemState
	next  uint64             // offset of the next byte expected
	from  uint64             // where it started to be written out: 0 unless only a tail
	out   *linemux.Stream    // its way onto the output, once it started
	claim *claim             // non-nil while this receiver holds the kept item
	sub   *nats.Subscription // a taker's subscription to the item's live frames
	peer  peerState          // its sender, as far as the receiver knows
	seen  time.Time          // when it last heard of the item
	quiet time.Time          // when the store first said nothing more was coming
	// A live item whose frames were lost in flight, when a connection
	// was lost: gapAt is when a frame past the gap came (zero: no gap),
	// askedAt when the receiver last asked the sender to send the item
	// again from next.
	gapAt, askedAt time.Time
	gapTo          uint64 // the offset of the first frame past the gap
	// lostAt: on a connection that reconnects, when its sender was first
	// found gone; it has Config.Reconnect to come back (zero: not lost).
	lostAt time.Time
	// offer: an item offered with its data, while the satellite has not
	// said whether this taker's record of it is stored (decide.go).
	offer *pendingOffer
}

// written is how far the item is written out.
func (it *inItem) written() uint64 {
	if it.out == nil {
		return it.next
	}
	return it.out.Written
}

func (it *inItem) open() bool { return it.state == itemWaiting || it.state == itemReading }

// receiverEvents is the length of a receiver's event queue.
const receiverEvents = 64

type receiver struct {
	c      *Client
	cfg    Config
	s      wire.Subjects
	js     *jsapi.API
	rid    string
	opt    ReceiveOptions
	mux    *linemux.Mux
	events chan event
	subs   []*nats.Subscription
	live   *nats.Subscription // a listener's: every live frame
	offers *nats.Subscription // a taker's: offers of new items
	// alive answers presence probes. It ends last, once the items this
	// receiver wrote out are removed: a receiver that looked gone before
	// would let another take them again.
	alive  *nats.Subscription
	done   chan struct{} // closed when the loop returns
	probes *prober
	claims *claimer
	// decisions: a taker's inbox for the satellite's answers to its
	// decision records (decisionInbox.<item>), made with the first.
	decisions     *nats.Subscription
	decisionInbox string
	freeze        freezeGuard

	// items: the items this receiver is at, and the finished ones it
	// still holds on to (a receiver without Follow, an item whose end the
	// output has not written yet). ended: the finished items a follower
	// remembers after dropping them from items (up to Config.Remember,
	// oldest first in endedOrder).
	items      map[string]*inItem
	ended      map[string]struct{}
	endedOrder []string
	// detached: a receiver without Follow that took a kept item wants that
	// item only; it no longer answers roll calls or takes live items.
	detached atomic.Bool
	primary  string // the item whose end ends a receiver without Follow
	looked   bool   // it looked for kept items once (claimNext)
	// takersSeen: when a listener last found a taker waiting on the pipe
	// (mayTakeKept); zero if it found none.
	takersSeen time.Time
	whole      int // items written out to their end
	notWhole   int // items a follower wrote out only in part
	last       time.Time
	ctlBuf     []byte
}

// Receive writes items of the pipe name to w: first the oldest kept item no
// other receiver is taking, else what senders send from now on. Without
// Follow it returns at the end of the first item. Bytes of items that end
// mid-way, or that the receiver leaves behind, are never lost: a kept item
// it could not write out whole stays in the pipe for the next receiver.
// Receive returns once every goroutine it started is done.
func (c *Client) Receive(ctx context.Context, name string, w io.Writer, opt ReceiveOptions) (ReceiveResult, error) {
	s, err := checkName(name)
	if err != nil {
		return ReceiveResult{}, err
	}
	js, err := c.jetstream()
	if err != nil {
		return ReceiveResult{}, err
	}
	r := &receiver{
		c: c, cfg: c.cfg, s: s, js: js, rid: nuid.Next(), opt: opt,
		mux: linemux.New(w, linemux.Limits{
			HoldLimit: c.cfg.HoldLimit, MaxHeld: c.cfg.maxHeld(), LineStall: c.cfg.LineStall,
		}),
		events: make(chan event, receiverEvents),
		done:   make(chan struct{}),
		items:  map[string]*inItem{},
		ended:  map[string]struct{}{},
		last:   time.Now(),
		freeze: newFreezeGuard(c.cfg.FrozenAfter, time.Now()),
	}
	r.claims = newClaimer(c, js, s, r.rid, r.post)
	ctx, explain, stop := c.watch(ctx, func() { r.post(event{kind: evReconnected}) })
	defer stop()
	r.probes = newProber(ctx, c, func(id string, gone bool) {
		r.post(event{kind: evProbed, item: id, gone: gone})
	})
	err = r.run(ctx)
	if cerr := r.close(ctx); err == nil {
		err = cerr
	}
	return ReceiveResult{Items: r.whole, Bytes: r.mux.Bytes(), NotWhole: r.notWhole}, explain(err)
}

func (r *receiver) subscribe(subject string, cb nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := r.c.nc.Subscribe(subject, cb)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	r.subs = append(r.subs, sub)
	return sub, nil
}

func (r *receiver) run(ctx context.Context) error {
	join := wire.AppendCtl(nil, wire.Join, 0, r.rid)
	answer := func(m *nats.Msg) { _ = m.Respond(join) }
	if err := r.attach(join); err != nil {
		return err
	}
	if _, err := r.subscribe(r.s.Who(), answer); err != nil {
		return err
	}
	if _, err := r.subscribe(wire.WhoAll, func(m *nats.Msg) {
		if m.Reply != "" {
			_ = r.c.nc.Publish(m.Reply+"."+r.s.Token, join)
		}
	}); err != nil {
		return err
	}
	alive, err := r.c.nc.Subscribe(r.s.Rcv(r.rid), func(m *nats.Msg) {
		if len(m.Data) == 0 {
			_ = m.Respond(nil) // a liveness probe
			return
		}
		// A sender refusing this taker's late Take; the reply subject
		// names the item, as an offer's does.
		if cm, ok := wire.ParseCtl(m.Data); ok && cm.Kind == wire.Pass && m.Reply != "" {
			r.post(event{kind: evRefused, item: wire.LastToken(m.Reply)})
		}
	})
	if err != nil {
		return err
	}
	r.alive = alive
	// No flush before looking in the store: a satellite handles a
	// connection's messages in order, so these subscriptions are in
	// place before the lookup that follows them is answered (and a
	// cluster's other members learn of them later either way). That is a
	// round trip less before a kept item comes out.
	if err := r.claimNext(ctx); err != nil {
		return err
	}

	// The clock ticks every Tick while something is in flight; a receiver
	// with nothing to watch only looks at the store every Rescan, so that
	// a thousand waiting receivers cost their machine and the satellite
	// next to nothing.
	idle := r.idle()
	tick := time.NewTicker(r.tickEvery(idle))
	defer tick.Stop()
	lastScan := time.Now()
	for !r.finished() {
		if now := r.idle(); now != idle {
			idle = now
			tick.Reset(r.tickEvery(idle))
		}
		select {
		case ev := <-r.events:
			if err := r.handle(ctx, ev); err != nil {
				return err
			}
		case now := <-tick.C:
			r.freeze.tick(time.Now())
			if err := r.overdueOffers(now); err != nil {
				return err
			}
			if r.opt.Timeout > 0 && now.Sub(r.last) >= r.opt.Timeout {
				return ErrTimeout
			}
			if err := r.checkSenders(ctx, now); err != nil {
				return err
			}
			if err := r.output(ctx, r.mux.Tick(now)); err != nil {
				return err
			}
			if (idle || now.Sub(lastScan) >= r.cfg.Rescan) && r.wantsMore() {
				lastScan = now
				if err := r.claimNext(ctx); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// idle tells whether the receiver has nothing to watch the time for: no
// item it is at, no line held, no --timeout.
func (r *receiver) idle() bool {
	return len(r.items) == 0 && !r.mux.Waiting() && r.opt.Timeout == 0
}

// tickEvery is how often the receiver looks at the time: every Tick, or
// only every Rescan while idle.
func (r *receiver) tickEvery(idle bool) time.Duration {
	if idle {
		return r.cfg.Rescan
	}
	return r.cfg.Tick
}

// attach subscribes a listener to every live frame and the roll call, and
// tells senders already sending that it is there; a taker to the offers of
// new items, one taker of the queue group each.
func (r *receiver) attach(join []byte) error {
	var err error
	if r.opt.Role == Take {
		return r.joinOffers()
	}
	r.live, err = r.subscribe(r.s.LiveAll(), func(m *nats.Msg) {
		r.post(event{kind: evLive, item: wire.LastToken(m.Subject), msg: m})
	})
	if err != nil {
		return err
	}
	if _, err := r.subscribe(r.s.Roll(), func(m *nats.Msg) {
		if !r.detached.Load() {
			_ = m.Respond(join)
		}
	}); err != nil {
		return err
	}
	return r.c.nc.Publish(r.s.Join(), join)
}

// takers is the queue group of a pipe's takers.
const takers = "takers"

// offered answers a sender's offer of a new item: a taker that wants an
// item takes it, subscribing to its live frames before it says so; one
// that has its item passes, and the sender offers it to another. So does
// one whose loop was busy for half the sender's roll call: its Take would
// likely come after the sender went on without a taker.
func (r *receiver) offered(m *nats.Msg, at time.Time) error {
	id, ok := offeredItem(m.Reply)
	if !ok {
		return nil // not an offer a sender makes
	}
	if r.detached.Load() || r.known(id) || time.Since(at) > r.cfg.RollCallTimeout/2 {
		r.ctlBuf = wire.AppendCtl(r.ctlBuf[:0], wire.Pass, 0, r.rid)
		_ = m.Respond(r.ctlBuf)
		return nil
	}
	it := &inItem{id: id}
	var err error
	it.sub, err = r.c.nc.Subscribe(r.s.Live(id), func(m *nats.Msg) {
		r.post(event{kind: evLive, item: id, msg: m})
	})
	if err != nil {
		return err
	}
	_ = it.sub.SetPendingLimits(-1, -1)
	r.items[id] = it
	it.seen = time.Now()
	if !r.opt.Follow {
		r.primary = id
		r.detach() // one item, as one receive from a Go channel
	}
	// An offer with the item's data: this taker writes it out from there
	// once its record of the item is stored (decide.go). One whose
	// payload does not parse is an offer without data; one read just
	// after this taker's clock stood still may be old.
	if frames, withData, _ := wire.ParseOffer(m.Data); withData && !r.freeze.suspect(time.Now()) {
		if err := r.record(id); err == nil {
			it.offer = &pendingOffer{msg: m, frames: frames, asked: time.Now()}
			return nil
		}
	}
	return r.answerTake(m)
}

// answerTake tells the sender of an offer that this taker takes the item.
func (r *receiver) answerTake(m *nats.Msg) error {
	r.ctlBuf = wire.AppendCtl(r.ctlBuf[:0], wire.Take, 0, r.rid)
	return m.Respond(r.ctlBuf)
}

// record asks the satellite to store this taker's decision record of item
// id; its answer comes as an evDecided.
func (r *receiver) record(id string) error {
	if r.decisions == nil {
		inbox := nats.NewInbox()
		sub, err := r.c.nc.Subscribe(inbox+".*", func(m *nats.Msg) {
			r.post(event{kind: evDecided, item: wire.LastToken(m.Subject), msg: m})
		})
		if err != nil {
			return err
		}
		r.decisions, r.decisionInbox = sub, inbox
		r.subs = append(r.subs, sub)
	}
	return r.c.nc.PublishMsg(&nats.Msg{
		Subject: r.s.Decided(id),
		Reply:   r.decisionInbox + "." + id,
		Header:  nats.Header{jetstream.ExpectedLastSubjSeqHeader: []string{"0"}},
		Data:    takerRecord(r.rid),
	})
}

// decided acts on the satellite's answer to this taker's record of an
// item offered with its data: stored, the item is this taker's, and it
// writes it out from the offer, as if its frames had come live (those
// that do come are skipped); refused, its sender gave up on this taker
// and keeps the item, which the taker then looks for in the store;
// anything else, the taker takes the item as it is sent.
func (r *receiver) decided(ctx context.Context, id string, m *nats.Msg) error {
	it := r.items[id]
	if it == nil || it.offer == nil {
		return nil
	}
	o := it.offer
	it.offer = nil
	switch decisionOf(m) {
	case decisionLost:
		return r.refused(ctx, id)
	case decisionUnknown:
		return r.answerTake(o.msg)
	}
	if err := r.answerTake(o.msg); err != nil {
		return err
	}
	for _, raw := range o.frames {
		f, err := wire.Parse(raw) // parsed once already (ParseOffer)
		if err != nil {
			return r.broken(ctx, it, err)
		}
		if err := r.handleLive(ctx, id, f); err != nil {
			return err
		}
	}
	return nil
}

// overdueOffers takes, as they are sent, the items offered with data whose
// record the satellite has not answered for APITimeout.
func (r *receiver) overdueOffers(now time.Time) error {
	for _, it := range r.items {
		if it.offer != nil && now.Sub(it.offer.asked) >= r.cfg.APITimeout {
			m := it.offer.msg
			it.offer = nil
			if err := r.answerTake(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// refused drops an item this taker took from an offer whose sender had
// already gone on without a taker (its answer came too late): the item is
// kept, so the taker goes back to the queue of offers and looks in the
// store. Nothing of it was read: a sender refuses only before its first
// frame.
func (r *receiver) refused(ctx context.Context, id string) error {
	it := r.items[id]
	if it == nil || it.sub == nil || it.state != itemWaiting || it.claim != nil {
		return nil
	}
	_ = it.sub.Unsubscribe()
	delete(r.items, id)
	if r.primary == id {
		r.primary = ""
	}
	if err := r.reattach(); err != nil {
		return err
	}
	return r.claimNext(ctx)
}

// offeredItem reads the item's id off the reply subject of an offer,
// skypipe.<token>.item.<item>.t.
func offeredItem(reply string) (string, bool) {
	rest, ok := strings.CutSuffix(reply, ".t")
	if !ok {
		return "", false
	}
	id := wire.LastToken(rest)
	return id, id != "" && id != rest
}

// finished: a receiver without Follow ends with its first item.
func (r *receiver) finished() bool {
	if r.opt.Follow || r.primary == "" {
		return false
	}
	it := r.items[r.primary]
	return it != nil && it.state == itemDone
}

// wantsMore: the receiver would take a(nother) kept item now.
func (r *receiver) wantsMore() bool {
	if !r.opt.Follow {
		// One item: not another once it took one, even before its first
		// byte comes (detached), or a rescan meanwhile would take a second.
		return r.primary == "" && !r.detached.Load()
	}
	for _, it := range r.items {
		if it.claim != nil && !it.claim.caughtUp {
			return false
		}
	}
	return true
}

// known tells whether the receiver is at item id or finished it.
func (r *receiver) known(id string) bool {
	if r.items[id] != nil {
		return true
	}
	_, ok := r.ended[id]
	return ok
}

// forget drops a follower's finished item from items, remembering only
// its id (up to Config.Remember of them): a follower's memory and the
// loop's walks over items stay the size of what it is at, not of all it
// ever took.
func (r *receiver) forget(it *inItem) {
	if !r.opt.Follow || it.claim != nil || it.sub != nil || it.open() || it.state == itemEnding {
		return
	}
	delete(r.items, it.id)
	r.ended[it.id] = struct{}{}
	r.endedOrder = append(r.endedOrder, it.id)
	if len(r.endedOrder) > max(r.cfg.Remember, 1) {
		delete(r.ended, r.endedOrder[0])
		r.endedOrder[0] = ""
		r.endedOrder = r.endedOrder[1:]
	}
}

// move changes an item's state, or reports a move itemMoves does not allow.
func (r *receiver) move(it *inItem, to itemState) error {
	for _, ok := range itemMoves[it.state] {
		if ok == to {
			it.state = to
			return nil
		}
	}
	return r.c.invariant("item %s: a receiver moved from %v to %v", it.id, it.state, to)
}

func (r *receiver) handle(ctx context.Context, ev event) error {
	switch ev.kind {
	case evOffer:
		return r.offered(ev.msg, ev.at)
	case evRefused:
		return r.refused(ctx, ev.item)
	case evDecided:
		return r.decided(ctx, ev.item, ev.msg)
	case evReconnected:
		r.reconnected(time.Now())
		return nil
	case evProbed:
		if it := r.items[ev.item]; it != nil && it.peer == peerProbing {
			it.peer, it.seen = peerHeard, time.Now()
			if ev.gone {
				it.peer = peerGone
			} else {
				r.senderBack(it)
			}
		}
		return nil
	case evReadFailed:
		it := r.items[ev.item]
		if it == nil || it.claim != ev.cl || !it.open() {
			return nil // a reader stopped on purpose
		}
		if errors.Is(ev.err, errClaimGone) {
			return r.reread(ctx, it, ev.err) // claimed anew, unless another took it
		}
		return r.broken(ctx, it, ev.err)
	case evKept:
		<-r.claims.slots
		it := r.items[ev.item]
		if it == nil || it.claim != ev.cl || !it.open() {
			return nil // a frame of a claim given up
		}
		f, err := wire.Parse(ev.msg.Data)
		if err != nil {
			return r.broken(ctx, it, err)
		}
		return r.handleKept(ctx, it, ev, f)
	}
	f, err := wire.Parse(ev.msg.Data)
	if err != nil {
		it := r.items[ev.item]
		if _, done := r.ended[ev.item]; it == nil && done {
			return nil
		}
		if it == nil {
			it = &inItem{id: ev.item}
			r.items[ev.item] = it
		}
		return r.broken(ctx, it, err)
	}
	return r.handleLive(ctx, ev.item, f)
}

// ackFrame tells a sender that a frame needs nothing of this receiver's.
func (r *receiver) ackFrame(id string, f wire.Frame) {
	done := f.Offset + uint64(len(f.Data))
	if f.End() {
		done++
	}
	r.sendAck(id, done, done)
}

func (r *receiver) handleLive(ctx context.Context, id string, f wire.Frame) error {
	it := r.items[id]
	if it != nil && it.offer != nil {
		// Offered with its data, and not yet this taker's: live frames
		// go to the listeners of an item its sender went on with, not to
		// a taker it gave up on.
		return nil
	}
	if it == nil && r.detached.Load() {
		return nil // not ours: its sender keeps it for the others
	}
	if _, done := r.ended[id]; it == nil && done {
		r.ackFrame(id, f) // finished: keep the sender from waiting on us
		return nil
	}
	if it == nil && r.claims.holdsAhead(id) {
		// Claimed ahead: it comes from the store; keep the sender from waiting on us.
		r.ackFrame(id, f)
		return nil
	}
	if it == nil && r.opt.Role == Take {
		// A taker hears live frames only on the subscription of an item it
		// was offered (offered), so this one was, and was dropped since:
		// finished and forgotten (a follower remembers Config.Remember
		// finished items), or refused. Its frame was queued before the
		// subscription went: starting the item again would write it twice.
		r.ackFrame(id, f)
		return nil
	}
	if it == nil {
		it = &inItem{id: id}
		r.items[id] = it
		if f.Kept() && (r.opt.Follow || r.primary == "") && r.mayTakeKept(ctx) {
			if _, err := r.claim(ctx, it, nil); err != nil {
				return err
			}
		}
	}
	if it.state == itemWaiting && it.sub != nil && it.claim == nil && f.Kept() {
		// Taken just as its sender decided to keep it: read it from the
		// store, from its first byte. Held there by another receiver, it
		// is that one's, which writes it whole: this taker leaves it, as
		// when its sender refuses it, and waits for the next. Not stored
		// yet (the store lags behind the live frames), it goes on live.
		res, err := r.claim(ctx, it, nil)
		if err != nil {
			return err
		}
		if res == claimHeld {
			return r.refused(ctx, id)
		}
	}
	if it.claim != nil || !it.open() {
		// Read from the store instead, or done: keep the sender from waiting on us.
		r.ackFrame(id, f)
		return nil
	}
	it.seen, it.peer = time.Now(), peerHeard
	r.last = it.seen
	r.senderBack(it)
	if it.state == itemReading {
		if f.Offset < it.next && !f.End() {
			// Sent again after a lost connection: skip what is here.
			if f.Offset+uint64(len(f.Data)) <= it.next {
				return nil
			}
			f.Data, f.Offset = f.Data[it.next-f.Offset:], it.next
		}
		if f.Offset > it.next {
			return r.lostFrames(ctx, it, f.Offset, it.seen)
		}
		it.gapAt = time.Time{}
	}
	if it.state == itemWaiting {
		if f.End() && f.Offset > 0 {
			// Attached just as it ended: nothing of it is ours to write.
			r.ackFrame(id, f)
			return r.move(it, itemDone)
		}
		if err := r.move(it, itemReading); err != nil {
			return err
		}
		if r.primary == "" && !r.opt.Follow {
			r.primary = id
		}
		it.next = f.Offset
		if f.Offset > 0 {
			skip := 0 // to the next line start, if the chunk has one
			if i := bytes.IndexByte(f.Data, '\n'); !f.LineStart() && i >= 0 && i+1 < len(f.Data) {
				skip = i + 1
			}
			r.c.noticef("joined item %s mid-way, at byte %d", id, f.Offset+uint64(skip))
			it.next += uint64(skip)
			f.Data, f.Offset = f.Data[skip:], it.next
		}
		it.from = it.next
		it.out = &linemux.Stream{ID: id, Live: true, Written: it.next}
	}
	return r.accept(ctx, it, f)
}

// lostFrames handles a live frame past a gap: the frames before it were in
// flight when a connection was lost. It drops the frame and asks the
// sender to send the item again from the gap (again every ResendWait/4);
// a gap not filled within ResendWait breaks the item.
func (r *receiver) lostFrames(ctx context.Context, it *inItem, got uint64, now time.Time) error {
	if it.gapAt.IsZero() {
		it.gapAt, it.gapTo = now, got
	}
	return r.fillGap(ctx, it, now)
}

// fillGap asks again for the frames of a gap, or gives up on them.
func (r *receiver) fillGap(ctx context.Context, it *inItem, now time.Time) error {
	if now.Sub(it.gapAt) >= r.cfg.ResendWait {
		return r.broken(ctx, it, it.lostError())
	}
	if now.Sub(it.askedAt) >= r.cfg.ResendWait/4 {
		r.askResend(it, now)
	}
	return nil
}

// lostError says that a live item lost frames that never came again.
func (it *inItem) lostError() error {
	return fmt.Errorf("%w: expected byte %d, got byte %d; its sender did not send the bytes between again", ErrCorrupt, it.next, it.gapTo)
}

// askResend asks the sender of a live item to send it again from the next
// byte this receiver expects, and says again how far it is.
func (r *receiver) askResend(it *inItem, now time.Time) {
	it.askedAt = now
	r.sendCtl(it.id, wire.Resend, it.next)
	if it.out != nil {
		r.sendAck(it.id, it.out.Written, it.next)
	}
}

// reconnected: frames and control messages in flight when the connection
// went may be lost. Every live item being read is asked for again from
// where it is, and no sender's silence during the loss counts.
func (r *receiver) reconnected(now time.Time) {
	for _, it := range r.items {
		it.seen = now
		if it.state == itemReading && it.claim == nil {
			r.askResend(it, now)
		}
	}
}

func (r *receiver) handleKept(ctx context.Context, it *inItem, ev event, f wire.Frame) (err error) {
	cl := it.claim
	it.seen, it.peer = time.Now(), peerHeard
	r.last = it.seen
	r.senderBack(it)
	if !cl.caughtUp && ev.more == 0 {
		// The kept part is read; a follower takes the next item meanwhile.
		cl.caughtUp = true
		if r.opt.Follow {
			defer func() {
				if err == nil {
					err = r.claimNext(ctx)
				}
			}()
		}
	}
	if ev.head {
		if it.state != itemWaiting {
			if f.Offset != it.out.Written && f.Offset > it.written() {
				return r.broken(ctx, it, fmt.Errorf("%w: a second head at byte %d", ErrCorrupt, f.Offset))
			}
			return r.took(it, ev) // delivered again after a re-read
		}
		if err := r.move(it, itemReading); err != nil {
			return err
		}
		if r.primary == "" && !r.opt.Follow {
			r.primary = it.id
		}
		it.next, it.from = f.Offset, f.Offset
		it.out = &linemux.Stream{ID: it.id, Written: f.Offset}
		if f.Offset > 0 {
			r.c.noticef("item %s is kept from byte %d on: its earlier bytes went to the receivers attached then", it.id, f.Offset)
		}
		return r.took(it, ev)
	}
	if it.state == itemWaiting {
		return r.broken(ctx, it, fmt.Errorf("%w: data before the item's head", ErrCorrupt))
	}
	if f.Offset < it.next && !f.End() {
		return r.took(it, ev) // delivered again: we have it
	}
	if f.Offset > it.next {
		// A gap: frames of a stored item that this receiver lost (they
		// were in flight when its link stalled), not damage to the item.
		// Read it again from there; a gap the store itself has is damage.
		return r.reread(ctx, it, fmt.Errorf("%w: expected byte %d, got byte %d", ErrCorrupt, it.next, f.Offset))
	}
	if err := r.took(it, ev); err != nil {
		return err
	}
	return r.accept(ctx, it, f)
}

// took notes a kept frame as read: its ack removes it at the item's end.
func (r *receiver) took(it *inItem, ev event) error {
	cl := it.claim
	if ev.msg.Reply != "" {
		cl.acks = append(cl.acks, ev.msg.Reply)
	}
	cl.lastSeq = max(cl.lastSeq, ev.seq)
	if ev.stored.After(cl.storedAt) {
		cl.storedAt = ev.stored
	}
	return nil
}

// reread reads a claimed item again from after the last frame taken, at
// most twice; a gap found again is the stored item's own.
func (r *receiver) reread(ctx context.Context, it *inItem, gap error) error {
	if it.claim.rereads >= 2 {
		return r.broken(ctx, it, gap)
	}
	next, err := r.claims.reread(ctx, it.claim)
	if err != nil {
		it.claim = nil // the consumer is gone, and with it the claim
		return r.broken(ctx, it, err)
	}
	it.claim = next
	return nil
}

// accept checks a frame's place in its item and writes it out.
func (r *receiver) accept(ctx context.Context, it *inItem, f wire.Frame) error {
	if f.Aborted() {
		return r.broken(ctx, it, ErrSenderAborted)
	}
	if f.Offset != it.next {
		return r.broken(ctx, it, fmt.Errorf("%w: expected byte %d, got byte %d", ErrCorrupt, it.next, f.Offset))
	}
	it.next += uint64(len(f.Data))
	now := time.Now()
	if len(f.Data) > 0 {
		if err := r.output(ctx, r.mux.Write(it.out, f.Data, now)); err != nil {
			return err
		}
	}
	if f.End() {
		if it.out.Held() > 0 {
			if err := r.move(it, itemEnding); err != nil {
				return err
			}
		}
		return r.output(ctx, r.mux.End(it.out, now))
	}
	return nil
}

// output acts on what the output did: it sends the acks due and completes
// the items whose end it wrote out. err is the output's own error.
func (r *receiver) output(ctx context.Context, err error) error {
	for _, a := range r.mux.Acks() {
		r.sendAck(a.Stream.ID, a.Written, a.Taken)
	}
	var oe *linemux.OutputError
	if errors.As(err, &oe) {
		it := r.items[oe.Stream.ID]
		if it == nil {
			return r.c.invariant("output of unknown item %s", oe.Stream.ID)
		}
		return r.broken(ctx, it, fmt.Errorf("%w: %v", ErrOutput, oe.Err))
	}
	if err != nil {
		return err
	}
	for _, s := range r.mux.Ended() {
		if err := r.complete(ctx, r.items[s.ID]); err != nil {
			return err
		}
	}
	return nil
}

// complete ends an item written out whole: a kept one leaves the pipe, a
// live one's sender learns it was written out.
func (r *receiver) complete(ctx context.Context, it *inItem) error {
	if it == nil {
		return r.c.invariant("end of an unknown item")
	}
	if err := r.move(it, itemDone); err != nil {
		return err
	}
	r.unsubscribe(it)
	r.whole++
	if it.claim != nil {
		r.claims.finish(ctx, it.claim)
		it.claim = nil
	} else {
		r.sendAck(it.id, it.written()+1, it.written()+1)
	}
	if it.from > 0 {
		if err := r.notWhole1(it, ErrPartial); err != nil {
			return err
		}
	}
	r.forget(it)
	if r.opt.Follow && r.wantsMore() {
		return r.claimNext(ctx)
	}
	return nil
}

// broken ends the receiver on an item that cannot be written out whole. A
// kept item whose sender gave it up, or that is damaged, is removed so that
// it does not block the items behind it; one this receiver could not read
// stays whole in the pipe.
func (r *receiver) broken(ctx context.Context, it *inItem, cause error) error {
	if it.claim != nil {
		cl := it.claim
		it.claim = nil
		r.claims.halt(cl)
		cctx, cancel := cleanupContext(ctx, r.cfg.FailoverWait+r.cfg.APITimeout)
		switch {
		case errors.Is(cause, ErrClaimLost), errors.Is(cause, ErrOutput), errors.Is(cause, errInvariant):
			// The reader's loss, not the item's: it stays whole.
		case errors.Is(cause, ErrSenderVanished) && cl.replicated:
			// A judgement, not a fact: a cluster recovering from a lost
			// member may not yet serve all it holds. Mark it broken after
			// all it holds (a frame stored later than everything the
			// sender stored), so that the next receiver knows.
			r.markBroken(cctx, it)
			cause = fmt.Errorf("%w (it stays in the pipe, marked broken; 'skypipe rm %s --item %s' drops it)", cause, r.s.Name, it.id)
		default:
			if err := r.c.purgeItem(cctx, r.s, it.id); err != nil {
				cause = fmt.Errorf("%w; removing it failed: %v", cause, err)
			}
		}
		r.claims.release(cctx, cl)
		cancel()
	}
	if it.open() || it.state == itemEnding {
		it.state = itemBroken
	}
	r.unsubscribe(it)
	if it.out != nil && r.opt.Follow && !r.opt.Strict && !fatal(cause) {
		// Its half line, if it left one open, ends here: the next item's
		// lines start on lines of their own.
		if _, err := r.mux.Drop(it.out, true, time.Now()); err != nil {
			return r.output(ctx, err)
		}
		if err := r.output(ctx, nil); err != nil {
			return err
		}
	}
	if err := r.notWhole1(it, cause); err != nil {
		return err
	}
	r.forget(it)
	return nil
}

// fatal tells whether an item's failure ends a follower too: its own
// output failed, or its own logic did.
func fatal(cause error) bool {
	return errors.Is(cause, ErrOutput) || errors.Is(cause, errInvariant)
}

// notWhole1 reports an item written out only in part: a follower notes it
// and goes on (unless Strict); a receiver without Follow returns it, unless
// it is a tail and tails are fine.
func (r *receiver) notWhole1(it *inItem, cause error) error {
	err := &ItemError{Item: it.id, Written: it.written(), Err: cause}
	switch {
	case r.opt.Follow && !r.opt.Strict && !fatal(cause):
		r.notWhole++
		r.c.noticef("%v", err)
		return nil
	case errors.Is(cause, ErrPartial) && r.opt.PartialOK && !r.opt.Follow:
		return nil
	}
	return err
}

// unsubscribe ends a taker's subscription to an item's live frames.
func (r *receiver) unsubscribe(it *inItem) {
	if it.sub != nil {
		_ = it.sub.Unsubscribe()
		it.sub = nil
	}
}

// markBroken stores an abort frame behind the frames of a kept item.
func (r *receiver) markBroken(ctx context.Context, it *inItem) {
	abort := wire.EndFrame(wire.FlagAbort, it.next)
	_ = r.js.Retry(ctx, func(ctx context.Context) error {
		resp, err := r.c.nc.RequestWithContext(ctx, r.s.Kept(it.id), abort)
		if err != nil {
			return err
		}
		return jsapi.DecodeAck(resp.Data)
	})
}

// checkSenders probes the senders of items that went quiet, and breaks the
// items whose sender is gone.
func (r *receiver) checkSenders(ctx context.Context, now time.Time) error {
	for _, it := range r.items {
		// Waiting: a claimed kept item, or one this taker took from an
		// offer, whose sender may vanish before its first frame.
		if it.state != itemReading && !(it.state == itemWaiting && (it.claim != nil || it.sub != nil)) {
			continue
		}
		if !it.gapAt.IsZero() {
			if err := r.fillGap(ctx, it, now); err != nil {
				return err
			}
		}
		switch it.peer {
		case peerGone:
			quiet, err := r.quiet(ctx, it)
			if err != nil || !quiet {
				it.peer, it.seen, it.quiet = peerHeard, now, time.Time{}
				continue
			}
			if it.claim != nil && it.claim.replicated {
				// A stream leader elected a moment ago may not have
				// applied all it holds: it must say "nothing more"
				// twice, SettleTime apart.
				if it.quiet.IsZero() {
					it.quiet = now
				}
				if now.Sub(it.quiet) < r.cfg.SettleTime {
					continue
				}
			}
			if it.claim == nil && it.sub != nil && it.state == itemWaiting {
				// Taken from an offer, and nothing of it came: its sender
				// went on without this taker (it kept the item) and is
				// done, or vanished before its first byte. Nothing was
				// written: say so, and wait on.
				r.c.noticef("item %s was offered to this receiver, but its sender went away before its first byte; waiting for the next", it.id)
				if err := r.refused(ctx, it.id); err != nil {
					return err
				}
				continue
			}
			if r.c.reconnects() && r.cfg.Reconnect > 0 {
				// Its connection may be being re-established: give it
				// Reconnect to come back and send the item on.
				first := it.lostAt.IsZero()
				if first {
					it.lostAt = now
				}
				if left := r.graceLeft(it, now); left > 0 {
					if first {
						r.c.noticef("the sender of item %s does not answer; waiting up to %v for it to come back", it.id, left.Round(time.Second))
					}
					it.peer, it.seen = peerHeard, now
					continue
				}
			}
			if !it.gapAt.IsZero() {
				return r.broken(ctx, it, it.lostError())
			}
			return r.broken(ctx, it, ErrSenderVanished)
		case peerHeard:
			if now.Sub(it.seen) >= r.cfg.IdleProbe {
				it.peer = peerProbing
				r.probes.probe(it.id, r.s.Item(it.id))
			}
		}
	}
	return nil
}

// graceLeft is how much longer the sender of it, found gone at it.lostAt,
// may take to come back: Config.Reconnect from when it went. For a kept
// item that is from the last frame the satellite stored, if earlier: a
// sender that stopped storing longer ago than that (its partial item left
// behind by a crash) is past its bound already and not waited for. (That
// compares the satellite's clock with this one's; a skew between them
// shortens or lengthens the wait by as much.)
func (r *receiver) graceLeft(it *inItem, now time.Time) time.Duration {
	since := it.lostAt
	if it.claim != nil && !it.claim.storedAt.IsZero() && it.claim.storedAt.Before(since) {
		since = it.claim.storedAt
	}
	return r.cfg.Reconnect - now.Sub(since)
}

// senderBack notes that the sender of it answered again.
func (r *receiver) senderBack(it *inItem) {
	if !it.lostAt.IsZero() {
		it.lostAt = time.Time{}
		r.c.noticef("the sender of item %s is back", it.id)
	}
}

// quiet confirms that nothing more of an item is on its way: no live frame
// waiting, no kept frame stored beyond the last one read.
func (r *receiver) quiet(ctx context.Context, it *inItem) (bool, error) {
	if len(r.events) > 0 {
		return false, nil
	}
	sub := r.live
	if it.sub != nil {
		sub = it.sub
	}
	if sub != nil {
		if n, _, _ := sub.Pending(); n > 0 {
			return false, nil
		}
	}
	if it.claim == nil {
		return true, nil
	}
	// Ask the stream's leader: a replica lagging behind (in a cluster)
	// would not know of the rest. Stored frames that do not come are the
	// reader's loss: read them again.
	more, err := r.c.storedFrom(ctx, r.s, it.id, it.claim.lastSeq+1)
	if err == nil && more && time.Since(it.seen) > r.cfg.FailoverWait {
		return false, r.reread(ctx, it, fmt.Errorf("%w: frames stored but not delivered", ErrClaimLost))
	}
	return !more, err
}

// mayTakeKept tells whether this receiver may take a kept item: a taker
// may; a listener only while no taker waits on the pipe, since a kept item
// is the takers' (a listener gets a copy of what goes by live). Kept
// items of a pipe with a taker are kept because no taker answered in time
// (a busy aggregator, a starved machine), not because nobody wanted them;
// a listener that took them would leave holes in the aggregator's log.
// A taker found is believed for Rescan, so that a listener meeting many
// kept items asks once in that time.
func (r *receiver) mayTakeKept(ctx context.Context) bool {
	if r.opt.Role == Take {
		return true
	}
	if !r.takersSeen.IsZero() && time.Since(r.takersSeen) < r.cfg.Rescan {
		return false
	}
	waiting := r.c.takersWaiting(ctx, r.s)
	r.takersSeen = time.Time{}
	if waiting {
		r.takersSeen = time.Now()
	}
	return !waiting
}

// claimNext takes the oldest kept item no other receiver is taking, if any;
// a listener only while no taker waits (mayTakeKept).
func (r *receiver) claimNext(ctx context.Context) error {
	known := r.known
	if r.wantsMore() {
		if a := r.claims.takeAhead(ctx, known); a != nil {
			it := &inItem{id: a.item}
			r.items[a.item] = it
			r.startClaim(it, a.claim)
			r.claims.claimAhead(ctx, a.head.Seq+1, known)
			return nil
		}
	}
	var from uint64
	for r.wantsMore() {
		// A receiver's first look also asks for the pipe's first frames,
		// in the same flight: a small item found whole among them needs
		// no pull (claimer.firstFrames). Later looks (every Rescan, for
		// a receiver that waits) ask for heads only.
		var small []jsapi.Head
		var looking sync.WaitGroup
		if !r.opt.Follow && !r.looked {
			looking.Go(func() { small = r.claims.firstFrames(ctx) })
		}
		// A listener's first look asks whether a taker waits in its
		// flight too; later ones only once they found kept items, so that
		// a listener waiting on an empty pipe costs nothing more.
		mayTake, asked := true, false
		if r.opt.Role == Listen && !r.looked {
			asked = true
			looking.Go(func() { mayTake = r.mayTakeKept(ctx) })
		}
		r.looked = true
		heads, more, err := r.claims.heads(ctx, from)
		looking.Wait()
		if err != nil {
			return err
		}
		if len(heads) > 0 && r.opt.Role == Listen && !asked {
			mayTake = r.mayTakeKept(ctx)
		}
		if r.cfg.keptLooked != nil {
			r.cfg.keptLooked(len(heads), mayTake)
		}
		if len(heads) == 0 || !mayTake {
			return nil
		}
		for _, h := range heads {
			if !r.wantsMore() {
				return nil
			}
			from = h.Seq + 1
			id := wire.LastToken(h.Subject)
			if known(id) {
				continue
			}
			if at, ok := r.claims.othersHold[id]; ok && time.Since(at) < r.cfg.Rescan {
				continue // held by a live receiver a moment ago: do not ask again yet
			}
			it := &inItem{id: id}
			r.items[id] = it
			if _, err := r.claim(ctx, it, wholeItem(small, r.s, id, h.Seq)); err != nil {
				return err
			}
			if it.claim == nil {
				delete(r.items, id) // someone else's: it may come to us live
				continue
			}
			if !r.opt.Follow {
				return nil
			}
			r.claims.claimAhead(ctx, h.Seq+1, known)
		}
		if !more {
			return nil
		}
	}
	return nil
}

// claim tries to take the kept item it; it.claim says whether it did, and
// the result whether another live receiver holds it or nothing of it is
// stored (yet).
// direct, if not nil, is the whole item as the look that found it got it:
// claimed, it is written out from there if the satellite still holds just
// those frames.
func (r *receiver) claim(ctx context.Context, it *inItem, direct []jsapi.Head) (claimResult, error) {
	c, res, err := r.claims.create(ctx, it.id, r.claims.name())
	if err != nil {
		return res, err
	}
	switch res {
	case claimTaken:
		if direct != nil && c.stored == uint64(len(direct)) {
			c.direct = direct
		}
		delete(r.claims.othersHold, it.id)
		r.startClaim(it, c)
	case claimHeld:
		r.claims.othersHold[it.id] = time.Now()
	}
	return res, nil
}

// startClaim starts reading a kept item this receiver holds.
func (r *receiver) startClaim(it *inItem, c *claim) {
	it.claim, it.seen, it.peer = c, time.Now(), peerHeard
	r.claims.start(c)
	r.sendCtl(it.id, wire.Claim, 0)
	if !r.opt.Follow {
		r.detach()
	}
}

// detach makes a receiver without Follow that has its item stop taking
// others: a taker leaves the queue of offers; a listener leaves the
// audience of every other item (senders learn it left and keep their
// items for the next receiver), so that one receiver takes one item.
func (r *receiver) detach() {
	if r.detached.Swap(true) {
		return
	}
	if r.offers != nil {
		_ = r.offers.Unsubscribe()
		return
	}
	_ = r.live.Unsubscribe() // the item comes from the store
	r.ctlBuf = wire.AppendCtl(r.ctlBuf[:0], wire.Leave, 0, r.rid)
	_ = r.c.nc.Publish(r.s.Join(), r.ctlBuf)
}

// reattach undoes detach for a taker whose only item was refused: it joins
// the queue of offers again.
func (r *receiver) reattach() error {
	if r.opt.Role != Take || !r.detached.Load() || r.primary != "" {
		return nil
	}
	if err := r.joinOffers(); err != nil {
		return err
	}
	r.detached.Store(false)
	return nil
}

// joinOffers subscribes a taker to the offers of new items, one taker of
// the queue group each.
func (r *receiver) joinOffers() error {
	offers, err := r.c.nc.QueueSubscribe(r.s.Take(), takers, func(m *nats.Msg) {
		r.post(event{kind: evOffer, msg: m, at: time.Now()})
	})
	if err != nil {
		return err
	}
	r.offers = offers
	r.subs = append(r.subs, offers)
	return nil
}

// post hands an event to the receiver's loop, unless it has returned.
func (r *receiver) post(ev event) bool {
	select {
	case r.events <- ev:
		return true
	case <-r.done:
		return false
	}
}

func (r *receiver) sendCtl(id string, kind byte, offset uint64) {
	r.ctlBuf = wire.AppendCtl(r.ctlBuf[:0], kind, offset, r.rid)
	_ = r.c.nc.Publish(r.s.Item(id), r.ctlBuf)
}

// sendAck tells an item's sender what this receiver wrote out, and up to
// where it took the item in (written, or held behind another item's line).
func (r *receiver) sendAck(id string, written, accepted uint64) {
	r.ctlBuf = wire.AppendAck(r.ctlBuf[:0], written, accepted, r.rid)
	_ = r.c.nc.Publish(r.s.Item(id), r.ctlBuf)
}

// close detaches: kept items not written out whole go back to the pipe,
// senders of live items learn how much was written out. It waits for every
// goroutine the receiver started and returns the first error in removing
// the items it wrote out.
func (r *receiver) close(ctx context.Context) error {
	close(r.done)
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	r.probes.close()
	for id, it := range r.items {
		if it.claim != nil {
			r.claims.release(ctx, it.claim)
			it.claim = nil
			continue
		}
		if it.open() || it.state == itemEnding {
			r.sendCtl(id, wire.Leave, it.written())
		}
		r.unsubscribe(it)
	}
	err := r.claims.close(ctx)
	if r.alive != nil {
		_ = r.alive.Unsubscribe()
	}
	r.ctlBuf = wire.AppendCtl(r.ctlBuf[:0], wire.Leave, 0, r.rid)
	_ = r.c.nc.Publish(r.s.Join(), r.ctlBuf)
	// Not waited for: the connection's flusher sends it, or its Close
	// (which flushes first). Waiting would cost a round trip after the
	// data is out.
	return err
}
