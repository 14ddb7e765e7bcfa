package jsapi

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go"
)

// inbox is a subscription whose messages queue for one reader, as many as
// arrive. It hands them over through a callback rather than nats.go's
// synchronous subscription, whose channel of 65,536 slots (512 KiB) is
// allocated and cleared for every subscription and stays in the heap while
// it lives: a follower draining small kept items makes one Pull an item,
// and that cost four times the CPU of the rest of the receiver (measured
// with the drain of 2,000 kept lines); a receiver's two Lookups held 1 MiB
// of it for its whole run, which its heap goal doubled.
type inbox struct {
	sub     *nats.Subscription
	mu      sync.Mutex
	queue   []*nats.Msg
	arrived chan struct{} // signalled when queue goes from empty to not
}

// subscribeInbox subscribes subject. Its pending limits are off: what
// arrives is bounded by what its reader asks for.
func subscribeInbox(nc *nats.Conn, subject string) (*inbox, error) {
	in := &inbox{arrived: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(subject, in.deliver)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	in.sub = sub
	return in, nil
}

// deliver queues a message for next. It runs on the subscription's own
// goroutine, one message at a time, in order.
func (in *inbox) deliver(m *nats.Msg) {
	in.mu.Lock()
	in.queue = append(in.queue, m)
	in.mu.Unlock()
	select {
	case in.arrived <- struct{}{}:
	default:
	}
}

// next returns the next message that arrived, waiting for one until ctx
// ends.
func (in *inbox) next(ctx context.Context) (*nats.Msg, error) {
	for {
		in.mu.Lock()
		if len(in.queue) > 0 {
			m := in.queue[0]
			in.queue[0] = nil
			in.queue = in.queue[1:]
			in.mu.Unlock()
			return m, nil
		}
		in.mu.Unlock()
		select {
		case <-in.arrived:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// close unsubscribes; messages still queued are dropped.
func (in *inbox) close() {
	_ = in.sub.Unsubscribe()
}
