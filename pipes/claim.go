package pipes

// Taking kept items: finding the oldest one nobody holds, claiming it with
// the one consumer a work-queue stream allows on its subjects, clearing the
// claims of dead receivers, reading it, and giving it back.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// claim is this receiver's hold on one kept item: the consumer that is the
// lock, and the reader that pulls the item's frames into the loop. The
// reader owns pull; the loop owns the rest once the claim is started.
type claim struct {
	item     string
	consumer string
	stored   uint64      // frames the satellite held at the claim
	first    []*nats.Msg // frames pulled with a claim made ahead
	asked    int         // frames asked for with it (those not in first are on their way)
	pull     *jsapi.Pull
	ctx      context.Context
	stop     context.CancelFunc // stops the reader
	done     chan struct{}      // closed when the reader returns

	// direct: the whole item, as the look that found it got it (a small
	// item found by a receiver's first look, see claimer.firstFrames):
	// the reader hands these over and pulls nothing, and the item is
	// removed by a purge.
	direct []jsapi.Head
	acks   []string // where to ack each frame read, to remove the item at the end
	// byPurge: the item is removed by a purge at the end, not by acks
	// (its frames were read again through a new consumer).
	byPurge  bool
	caughtUp bool // read all the satellite held at the claim
	// replicated: the item's store has replicas (a cluster), whose
	// leader may change under the reader.
	replicated bool
	lastSeq    uint64 // stream sequence of the last frame taken
	// storedAt: when the satellite stored the last frame taken (its
	// clock), zero if it did not say.
	storedAt time.Time
	rereads  int // times its frames were read again after a loss
}

// claimer takes kept items for one receiver: it finds them, claims them
// (ahead of need, for a follower), reads them, and removes the finished
// ones from the pipe. The receiver's loop calls it; the goroutines it
// starts (readers, claims ahead, removals) are its own, and close waits
// for them.
type claimer struct {
	c      *Client
	cfg    Config
	js     *jsapi.API
	s      wire.Subjects
	rid    string
	lookup *jsapi.Lookup
	// frames looks, beside lookup's first look for heads, for the first
	// frames of the pipe (firstFrames); nil until then.
	frames *jsapi.Lookup
	n      int // claims made, for their names

	post  func(event) bool // hands an event to the loop; false once it is gone
	slots chan struct{}    // a token for every kept frame posted and not yet handled

	// othersHold: kept items found held by another live receiver, and when.
	othersHold map[string]time.Time

	// A follower's claims on the next kept items, in the order it takes
	// them; the heads found after them; where to look on.
	aheads     []*ahead
	aheadHeads []jsapi.Head
	aheadFrom  uint64
	aheading   sync.WaitGroup

	readers sync.WaitGroup

	// Kept items written out whole, on their way out of the pipe.
	cleanup    chan cleanupJob
	cleaners   sync.WaitGroup
	cleanupMu  sync.Mutex
	cleanupErr error
}

func newClaimer(c *Client, js *jsapi.API, s wire.Subjects, rid string, post func(event) bool) *claimer {
	return &claimer{
		c: c, cfg: c.cfg, js: js, s: s, rid: rid,
		lookup:     js.NewLookup(),
		post:       post,
		slots:      make(chan struct{}, c.cfg.KeptSlots),
		othersHold: map[string]time.Time{},
	}
}

func (cl *claimer) name() string {
	cl.n++
	return cl.rid + "-" + strconv.Itoa(cl.n)
}

// heads finds item heads at or after stream sequence from, in order.
func (cl *claimer) heads(ctx context.Context, from uint64) (heads []jsapi.Head, more bool, err error) {
	err = cl.js.Retry(ctx, func(ctx context.Context) error {
		heads, more, err = cl.lookup.Next(ctx, cl.s.Stream, cl.s.HeadAll(), from, cl.cfg.HeadBatch)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("looking for kept items: %w", err)
	}
	return heads, more, nil
}

// Small items ride with the look for them: a receiver's first look for
// kept items also asks, in the same flight, for the first frames of the
// pipe, up to smallFrames of them and smallBytes in all (the satellite
// sends at most one frame past that). An item found whole among them is
// written out once claimed, with no pull: a round trip less for a kept
// trigger or a small job.
const (
	smallFrames = 8
	smallBytes  = 64 << 10
)

// firstFrames returns the first frames the pipe keeps, or none if it
// cannot tell: what it finds is only a shortcut.
func (cl *claimer) firstFrames(ctx context.Context) []jsapi.Head {
	if cl.frames == nil {
		cl.frames = cl.js.NewLookup()
	}
	frames, err := cl.frames.First(ctx, cl.s.Stream, cl.s.Stored(), 0, smallFrames, smallBytes)
	if err != nil {
		return nil
	}
	return frames
}

// wholeItem returns the frames of item among frames, from its head at
// stream sequence head to its end, if all are there, in order, with
// offsets that follow each other and a plain end (not an abort); else
// nil, and the item is pulled as any other.
func wholeItem(frames []jsapi.Head, s wire.Subjects, item string, head uint64) []jsapi.Head {
	headSubj, keptSubj := s.Head(item), s.Kept(item)
	var out []jsapi.Head
	var next uint64
	for _, m := range frames {
		switch {
		case m.Seq < head:
			continue
		case len(out) == 0 && (m.Seq != head || m.Subject != headSubj):
			return nil
		case len(out) > 0 && m.Subject != keptSubj:
			continue // another item's
		}
		f, err := wire.Parse(m.Data)
		if err != nil || f.Aborted() || len(out) > 0 && f.Offset != next {
			return nil
		}
		next = f.Offset + uint64(len(f.Data))
		out = append(out, m)
		if f.End() {
			if len(out) == 1 {
				return nil // a head is no end
			}
			return out
		}
	}
	return nil
}

// claimResult is what a claim attempt found.
type claimResult uint8

const (
	claimTaken  claimResult = iota // the item is ours
	claimHeld                      // a live receiver holds it
	claimGone                      // nothing of it is stored (any more)
	claimBroken                    // it ends with its sender's abort: removed
)

// create makes the consumer that holds a kept item. A claim left by a
// receiver that died is cleared first. It touches no state of the loop's, so that it may run beside it
// (claims made ahead).
func (cl *claimer) create(ctx context.Context, item, name string) (*claim, claimResult, error) {
	cfg := jetstream.ConsumerConfig{
		Name:          name,
		FilterSubject: cl.s.Claim(item),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       365 * 24 * time.Hour, // never redeliver to us: we hold acks to the end
		MaxAckPending: -1,
		MemoryStorage: true,
		Metadata:      map[string]string{wire.MetaReceiver: cl.rid},
	}
	var cons jetstream.Consumer
	cleared := false
	start := time.Now()
	for {
		err := cl.js.Retry(ctx, func(ctx context.Context) error {
			var err error
			cons, err = cl.js.JS.CreateConsumer(ctx, cl.s.Stream, cfg)
			return err
		})
		code := jsapi.Code(err)
		switch {
		case err == nil:
		case code == jsapi.CodeStreamNotFound && cl.c.clustered() && time.Since(start) < cl.cfg.FailoverWait:
			// The store was there a moment ago: a cluster that lost its
			// leader may not find it for a while.
			if err := sleep(ctx, cl.cfg.FailoverRetry); err != nil {
				return nil, claimGone, err
			}
			continue
		case code == jsapi.CodeStreamNotFound:
			return nil, claimGone, nil
		case code == jsapi.CodeWQNotUnique && !cleared:
			cleared = true
			free, err := cl.clearDead(ctx, item)
			if err != nil || !free {
				return nil, claimHeld, err
			}
			continue
		case code == jsapi.CodeWQNotUnique:
			return nil, claimHeld, nil
		case code == jsapi.CodeConsumerExists:
			// A try of ours that timed out (a loaded satellite) made it
			// after all: the name is this claim's alone.
			err := cl.js.Retry(ctx, func(ctx context.Context) error {
				var err error
				cons, err = cl.js.JS.Consumer(ctx, cl.s.Stream, name)
				return err
			})
			if err != nil {
				return nil, claimGone, fmt.Errorf("taking a kept item: %w", err)
			}
			if got := cons.CachedInfo(); got == nil || got.Config.FilterSubject != cfg.FilterSubject {
				return nil, claimGone, fmt.Errorf("taking a kept item: consumer %s is there for another subject", name)
			}
		default:
			return nil, claimGone, fmt.Errorf("taking a kept item: %w", err)
		}
		break
	}
	c := &claim{item: item, consumer: name}
	info := cons.CachedInfo()
	c.replicated = info != nil && info.Cluster != nil && len(info.Cluster.Replicas) > 0
	// The item may have been finished and removed by another receiver
	// between our finding it and our claim: then nothing is pending.
	if info != nil && info.NumPending > 0 {
		c.stored = info.NumPending
		return c, claimTaken, nil
	}
	if cl.c.clustered() {
		// The consumer's leader may be a replica lagging behind the
		// stream's: ask the stream's leader. The item is then read as one
		// still being sent, as its frames reach the replica.
		if ok, err := cl.c.storedFrom(ctx, cl.s, item, 0); err == nil && ok {
			return c, claimTaken, nil
		}
	}
	cl.deleteConsumer(ctx, name)
	return nil, claimGone, nil
}

// start starts reading a claimed item into the loop.
func (cl *claimer) start(c *claim) {
	var err error
	if c.pull == nil && c.direct == nil {
		c.pull, err = cl.js.NewPull(cl.s.Stream, c.consumer)
	}
	if err != nil {
		c.done = make(chan struct{})
		close(c.done)
		cl.post(event{kind: evReadFailed, item: c.item, cl: c, err: err})
		return
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.done = make(chan struct{})
	cl.readers.Go(func() {
		defer close(c.done)
		if cl.cfg.readStarting != nil {
			cl.cfg.readStarting(c.ctx, c.item)
		}
		if c.direct != nil {
			cl.readDirect(c)
			return
		}
		defer c.pull.Close()
		cl.read(c)
	})
}

// release stops reading an item and drops the claim: the item stays whole
// in the pipe for the next receiver.
func (cl *claimer) release(ctx context.Context, c *claim) {
	cl.halt(c)
	cctx, cancel := cleanupContext(ctx, cl.cfg.APITimeout)
	defer cancel()
	cl.deleteConsumer(cctx, c.consumer)
}

// halt stops a claim's reader and waits for it.
func (cl *claimer) halt(c *claim) {
	if c.stop != nil {
		c.stop()
	}
	if c.done != nil {
		<-c.done
	}
}

func (cl *claimer) deleteConsumer(ctx context.Context, name string) {
	_ = cl.js.Retry(ctx, func(ctx context.Context) error {
		err := cl.js.JS.DeleteConsumer(ctx, cl.s.Stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		return err
	})
}

// errClaimGone: the consumer that held a claim is gone without a word
// (the satellite restarted on its store); the item may be claimed again.
var errClaimGone = fmt.Errorf("%w: its consumer is gone", ErrClaimLost)

// consumerGone tells whether a claim's consumer no longer exists.
func (cl *claimer) consumerGone(c *claim) (bool, error) {
	ctx, cancel := context.WithTimeout(c.ctx, cl.cfg.APITimeout)
	defer cancel()
	_, err := cl.js.JS.Consumer(ctx, cl.s.Stream, c.consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return true, nil
	}
	return false, err
}

// reread replaces a claim's consumer with a new one, which delivers the
// item again from its head: frames the reader lost (in flight when its
// link stalled, say) come again, and the loop skips what it has. (A
// work-queue stream allows consumers only from its first message.) The
// item stays whole in the store meanwhile; another receiver may take it in
// the instant between, and then this one has lost it.
func (cl *claimer) reread(ctx context.Context, c *claim) (*claim, error) {
	cl.halt(c)
	cl.deleteConsumer(ctx, c.consumer)
	next, res, err := cl.create(ctx, c.item, cl.name())
	if err != nil {
		return nil, err
	}
	if res != claimTaken {
		return nil, fmt.Errorf("%w: reading it again after lost frames, it was gone or taken", ErrClaimLost)
	}
	next.acks, next.byPurge, next.caughtUp = c.acks, true, c.caughtUp
	next.lastSeq, next.rereads, next.replicated = c.lastSeq, c.rereads+1, c.replicated || next.replicated
	if !c.caughtUp {
		next.stored = max(next.stored, 1)
	}
	cl.start(next)
	return next, nil
}

// read pulls a claimed item's frames into the loop until its end, or until
// the claim is stopped. It asks exactly for the frames the satellite held
// at the claim (a pull asking for more than there are makes the satellite
// look for them through every later message of the stream, which for a
// pipe of n kept items would make draining them cost n²), as many pulls
// at a time as its pull window (pathWindow) allows, then, if the item's
// end was not among them (its sender is still sending), for frames as
// they come.
func (cl *claimer) read(c *claim) {
	ord := reorder{limit: max(cl.cfg.StoreWindowMax, cl.cfg.StoreWindow)}
	// deliver hands a pulled frame to the loop, in order with the others
	// (reorder); false once the reader is done: the loop stops it, or the
	// item's end went.
	deliver := func(m *nats.Msg) bool {
		for _, m := range ord.add(m, m.Subject == cl.s.Head(c.item)) {
			if !cl.postKept(c, m) || wire.IsEnd(m.Data) {
				return false
			}
		}
		return true
	}
	for _, m := range c.first {
		if !deliver(m) {
			return
		}
	}
	left := c.stored - min(c.stored, uint64(c.asked))
	var (
		inFlight  = c.asked - len(c.first) // frames asked for that have not come (nor run out)
		lastHeard = time.Now()
		wait      = cl.cfg.KeptPullWait
		batch     = cl.cfg.KeptPullMsgs
		window    = newPullWindow(cl.cfg)
	)
	// The receiver's looks for kept items (direct gets of their heads,
	// cl.lookup) timed the path: a first pull of a big item near the
	// satellite, which reads its frames from a cold store, took 9-15 ms
	// on loopback, past KeptPullPath, and the window then grew to its cap
	// for nothing (the receiver's RSS 26 -> 33-40 MiB draining 1 GiB, 4
	// runs in 6).
	window.timed(cl.lookup.RoundTrip())
	for {
		// The window's pulls out while frames are known to be stored;
		// one at a time for an item still being sent.
		for (left > 0 && inFlight < window.frames(batch)) || inFlight == 0 {
			n := batch
			if left > 0 {
				n = int(min(left, uint64(batch)))
				left -= uint64(n)
			}
			window.asking(time.Now(), inFlight)
			inFlight += n
			// A pull lost with a connection that is being re-established
			// is asked again when nothing comes (below).
			if err := c.pull.Ask(jsapi.PullRequest{Batch: n, Expires: wait, Heartbeat: wait / 4}); err != nil && !cl.c.lostInFlight(err) {
				cl.post(event{kind: evReadFailed, item: c.item, cl: c, err: err})
				return
			}
		}
		ctx, cancel := context.WithTimeout(c.ctx, wait)
		asked := time.Now()
		m, err := c.pull.Next(ctx)
		cancel()
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			// Nothing at all, not even a heartbeat: the link stalls, or
			// the pulls were lost (a cluster moving the consumer's
			// leader). Ask anew, for a while; what the satellite sent
			// for the old pulls still comes through the same inbox.
			if !cl.c.nc.IsConnected() {
				lastHeard = time.Now() // being re-established: no time lost counts
			}
			if time.Since(lastHeard) > cl.cfg.FailoverWait {
				cl.post(event{kind: evReadFailed, item: c.item, cl: c,
					err: fmt.Errorf("%w: the satellite sent nothing of it for %v", ErrClaimLost, cl.cfg.FailoverWait)})
				return
			}
			left += uint64(inFlight)
			inFlight = 0
			continue
		}
		heardBefore := lastHeard
		lastHeard = time.Now()
		switch jsapi.Status(m) {
		case "":
			window.got(lastHeard, lastHeard.Sub(asked), left > 0)
			inFlight = max(0, inFlight-1)
			if !deliver(m) {
				return
			}
		case jsapi.StatusHeartbeat:
		case jsapi.StatusNoResponse:
			// Nobody serves the pull: the claim's consumer is gone (a
			// satellite restarted on its store keeps no claims) or, in
			// a cluster, is between leaders. Gone: the loop claims the
			// item anew and reads it again. Else ask again, a little
			// later; FailoverWait bounds it (this is not news).
			lastHeard = heardBefore
			if gone, err := cl.consumerGone(c); err == nil && gone {
				cl.post(event{kind: evReadFailed, item: c.item, cl: c, err: errClaimGone})
				return
			}
			select {
			case <-time.After(cl.cfg.FailoverRetry):
			case <-c.ctx.Done():
				return
			}
			left += uint64(inFlight)
			inFlight = 0
		case jsapi.StatusConflict:
			if m.Header.Get("Description") == "Consumer Deleted" {
				cl.post(event{kind: evReadFailed, item: c.item, cl: c, err: fmt.Errorf("%w: its consumer was deleted", ErrClaimLost)})
				return
			}
			fallthrough // a leader change or a limit cut the pull short: ask again
		default: // the pull ran out (408) or found nothing (404)
			if ord.holding() {
				// Frames held for a gap, and no more come: those before
				// them were lost in flight to this reader, or are not
				// stored. The loop meets the gap and reads the item
				// again.
				for _, m := range ord.flush() {
					if !cl.postKept(c, m) || wire.IsEnd(m.Data) {
						return
					}
				}
			}
			pending, _ := strconv.Atoi(m.Header.Get("Nats-Pending-Messages"))
			pending = min(pending, inFlight)
			inFlight -= pending
			if c.stored > 0 {
				left += uint64(pending) // known stored: ask for them again
			}
		}
	}
}

// readDirect hands the loop the frames of an item that came whole with
// the look that found it.
func (cl *claimer) readDirect(c *claim) {
	for i, h := range c.direct {
		select {
		case cl.slots <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		if !cl.post(event{
			kind: evKept, item: c.item, cl: c, msg: &nats.Msg{Subject: h.Subject, Data: h.Data},
			seq: h.Seq, more: uint64(len(c.direct) - 1 - i), head: i == 0,
		}) {
			<-cl.slots
			return
		}
	}
}

// postKept hands a kept frame to the loop, once a slot is free (what
// bounds the kept frames held in memory); false once the reader is to
// stop.
func (cl *claimer) postKept(c *claim, m *nats.Msg) bool {
	meta, err := m.Metadata()
	if err != nil {
		return true // not a frame of the stream's
	}
	select {
	case cl.slots <- struct{}{}:
	case <-c.ctx.Done():
		return false
	}
	if !cl.post(event{
		kind: evKept, item: c.item, cl: c, msg: m,
		seq: meta.Sequence.Stream, more: meta.NumPending, stored: meta.Timestamp,
		head: m.Subject == cl.s.Head(c.item),
	}) {
		<-cl.slots
		return false
	}
	return true
}

// clearDead removes the claim on an item if the receiver holding it is
// gone. It reports whether there is no live claim left. Listing the
// claims of a busy satellite can take long (every consumer of the stream,
// with its state): a listing that times out is asked again, as any
// JetStream call is, for up to FailoverWait (a -f receiver of a loaded
// satellite died of one: faults/pipe_load_kept).
func (cl *claimer) clearDead(ctx context.Context, item string) (free bool, err error) {
	err = cl.js.Retry(ctx, func(ctx context.Context) error {
		free, err = cl.clearDeadOnce(ctx, item)
		return err
	})
	return free, err
}

func (cl *claimer) clearDeadOnce(ctx context.Context, item string) (bool, error) {
	st, err := cl.js.JS.Stream(ctx, cl.s.Stream)
	if err != nil {
		return false, fmt.Errorf("looking at claims: %w", err)
	}
	lister := st.ListConsumers(ctx)
	filter := cl.s.Claim(item)
	for info := range lister.Info() {
		if info.Config.FilterSubject != filter {
			continue
		}
		if holder := info.Config.Metadata[wire.MetaReceiver]; holder != "" {
			if !cl.c.peerGone(ctx, cl.s.Rcv(holder)) {
				return false, nil // alive: the item is theirs
			}
		}
		if err := cl.js.JS.DeleteConsumer(ctx, cl.s.Stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, fmt.Errorf("clearing a dead receiver's claim: %w", err)
		}
	}
	if err := lister.Err(); err != nil {
		return false, fmt.Errorf("looking at claims: %w", err)
	}
	return true, nil
}

// ahead is a claim on a kept item made beside the loop. The loop reads it
// once done is closed.
type ahead struct {
	head  jsapi.Head
	item  string
	claim *claim
	res   claimResult
	err   error
	done  chan struct{}
}

// claimAhead claims, beside the loop, the next kept items after stream
// sequence from, up to AheadDepth claims. skip tells which items the
// receiver knows already.
func (cl *claimer) claimAhead(ctx context.Context, from uint64, skip func(string) bool) {
	cl.aheadFrom = max(cl.aheadFrom, from)
	for len(cl.aheads) < cl.cfg.AheadDepth {
		if len(cl.aheadHeads) == 0 {
			heads, _, err := cl.heads(ctx, cl.aheadFrom)
			if err != nil || len(heads) == 0 {
				return // the loop looks again when it needs to
			}
			cl.aheadHeads = heads
		}
		h := cl.aheadHeads[0]
		cl.aheadHeads = cl.aheadHeads[1:]
		cl.aheadFrom = h.Seq + 1
		item := wire.LastToken(h.Subject)
		if skip(item) {
			continue
		}
		if _, held := cl.othersHold[item]; held {
			continue
		}
		a := &ahead{head: h, item: item, done: make(chan struct{})}
		name := cl.name()
		cl.aheads = append(cl.aheads, a)
		cl.aheading.Go(func() {
			defer close(a.done)
			actx, cancel := context.WithTimeout(ctx, cl.cfg.APITimeout)
			defer cancel()
			a.claim, a.res, a.err = cl.create(actx, item, name)
			if a.res == claimTaken {
				cl.prefetch(actx, a.claim)
			}
		})
	}
}

// prefetch pulls the first frames of an item claimed ahead: all of a small
// item, AheadPull frames at most. Its pull stays the claim's, so that a
// frame still on its way when prefetch returns reaches the reader.
func (cl *claimer) prefetch(ctx context.Context, c *claim) {
	n := int(min(c.stored, uint64(cl.cfg.AheadPull)))
	if n == 0 {
		return
	}
	pull, err := cl.js.NewPull(cl.s.Stream, c.consumer)
	if err != nil {
		return
	}
	c.pull = pull
	if err := pull.Ask(jsapi.PullRequest{Batch: n, Expires: cl.cfg.KeptPullWait}); err != nil {
		return
	}
	c.asked = n
	for len(c.first) < n {
		m, err := pull.Next(ctx)
		if err != nil {
			return
		}
		if jsapi.Status(m) != "" {
			// The pull ran out: the reader asks for the rest.
			c.asked = len(c.first)
			return
		}
		c.first = append(c.first, m)
	}
}

// giveUp drops a claim made ahead that nobody read.
func (cl *claimer) giveUp(ctx context.Context, c *claim) {
	if c.pull != nil {
		c.pull.Close()
	}
	cctx, cancel := cleanupContext(ctx, cl.cfg.APITimeout)
	defer cancel()
	cl.deleteConsumer(cctx, c.consumer)
}

// takeAhead returns the oldest claim made ahead that is still for this
// receiver to read.
func (cl *claimer) takeAhead(ctx context.Context, skip func(string) bool) *ahead {
	for len(cl.aheads) > 0 {
		a := cl.aheads[0]
		cl.aheads = cl.aheads[1:]
		<-a.done
		if a.err != nil || a.res != claimTaken {
			continue // the loop looks again, and reports what persists
		}
		if skip(a.item) {
			cl.giveUp(ctx, a.claim)
			continue
		}
		return a
	}
	cl.aheadHeads = nil
	return nil
}

// holdsAhead tells whether a claim made ahead holds item id.
func (cl *claimer) holdsAhead(id string) bool {
	for _, a := range cl.aheads {
		if a.item == id {
			<-a.done
			return a.res == claimTaken
		}
	}
	return false
}

// dropAhead gives back the items claimed ahead.
func (cl *claimer) dropAhead(ctx context.Context) {
	for _, a := range cl.aheads {
		<-a.done
		if a.res == claimTaken {
			cl.giveUp(ctx, a.claim)
		}
	}
	cl.aheads = nil
	cl.aheading.Wait()
}

// cleanupJob is a kept item written out whole, to remove from the pipe.
type cleanupJob struct {
	item     string
	consumer string
	acks     []string
	byPurge  bool
	direct   bool // read with the look that found it: its consumer delivered nothing
}

// finish gives back a kept item this receiver wrote out whole: it removes
// the item from the pipe, then drops the claim, in that order, so that no
// other receiver can take the item again. It removes the item by acking
// every frame it read (the work queue deletes acked messages, and only the
// last ack waits for the satellite's answer, which comes once all before it
// are done), else by purging the item's subjects: a purge makes the
// satellite count anew the pending messages of every consumer of the
// stream. That runs behind the receiver, so that a follower goes on with
// the next item meanwhile; close waits for it.
func (cl *claimer) finish(ctx context.Context, c *claim) {
	cl.halt(c)
	if cl.cleanup == nil {
		cl.cleanup = make(chan cleanupJob, cl.cfg.CleanupBacklog)
		for range cl.cfg.CleanupWorkers {
			cl.cleaners.Go(func() { cl.cleaner(ctx, cl.cleanup) })
		}
	}
	cl.cleanup <- cleanupJob{item: c.item, consumer: c.consumer, acks: c.acks,
		byPurge: c.byPurge || c.replicated || c.direct != nil, direct: c.direct != nil}
}

func (cl *claimer) cleaner(ctx context.Context, jobs <-chan cleanupJob) {
	for job := range jobs {
		if cl.cfg.cleanupStarting != nil {
			cl.cfg.cleanupStarting(job.item)
		}
		cctx, cancel := cleanupContext(ctx, cl.cfg.FailoverWait+cl.cfg.APITimeout)
		var err error
		if job.byPurge {
			// A cluster's leader may answer an ack, then die before its
			// followers learn of it: the item would come back. A purge
			// is answered once a majority holds it. (And frames read
			// through a consumer since replaced cannot be acked.)
			err = cl.c.purgeItem(cctx, cl.s, job.item)
		} else if err = cl.ackAll(cctx, job.acks); err != nil {
			err = cl.c.purgeItem(cctx, cl.s, job.item)
		}
		if err == nil && (!job.byPurge || job.direct) {
			// The item is removed: the claim holds nothing, and nobody
			// waits for it to go (DropConsumer).
			err = cl.js.DropConsumer(cl.s.Stream, job.consumer)
		} else if derr := cl.js.JS.DeleteConsumer(cctx, cl.s.Stream, job.consumer); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) && err == nil {
			// The item is removed, so the claim holds nothing, and its
			// consumer is ephemeral: the satellite deletes it once idle
			// (its InactiveThreshold, 5 s by default). Not answering now (a
			// cluster electing the consumer's leader after losing a member)
			// is no failure of an item written out whole and removed: a
			// receiver exited 1 over it (faults/pipe_cluster_member_lost_receivers).
			cl.c.noticef("the claim on item %s goes by itself once idle (dropping it now: %v)", job.item, derr)
		}
		cancel()
		if err != nil {
			cl.cleanupMu.Lock()
			if cl.cleanupErr == nil {
				cl.cleanupErr = err
			}
			cl.cleanupMu.Unlock()
		}
	}
}

// ackAll acks frames read, the last one waiting for the satellite.
func (cl *claimer) ackAll(ctx context.Context, acks []string) error {
	if len(acks) == 0 {
		return errors.New("no frames to ack")
	}
	ack := []byte("+ACK")
	for _, subject := range acks[:len(acks)-1] {
		if err := cl.c.nc.Publish(subject, ack); err != nil {
			return err
		}
	}
	_, err := cl.c.nc.RequestWithContext(ctx, acks[len(acks)-1], ack)
	return err
}

// close gives back the items claimed ahead, waits for the readers and for
// the removal of the items written out, and returns the first error in
// removing one.
func (cl *claimer) close(ctx context.Context) error {
	cl.dropAhead(ctx)
	cl.readers.Wait()
	cl.lookup.Close()
	if cl.frames != nil {
		cl.frames.Close()
	}
	if cl.cleanup == nil {
		return nil
	}
	close(cl.cleanup)
	cl.cleaners.Wait()
	cl.cleanup = nil
	cl.cleanupMu.Lock()
	defer cl.cleanupMu.Unlock()
	return cl.cleanupErr
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
