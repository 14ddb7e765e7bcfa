package pipes

// Taking kept items: finding the oldest one nobody holds, claiming it with
// the one consumer a work-queue stream allows on its subjects, clearing the
// claims of dead receivers, reading it, and giving it back.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// claimNext takes the oldest kept item no other receiver is taking, if any.
func (r *receiver) claimNext(ctx context.Context) error {
	var from uint64
	for r.wantsMore() {
		heads, more, err := r.nextHeads(ctx, from)
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
	r.claims++
	name := r.rid + "-" + strconv.Itoa(r.claims)
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
	for attempt := 0; ; attempt++ {
		var err error
		cons, err = r.js.CreateConsumer(ctx, r.s.stream, cfg)
		if err == nil {
			break
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return false, fmt.Errorf("taking a kept item: %w", err)
		}
		switch {
		case apiErr.ErrorCode == errCodeStreamNotFound:
			return false, nil
		case apiErr.ErrorCode == errCodeWQNotUnique && attempt == 0:
			cleared, err := r.clearDeadClaim(ctx, id)
			if err != nil || !cleared {
				return false, err
			}
		case apiErr.ErrorCode == errCodeWQNotUnique:
			return false, nil
		default:
			return false, fmt.Errorf("taking a kept item: %w", err)
		}
	}
	// The item may have been finished and removed by another receiver
	// between our finding it and our claim: then nothing is pending.
	if info := cons.CachedInfo(); info == nil || info.NumPending == 0 {
		_ = r.js.DeleteConsumer(ctx, r.s.stream, name)
		return false, nil
	}
	// At most keptPullMsgs frames in flight: nats.go makes a channel of
	// that many for every claim (a million with a byte limit alone).
	iter, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(keptPullMsgs, keptPull))
	if err != nil {
		_ = r.js.DeleteConsumer(ctx, r.s.stream, name)
		return false, fmt.Errorf("reading a kept item: %w", err)
	}
	it := r.items[id]
	if it == nil {
		it = &inItem{id: id}
		r.items[id] = it
	}
	it.claim = &claim{consumer: name, iter: iter}
	it.lastSeen = time.Now()
	go r.readKept(id, iter)
	if !r.opt.Follow {
		r.detach()
	}
	return true, nil
}

func (r *receiver) readKept(id string, iter jetstream.MessagesContext) {
	for {
		m, err := iter.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				r.post(event{item: id, kept: true, err: err})
			}
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		r.post(event{
			item: id, kept: true,
			msg: &nats.Msg{Subject: m.Subject(), Data: m.Data()},
			seq: meta.Sequence.Stream, more: meta.NumPending,
			head: m.Subject() == r.s.head(id),
		})
	}
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
			if _, err := r.c.nc.Request(r.s.rcv(holder), nil, probeTimeout); err == nil {
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
}

// cleanupBacklog is how many finished kept items may wait to be removed
// from the pipe before a receiver waits for their removal.
const cleanupBacklog = 64

// cleanupJob is a kept item written out whole, to remove from the pipe.
type cleanupJob struct {
	item     string
	consumer string
}

// finishKept gives back a kept item this receiver wrote out whole: it
// removes the item from the pipe, then drops the claim, in that order, so
// that no other receiver can take the item again. That runs behind the
// receiver, so that a follower goes on with the next item meanwhile;
// Receive returns once it is done.
func (r *receiver) finishKept(it *inItem) {
	cl := it.claim
	it.claim = nil
	cl.iter.Stop()
	if r.cleanup == nil {
		r.cleanup = make(chan cleanupJob, cleanupBacklog)
		r.cleanupDone = make(chan struct{})
		go r.cleaner(r.cleanup)
	}
	r.cleanup <- cleanupJob{item: it.id, consumer: cl.consumer}
}

func (r *receiver) cleaner(jobs <-chan cleanupJob) {
	defer close(r.cleanupDone)
	for job := range jobs {
		ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
		err := r.c.purgeItem(ctx, r.s, job.item)
		if derr := r.js.DeleteConsumer(ctx, r.s.stream, job.consumer); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) && err == nil {
			err = fmt.Errorf("dropping the claim on item %s: %w", job.item, derr)
		}
		cancel()
		if err != nil && r.cleanupErr == nil {
			r.cleanupErr = err
		}
	}
}

// waitCleanup waits until the items given back are removed, and returns
// the first error in removing them.
func (r *receiver) waitCleanup() error {
	if r.cleanup == nil {
		return nil
	}
	close(r.cleanup)
	<-r.cleanupDone
	r.cleanup = nil
	return r.cleanupErr
}

