package pipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ReceiveOptions shape a receiver.
type ReceiveOptions struct {
	// Follow keeps the receiver going across items, kept and live alike,
	// instead of returning at the end of the first.
	Follow bool
	// Timeout, if not zero, ends the receiver with ErrTimeout when nothing
	// arrives for that long.
	Timeout time.Duration
}

// ReceiveResult says what a receiver wrote out.
type ReceiveResult struct {
	Items int    // items written out to their end
	Bytes uint64 // bytes written out
}

// keptPull is how many bytes of a kept item a receiver has in flight on a
// standing pull, and keptPullMsgs how many frames one exact pull asks for
// (claim.go): with keptSlots, what bounds a receiver's memory while it
// drains.
const (
	keptPull     = 4 << 20
	keptPullMsgs = 16
)

// receiverEvents is the length of a receiver's event queue, and
// keptSlots how many of its events may be kept frames: with keptPull, what
// bounds the memory of a receiver draining a big kept item.
const (
	receiverEvents = 64
	keptSlots      = 8
)

// rescanEvery is how often an idle receiver looks in the store for kept
// items that no live frame announced.
const rescanEvery = 2 * time.Second

// event is what the receiver's loop reacts to, from its subscriptions, its
// kept-item readers and its probes.
type event struct {
	item  string
	msg   *nats.Msg // a live or kept frame
	kept  bool      // msg came from the store
	seq   uint64    // kept: stream sequence
	more  uint64    // kept: messages still pending in the store
	head  bool      // kept: msg is the item's head
	err   error     // kept: the reader failed
	probe int       // a sender probe answered: probeAlive or probeGone
}

const (
	probeAlive = 1
	probeGone  = 2
)

// inItem is the receiver's view of one item.
type inItem struct {
	id       string
	next     uint64 // offset of the next byte expected
	started  bool
	done     bool
	claim    *claim // non-nil while this receiver holds the kept item
	written  uint64 // offset up to which the item was written out
	held     []byte // bytes waiting for another item's line to end
	heldEnd  bool   // the end arrived behind held bytes
	queued   bool   // it is in the receiver's waiting queue
	lastSeen time.Time
	probing  bool
	gone     bool // a probe found the sender gone
	lastSeq  uint64
	quietAt  time.Time // when the store first said nothing more was coming
}

type claim struct {
	consumer string
	stop     func()   // stops its reader
	acks     []string // where to ack each frame read, to remove it at the end
	caughtUp bool
}

type receiver struct {
	c      *Client
	s      subjects
	js     jetstream.JetStream
	rid    string
	opt    ReceiveOptions
	w      io.Writer
	events chan event
	// keptSlots holds a token for every kept frame posted and not yet
	// handled.
	keptSlots chan struct{}
	subs      []*nats.Subscription
	live      *nats.Subscription
	done      chan struct{} // closed when the receiver returns

	items map[string]*inItem
	// claimed: the items this receiver holds a claim on (claim != nil).
	claimed map[string]*inItem
	// othersHold: kept items found held by another live receiver, and when.
	othersHold map[string]time.Time
	// detached: a receiver without Follow that took a kept item wants that
	// item only; it no longer answers roll calls or takes live items.
	detached  atomic.Bool
	primary   string    // the item whose end ends a receiver without Follow
	owner     string    // the item whose line is open on the output
	ownerAt   time.Time // when the owner last wrote
	ownerLine int       // how long the open line is so far
	waiting   []*inItem // items with held bytes, first come first served
	claims    int
	res       ReceiveResult
	last      time.Time // when anything last arrived
	ctlBuf    []byte

	// A follower's claims on the next kept items (claim.go): in the order
	// it takes them; the heads found after them; where to look on.
	aheads     []*ahead
	aheadHeads []headRef
	aheadFrom  uint64
	headSub    *nats.Subscription // answers to looks for kept items
	headInbox  string
	headReqs   int

	// Kept items written out whole, on their way out of the pipe
	// (claim.go), and the first error in removing one.
	cleanup    chan cleanupJob
	cleaners   sync.WaitGroup
	cleanupMu  sync.Mutex
	cleanupErr error
}

// Receive writes items of the pipe name to w: first the oldest kept item no
// other receiver is taking, else what senders send from now on. Without
// Follow it returns at the end of the first item. Bytes of items that end
// mid-way, or that the receiver leaves behind, are never lost: a kept item
// it could not write out whole stays in the pipe for the next receiver.
func (c *Client) Receive(ctx context.Context, name string, w io.Writer, opt ReceiveOptions) (ReceiveResult, error) {
	s, err := checkName(name)
	if err != nil {
		return ReceiveResult{}, err
	}
	js, err := jetstream.New(c.nc)
	if err != nil {
		return ReceiveResult{}, err
	}
	r := &receiver{
		c: c, s: s, js: js, rid: nuid.Next(), opt: opt, w: w,
		events:     make(chan event, receiverEvents),
		keptSlots:  make(chan struct{}, keptSlots),
		done:       make(chan struct{}),
		items:      map[string]*inItem{},
		claimed:    map[string]*inItem{},
		othersHold: map[string]time.Time{},
		last:       time.Now(),
	}
	defer r.close()
	ctx, explain, stop := c.watch(ctx)
	defer stop()
	err = r.run(ctx)
	if cerr := r.waitCleanup(); err == nil {
		err = cerr
	}
	return r.res, explain(err)
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
	var err error
	r.live, err = r.subscribe(r.s.liveAll(), func(m *nats.Msg) {
		r.post(event{item: lastToken(m.Subject), msg: m})
	})
	if err != nil {
		return err
	}
	join := appendCtl(nil, ctlJoin, 0, r.rid)
	if _, err := r.subscribe(r.s.roll(), func(m *nats.Msg) {
		if !r.detached.Load() {
			_ = m.Respond(join)
		}
	}); err != nil {
		return err
	}
	if _, err := r.subscribe(r.s.rcv(r.rid), func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		return err
	}
	if err := r.c.nc.Publish(r.s.join(), join); err != nil {
		return err
	}
	if err := r.c.nc.FlushTimeout(apiTimeout); err != nil {
		return fmt.Errorf("attaching to pipe %q: %w", r.s.name, err)
	}
	if err := r.claimNext(ctx); err != nil {
		return err
	}

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastScan := time.Now()
	for {
		if r.finished() {
			return nil
		}
		select {
		case ev := <-r.events:
			if err := r.handle(ctx, ev); err != nil {
				return err
			}
		case now := <-tick.C:
			if r.opt.Timeout > 0 && now.Sub(r.last) >= r.opt.Timeout {
				return ErrTimeout
			}
			if err := r.checkSenders(ctx, now); err != nil {
				return err
			}
			if err := r.cutStalledLine(now); err != nil {
				return err
			}
			if now.Sub(lastScan) >= rescanEvery && r.wantsMore() {
				lastScan = now
				if err := r.claimNext(ctx); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// finished: a receiver without Follow ends with its first item.
func (r *receiver) finished() bool {
	if r.opt.Follow || r.primary == "" {
		return false
	}
	it := r.items[r.primary]
	return it != nil && it.done
}

// wantsMore: the receiver would take a(nother) kept item now.
func (r *receiver) wantsMore() bool {
	if !r.opt.Follow {
		return r.primary == ""
	}
	for _, it := range r.claimed {
		if !it.claim.caughtUp {
			return false
		}
	}
	return true
}

func (r *receiver) handle(ctx context.Context, ev event) error {
	if ev.kept && ev.msg != nil {
		<-r.keptSlots
	}
	if ev.probe != 0 {
		if it := r.items[ev.item]; it != nil {
			it.probing = false
			if ev.probe == probeGone {
				it.gone = true
			} else {
				it.lastSeen = time.Now()
			}
		}
		return nil
	}
	if ev.err != nil {
		it := r.items[ev.item]
		if it == nil || it.done || it.claim == nil {
			return nil // a reader stopped on purpose
		}
		return &ItemError{Item: ev.item, Written: it.written, Err: fmt.Errorf("%w: %v", ErrClaimLost, ev.err)}
	}
	f, err := parseFrame(ev.msg.Data)
	if err != nil {
		return r.broken(ctx, ev.item, err)
	}
	if ev.kept {
		return r.handleKept(ctx, ev, f)
	}
	return r.handleLive(ctx, ev.item, f)
}

func (r *receiver) handleLive(ctx context.Context, id string, f frame) error {
	it := r.items[id]
	if it == nil && r.detached.Load() {
		return nil // not ours: its sender keeps it for the others
	}
	if it == nil && r.aheadHolds(id) {
		// Claimed ahead: it comes from the store; keep the sender from waiting on us.
		done := f.offset + uint64(len(f.data)) + boolToUint(f.end())
		r.sendAck(id, done, done)
		return nil
	}
	if it == nil {
		it = &inItem{id: id}
		r.items[id] = it
		if f.kept() && (r.opt.Follow || r.primary == "") {
			ok, err := r.claim(ctx, id)
			if err != nil {
				return err
			}
			if ok {
				r.sendCtl(id, ctlClaim, 0)
			}
		}
	}
	if it.claim != nil || it.done {
		// Read from the store instead; keep the sender from waiting on us.
		done := f.offset + uint64(len(f.data)) + boolToUint(f.end())
		r.sendAck(id, done, done)
		return nil
	}
	it.lastSeen = time.Now()
	r.last = it.lastSeen
	if !it.started && f.end() && f.offset > 0 {
		// Attached just as it ended: nothing of it is ours to write.
		it.done = true
		r.sendAck(id, f.offset+1, f.offset+1)
		return nil
	}
	if !it.started {
		it.started = true
		if r.primary == "" && !r.opt.Follow {
			r.primary = id
		}
		it.next, it.written = f.offset, f.offset
		if f.offset > 0 {
			skip := 0 // to the next line start, if the chunk has one
			if i := bytes.IndexByte(f.data, '\n'); !f.lineStart() && i >= 0 && i+1 < len(f.data) {
				skip = i + 1
			}
			r.c.noticef("joined item %s mid-way, at byte %d", id, f.offset+uint64(skip))
			it.next += uint64(skip)
			it.written = it.next
			f.data, f.offset = f.data[skip:], it.next
		}
	}
	return r.accept(ctx, it, f)
}

func (r *receiver) handleKept(ctx context.Context, ev event, f frame) (err error) {
	it := r.items[ev.item]
	if it == nil || it.claim == nil || it.done {
		return nil
	}
	it.lastSeen, it.lastSeq = time.Now(), ev.seq
	r.last = it.lastSeen
	if ev.msg.Reply != "" {
		it.claim.acks = append(it.claim.acks, ev.msg.Reply)
	}
	if !it.claim.caughtUp && ev.more == 0 {
		// The kept part is read; a follower takes the next item meanwhile.
		it.claim.caughtUp = true
		if r.opt.Follow {
			defer func() {
				if err == nil {
					err = r.claimNext(ctx)
				}
			}()
		}
	}
	if ev.head {
		if it.started {
			if f.offset != it.next && f.offset > it.written {
				return r.broken(ctx, ev.item, fmt.Errorf("%w: a second head at byte %d", ErrCorrupt, f.offset))
			}
			return nil // redelivered
		}
		it.started = true
		if r.primary == "" && !r.opt.Follow {
			r.primary = ev.item
		}
		it.next, it.written = f.offset, f.offset
		if f.offset > 0 {
			r.c.noticef("item %s is kept from byte %d on: its earlier bytes went to the receivers attached then", ev.item, f.offset)
		}
		return nil
	}
	if !it.started {
		return r.broken(ctx, ev.item, fmt.Errorf("%w: data before the item's head", ErrCorrupt))
	}
	if f.offset < it.next && !f.end() {
		return nil // a redelivery of what we have
	}
	return r.accept(ctx, it, f)
}

// accept checks a frame's place in its item and writes it out.
func (r *receiver) accept(ctx context.Context, it *inItem, f frame) error {
	if f.aborted() {
		return r.broken(ctx, it.id, ErrSenderAborted)
	}
	if f.offset != it.next {
		return r.broken(ctx, it.id, fmt.Errorf("%w: expected byte %d, got byte %d", ErrCorrupt, it.next, f.offset))
	}
	it.next += uint64(len(f.data))
	if len(f.data) > 0 {
		if err := r.write(it, f.data); err != nil {
			return err
		}
	}
	if f.end() {
		if len(it.held) > 0 {
			it.heldEnd = true
			return nil
		}
		return r.end(ctx, it)
	}
	return nil
}

// end completes an item: a kept one leaves the pipe, a live one's sender
// learns it was written out.
func (r *receiver) end(ctx context.Context, it *inItem) error {
	it.done = true
	r.res.Items++
	if r.owner == it.id {
		r.owner = ""
	}
	if it.claim != nil {
		r.finishKept(it)
	} else {
		r.sendAck(it.id, it.written+1, it.written+1)
	}
	if err := r.flushHeld(); err != nil {
		return err
	}
	if r.opt.Follow && r.wantsMore() {
		return r.claimNext(ctx)
	}
	return nil
}

// broken ends the receiver on an item that cannot be written out whole. A
// broken kept item is removed, so it does not block the items behind it.
func (r *receiver) broken(ctx context.Context, id string, cause error) error {
	it := r.items[id]
	if it == nil {
		it = &inItem{id: id}
	}
	if it.claim != nil {
		it.claim.stop()
		if errors.Is(cause, ErrSenderVanished) && r.c.clustered() {
			// A judgement, not a fact: a cluster recovering from a lost
			// member may not yet serve all it holds. Leave the item.
			cause = fmt.Errorf("%w (it stays in the pipe, as a cluster may still be recovering it; 'skypipe rm' drops it)", cause)
		} else {
			_ = r.c.purgeItem(ctx, r.s, id)
		}
		r.release(it)
	}
	it.done = true
	return &ItemError{Item: id, Written: it.written, Err: cause}
}

// checkSenders probes the senders of items that went quiet, and breaks the
// items whose sender is gone.
func (r *receiver) checkSenders(ctx context.Context, now time.Time) error {
	for id, it := range r.items {
		if !it.started || it.done {
			continue
		}
		if it.gone {
			if quiet, err := r.quiet(ctx, it); err != nil || !quiet {
				it.gone, it.quietAt = false, time.Time{}
				it.lastSeen = now
				continue
			}
			if it.claim != nil && r.c.clustered() {
				// A stream leader elected a moment ago may not have
				// applied all it holds: it must say "nothing more"
				// twice, settleTime apart.
				if it.quietAt.IsZero() {
					it.quietAt = now
				}
				if now.Sub(it.quietAt) < settleTime {
					continue
				}
			}
			return r.broken(ctx, id, ErrSenderVanished)
		}
		if it.probing || now.Sub(it.lastSeen) < idleProbe {
			continue
		}
		it.probing = true
		go func(id string) {
			ev := event{item: id, probe: probeAlive}
			if r.c.peerGone(r.s.item(id)) {
				ev.probe = probeGone
			}
			r.post(ev)
		}(id)
	}
	return nil
}

// quiet confirms that nothing more of an item is on its way: no live frame
// waiting, no kept frame stored beyond the last one read.
func (r *receiver) quiet(ctx context.Context, it *inItem) (bool, error) {
	if len(r.events) > 0 {
		return false, nil
	}
	if n, _, _ := r.live.Pending(); n > 0 {
		return false, nil
	}
	if it.claim == nil {
		return true, nil
	}
	// Ask the stream's leader: a replica lagging behind (in a cluster)
	// would not know of the rest.
	more, err := r.c.storedFrom(ctx, r.s, it.id, it.lastSeq+1)
	return !more, err
}

// detach makes a receiver without Follow that took a kept item stop being
// an audience for other items: senders learn it left and keep their items
// for the next receiver, so that one receiver takes one item.
func (r *receiver) detach() {
	if r.detached.Swap(true) {
		return
	}
	_ = r.live.Unsubscribe() // the item comes from the store
	r.ctlBuf = appendCtl(r.ctlBuf[:0], ctlLeave, 0, r.rid)
	_ = r.c.nc.Publish(r.s.join(), r.ctlBuf)
}

// post hands an event to the receiver's loop, unless it has returned.
func (r *receiver) post(ev event) {
	select {
	case r.events <- ev:
	case <-r.done:
	}
}

func (r *receiver) sendCtl(id string, kind byte, offset uint64) {
	r.ctlBuf = appendCtl(r.ctlBuf[:0], kind, offset, r.rid)
	_ = r.c.nc.Publish(r.s.item(id), r.ctlBuf)
}

// sendAck tells an item's sender what this receiver wrote out, and up to
// where it took the item in (written, or held behind another item's line).
func (r *receiver) sendAck(id string, written, accepted uint64) {
	r.ctlBuf = appendAck(r.ctlBuf[:0], written, accepted, r.rid)
	_ = r.c.nc.Publish(r.s.item(id), r.ctlBuf)
}

// close detaches: kept items not written out whole go back to the pipe,
// senders of live items learn how much was written out.
func (r *receiver) close() {
	close(r.done)
	r.dropAhead()
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
	for id, it := range r.items {
		if it.done {
			continue
		}
		if it.claim != nil {
			it.claim.stop()
			r.release(it)
			continue
		}
		r.sendCtl(id, ctlLeave, it.written)
	}
	r.ctlBuf = appendCtl(r.ctlBuf[:0], ctlLeave, 0, r.rid)
	_ = r.c.nc.Publish(r.s.join(), r.ctlBuf)
	_ = r.c.nc.Flush()
}

func boolToUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
