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
		h, ok, err := r.c.nextHead(ctx, r.s, from)
		if err != nil || !ok {
			return err
		}
		from = h.seq + 1
		if _, seen := r.items[h.item]; seen {
			continue
		}
		if at, ok := r.othersHold[h.item]; ok && time.Since(at) < rescanEvery {
			continue // held by a live receiver a moment ago: do not ask again yet
		}
		r.items[h.item] = &inItem{id: h.item}
		ok, err = r.claim(ctx, h.item)
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
	return nil
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
	// between our finding it and our claim (or a replica that answered
	// our search lagged behind): the stream's leader counted what the
	// claim has to read when it created it.
	if cons.CachedInfo().NumPending == 0 {
		_ = r.js.DeleteConsumer(ctx, r.s.stream, name)
		return false, nil
	}
	iter, err := cons.Messages(jetstream.PullMaxBytes(keptPull))
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
}
