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
)

// claimNext takes the oldest kept item no other receiver is taking, if any.
func (r *receiver) claimNext(ctx context.Context) error {
	if r.wantsMore() {
		taken, err := r.takeAhead(ctx)
		if err != nil || taken {
			return err
		}
	}
	var from uint64
	for r.wantsMore() {
		var heads []headRef
		var more bool
		err := retry(ctx, func() error {
			var err error
			heads, more, err = r.nextHeads(ctx, from)
			return err
		})
		if err != nil || len(heads) == 0 {
			return err
		}
		for _, h := range heads {
			if !r.wantsMore() {
				return nil
			}
			from = h.seq + 1
			if _, seen := r.items[h.item]; seen {
				continue
			}
			if at, ok := r.othersHold[h.item]; ok && time.Since(at) < rescanEvery {
				continue // held by a live receiver a moment ago: do not ask again yet
			}
			r.items[h.item] = &inItem{id: h.item}
			ok, err := r.claim(ctx, h.item)
			if err != nil {
				return err
			}
			if ok {
				delete(r.othersHold, h.item)
				r.sendCtl(h.item, ctlClaim, 0)
				if !r.opt.Follow {
					return nil
				}
				r.claimAhead(ctx, h.seq+1)
			} else {
				delete(r.items, h.item) // someone else's: it may come to us live
				r.othersHold[h.item] = time.Now()
			}
		}
		if !more {
			return nil
		}
	}
	return nil
}

// headBatch is how many item heads one look into the store returns.
const headBatch = 64

// nextHeads finds the item heads at or after stream sequence from, up to
// headBatch of them, in one request (a batched direct get, no consumer).
// more says whether the store holds heads beyond them.
func (r *receiver) nextHeads(ctx context.Context, from uint64) (heads []headRef, more bool, err error) {
	if r.headSub == nil {
		r.headInbox = r.c.nc.NewRespInbox()
		if r.headSub, err = r.c.nc.SubscribeSync(r.headInbox + ".*"); err != nil {
			return nil, false, fmt.Errorf("looking for kept items: %w", err)
		}
		_ = r.headSub.SetPendingLimits(-1, -1)
		r.subs = append(r.subs, r.headSub)
	}
	r.headReqs++
	reply := r.headInbox + "." + strconv.Itoa(r.headReqs)
	req := fmt.Sprintf(`{"seq":%d,"next_by_subj":%q,"batch":%d}`, from, r.s.headAll(), headBatch)
	if err := r.c.nc.PublishRequest("$JS.API.DIRECT.GET."+r.s.stream, reply, []byte(req)); err != nil {
		return nil, false, fmt.Errorf("looking for kept items: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	for {
		m, err := r.headSub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, false, nil // no store: nothing kept
		}
		if err != nil {
			return nil, false, fmt.Errorf("looking for kept items: %w", err)
		}
		if m.Subject != reply {
			continue // the late answer to an earlier look
		}
		switch st := m.Header.Get("Status"); st {
		case "":
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return nil, false, fmt.Errorf("looking for kept items: bad sequence %q", m.Header.Get("Nats-Sequence"))
			}
			heads = append(heads, headRef{item: lastToken(m.Header.Get("Nats-Subject")), seq: seq})
		case "204": // the end of the batch
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return heads, np > 0 && len(heads) > 0, nil
		case "404": // nothing kept
			return heads, false, nil
		default:
			return nil, false, fmt.Errorf("looking for kept items: status %s %s", st, m.Header.Get("Description"))
		}
	}
}

// claim makes this receiver the only reader of a kept item: the one
// consumer a work-queue stream allows on the item's subjects. A claim left
// by a receiver that died is cleared first.
func (r *receiver) claim(ctx context.Context, id string) (bool, error) {
	name := r.claimName()
	held, ok, err := r.createClaim(ctx, id, name)
	if err != nil || !ok {
		return false, err
	}
	r.startClaim(id, name, held)
	return true, nil
}

func (r *receiver) claimName() string {
	r.claims++
	return r.rid + "-" + strconv.Itoa(r.claims)
}

// createClaim creates the consumer that holds a kept item. It touches no
// state of the receiver's loop, so that it may run beside it (claimAhead).
func (r *receiver) createClaim(ctx context.Context, id, name string) (*heldItem, bool, error) {
	cfg := jetstream.ConsumerConfig{
		Name:          name,
		FilterSubject: r.s.claim(id),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       365 * 24 * time.Hour, // never redeliver to us: we hold acks to the end
		MaxAckPending: -1,
		MemoryStorage: true,
		Metadata:      map[string]string{metaReceive: r.rid},
	}
	var cons jetstream.Consumer
	start := time.Now()
	for attempt := 0; ; attempt++ {
		var err error
		cons, err = r.js.CreateConsumer(ctx, r.s.stream, cfg)
		if err == nil {
			break
		}
		if transient(ctx, err) && time.Since(start) < failoverWait {
			time.Sleep(failoverRetry) // a cluster electing a leader
			continue
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return nil, false, fmt.Errorf("taking a kept item: %w", err)
		}
		switch {
		case apiErr.ErrorCode == errCodeStreamNotFound && r.c.clustered() && time.Since(start) < failoverWait:
			// The store was there a moment ago: a cluster that lost its
			// leader may not find it for a while.
			time.Sleep(failoverRetry)
		case apiErr.ErrorCode == errCodeStreamNotFound:
			return nil, false, nil
		case apiErr.ErrorCode == errCodeWQNotUnique && attempt == 0:
			cleared, err := r.clearDeadClaim(ctx, id)
			if err != nil || !cleared {
				return nil, false, err
			}
		case apiErr.ErrorCode == errCodeWQNotUnique:
			return nil, false, nil
		default:
			return nil, false, fmt.Errorf("taking a kept item: %w", err)
		}
	}
	// The item may have been finished and removed by another receiver
	// between our finding it and our claim: then nothing is pending.
	info := cons.CachedInfo()
	if info != nil && info.NumPending > 0 {
		return &heldItem{cons: cons, stored: info.NumPending}, true, nil
	}
	if r.c.clustered() {
		// The consumer's leader may be a replica lagging behind the
		// stream's: ask the stream's leader. The item is then read as
		// one still being sent, as its frames reach the replica.
		if ok, err := r.c.storedFrom(ctx, r.s, id, 0); err == nil && ok {
			return &heldItem{cons: cons}, true, nil
		}
	}
	_ = r.js.DeleteConsumer(ctx, r.s.stream, name)
	return nil, false, nil
}

// heldItem is a claimed kept item: its consumer, how many of its frames
// the satellite held when it was claimed, and, for an item claimed ahead,
// the pull of its first frames.
type heldItem struct {
	cons   jetstream.Consumer
	stored uint64
	first  jetstream.MessageBatch
}

// aheadPull is how many frames of an item claimed ahead its receiver pulls
// before it reads the item: all of a small item, 1 MiB at most.
const aheadPull = 4

// startClaim starts reading a kept item this receiver holds.
func (r *receiver) startClaim(id, name string, held *heldItem) {
	it := r.items[id]
	if it == nil {
		it = &inItem{id: id}
		r.items[id] = it
	}
	stop := make(chan struct{})
	it.claim = &claim{consumer: name, stop: sync.OnceFunc(func() { close(stop) })}
	r.claimed[id] = it
	it.lastSeen = time.Now()
	go r.readKept(id, held, stop)
	if !r.opt.Follow {
		r.detach()
	}
}

// aheadDepth is how many kept items a follower claims ahead of the one
// it reads, so that a pipe of many small items drains without a claim's
// round trips between two items. The others see them held by a live
// receiver, which takes them next.
const aheadDepth = 4

// ahead is a claim on a kept item made beside the loop. The loop reads it
// once done is closed.
type ahead struct {
	head headRef
	name string
	held *heldItem
	ok   bool
	err  error
	done chan struct{}
}

// claimAhead claims, beside the loop, the next kept items after stream
// sequence from, up to aheadDepth claims.
func (r *receiver) claimAhead(ctx context.Context, from uint64) {
	if from > r.aheadFrom {
		r.aheadFrom = from
	}
	for len(r.aheads) < aheadDepth {
		if len(r.aheadHeads) == 0 {
			heads, _, err := r.nextHeads(ctx, r.aheadFrom)
			if err != nil || len(heads) == 0 {
				return // the loop looks again when it needs to
			}
			r.aheadHeads = heads
		}
		h := r.aheadHeads[0]
		r.aheadHeads = r.aheadHeads[1:]
		r.aheadFrom = h.seq + 1
		if _, seen := r.items[h.item]; seen {
			continue
		}
		if _, held := r.othersHold[h.item]; held {
			continue
		}
		a := &ahead{head: h, name: r.claimName(), done: make(chan struct{})}
		r.aheads = append(r.aheads, a)
		go func() {
			defer close(a.done)
			ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
			defer cancel()
			a.held, a.ok, a.err = r.createClaim(ctx, h.item, a.name)
			if a.ok {
				a.held.first, _ = a.held.cons.Fetch(int(min(a.held.stored, aheadPull)), jetstream.FetchMaxWait(idleProbe))
			}
		}()
	}
}

// takeAhead starts reading the oldest item claimed ahead that is still
// for this receiver to read.
func (r *receiver) takeAhead(ctx context.Context) (bool, error) {
	for len(r.aheads) > 0 {
		a := r.aheads[0]
		r.aheads = r.aheads[1:]
		<-a.done
		if a.err != nil || !a.ok {
			continue // the loop looks again, and reports what persists
		}
		if _, seen := r.items[a.head.item]; seen {
			_ = r.js.DeleteConsumer(ctx, r.s.stream, a.name)
			continue
		}
		r.startClaim(a.head.item, a.name, a.held)
		delete(r.othersHold, a.head.item)
		r.sendCtl(a.head.item, ctlClaim, 0)
		r.claimAhead(ctx, a.head.seq+1)
		return true, nil
	}
	r.aheadHeads = nil
	return false, nil
}

// aheadHolds tells whether a claim made ahead holds item id.
func (r *receiver) aheadHolds(id string) bool {
	for _, a := range r.aheads {
		if a.head.item == id {
			<-a.done
			return a.ok
		}
	}
	return false
}

// dropAhead gives back the items claimed ahead.
func (r *receiver) dropAhead() {
	for _, a := range r.aheads {
		<-a.done
		if a.ok {
			ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
			_ = r.js.DeleteConsumer(ctx, r.s.stream, a.name)
			cancel()
		}
	}
	r.aheads = nil
}

// readKept reads a claimed item's frames into the receiver's loop until
// stop is closed. It first pulls exactly the frames the satellite held at
// the claim: a pull asking for more than there are makes the satellite
// look for them through every later message of the stream, which for a
// pipe of n kept items would make draining them cost n². If the item's end
// was not among those, its sender is still sending: it reads on as frames
// come.
func (r *receiver) readKept(id string, held *heldItem, stop <-chan struct{}) {
	sawEnd := false
	for left := held.stored; left > 0 && !sawEnd; {
		batch := held.first
		held.first = nil
		if batch == nil {
			var err error
			batch, err = held.cons.Fetch(int(min(left, keptPullMsgs)), jetstream.FetchMaxWait(idleProbe))
			if err != nil && transient(context.Background(), err) {
				break // read on as frames come, below
			}
			if err != nil {
				r.post(event{item: id, kept: true, err: err})
				return
			}
		}
		got := uint64(0)
		for m := range batch.Messages() {
			got++
			sawEnd = isEnd(m.Data())
			if !r.postKept(id, m, stop) {
				return
			}
		}
		if batch.Error() != nil || got == 0 {
			break // what follows finds out whether the claim still stands
		}
		left -= min(got, left)
	}
	if sawEnd {
		return
	}
	// A byte limit alone: nats.go then tracks the bytes in flight (and
	// makes a channel of a million slots, which costs untouched memory
	// only); with a message limit as well it overran its channel and
	// dropped frames as a slow consumer.
	iter, err := held.cons.Messages(jetstream.PullMaxBytes(keptPull))
	if err != nil {
		r.post(event{item: id, kept: true, err: fmt.Errorf("reading a kept item: %w", err)})
		return
	}
	go func() {
		select {
		case <-stop:
		case <-r.done:
		}
		iter.Stop()
	}()
	for {
		m, err := iter.Next()
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			continue // a cluster electing a leader: the iterator pulls anew
		}
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				r.post(event{item: id, kept: true, err: err})
			}
			return
		}
		if !r.postKept(id, m, stop) {
			return
		}
	}
}

// isEnd tells whether a frame says it ends its item, without checking it.
func isEnd(b []byte) bool { return len(b) >= frameHeaderLen && b[1]&flagEnd != 0 }

// postKept hands a kept frame to the loop; false once the reader is to stop.
func (r *receiver) postKept(id string, m jetstream.Msg, stop <-chan struct{}) bool {
	meta, err := m.Metadata()
	if err != nil {
		return true
	}
	select { // a slot of the loop's (keptSlots): what bounds kept frames held in memory
	case r.keptSlots <- struct{}{}:
	case <-stop:
		return false
	case <-r.done:
		return false
	}
	r.post(event{
		item: id, kept: true,
		msg: &nats.Msg{Subject: m.Subject(), Reply: m.Reply(), Data: m.Data()},
		seq: meta.Sequence.Stream, more: meta.NumPending,
		head: m.Subject() == r.s.head(id),
	})
	return true
}

// clearDeadClaim removes the claim on an item if the receiver holding it is
// gone. It reports whether there is no live claim left.
func (r *receiver) clearDeadClaim(ctx context.Context, id string) (bool, error) {
	st, err := r.js.Stream(ctx, r.s.stream)
	if err != nil {
		return false, fmt.Errorf("looking at claims: %w", err)
	}
	lister := st.ListConsumers(ctx)
	filter := r.s.claim(id)
	for info := range lister.Info() {
		if info.Config.FilterSubject != filter {
			continue
		}
		holder := info.Config.Metadata[metaReceive]
		if holder != "" {
			if !r.c.peerGone(r.s.rcv(holder)) {
				return false, nil // alive: the item is theirs
			}
		}
		if err := r.js.DeleteConsumer(ctx, r.s.stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, fmt.Errorf("clearing a dead receiver's claim: %w", err)
		}
	}
	if err := lister.Err(); err != nil {
		return false, fmt.Errorf("looking at claims: %w", err)
	}
	return true, nil
}

func (r *receiver) release(it *inItem) {
	if it.claim == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	_ = r.js.DeleteConsumer(ctx, r.s.stream, it.claim.consumer)
	it.claim = nil
	delete(r.claimed, it.id)
}

// cleanupBacklog is how many finished kept items may wait to be removed
// from the pipe before a receiver waits for their removal, and
// cleanupWorkers how many are removed at once. Each holds a consumer
// until then, and the satellite's work for some requests grows with the
// number of consumers.
const (
	cleanupBacklog = 8
	cleanupWorkers = 4
)

// cleanupJob is a kept item written out whole, to remove from the pipe.
type cleanupJob struct {
	item     string
	consumer string
	acks     []string
}

// finishKept gives back a kept item this receiver wrote out whole: it
// removes the item from the pipe, then drops the claim, in that order, so
// that no other receiver can take the item again. It removes the item by
// acking every frame it read (the work queue deletes acked messages, and
// only the last ack waits for the satellite's answer, which comes once
// all before it are done), else by purging the item's subjects: a purge
// makes the satellite count anew the pending messages of every consumer
// of the stream. That runs behind the receiver, so that a follower goes on
// with the next item meanwhile; Receive returns once it is done.
func (r *receiver) finishKept(it *inItem) {
	cl := it.claim
	it.claim = nil
	delete(r.claimed, it.id)
	cl.stop()
	if r.cleanup == nil {
		r.cleanup = make(chan cleanupJob, cleanupBacklog)
		for range cleanupWorkers {
			r.cleaners.Go(func() { r.cleaner(r.cleanup) })
		}
	}
	r.cleanup <- cleanupJob{item: it.id, consumer: cl.consumer, acks: cl.acks}
}

func (r *receiver) cleaner(jobs <-chan cleanupJob) {
	for job := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), failoverWait+apiTimeout)
		var err error
		if r.c.clustered() {
			// A cluster's leader may answer an ack, then die before its
			// followers learn of it: the item would come back. A purge
			// is answered once a majority holds it.
			err = r.c.purgeItem(ctx, r.s, job.item)
		} else if err = r.ackAll(ctx, job.acks); err != nil {
			err = r.c.purgeItem(ctx, r.s, job.item)
		}
		if derr := r.js.DeleteConsumer(ctx, r.s.stream, job.consumer); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) && err == nil {
			err = fmt.Errorf("dropping the claim on item %s: %w", job.item, derr)
		}
		cancel()
		if err != nil {
			r.cleanupMu.Lock()
			if r.cleanupErr == nil {
				r.cleanupErr = err
			}
			r.cleanupMu.Unlock()
		}
	}
}

// ackAll acks frames read, the last one waiting for the satellite.
func (r *receiver) ackAll(ctx context.Context, acks []string) error {
	if len(acks) == 0 {
		return errors.New("no frames to ack")
	}
	ack := []byte("+ACK")
	for _, subject := range acks[:len(acks)-1] {
		if err := r.c.nc.Publish(subject, ack); err != nil {
			return err
		}
	}
	_, err := r.c.request(ctx, acks[len(acks)-1], ack)
	return err
}

// waitCleanup waits until the items given back are removed, and returns
// the first error in removing them.
func (r *receiver) waitCleanup() error {
	if r.cleanup == nil {
		return nil
	}
	close(r.cleanup)
	r.cleaners.Wait()
	r.cleanup = nil
	r.cleanupMu.Lock()
	defer r.cleanupMu.Unlock()
	return r.cleanupErr
}
