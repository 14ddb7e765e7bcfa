package pipes

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// prober asks, beside its owner's loop, whether peers still live: one
// probe at a time per peer, each reported through report. Its owner closes
// it, which ends every probe and waits for them.
type prober struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	active map[string]bool
	report func(key string, gone bool)
}

func newProber(ctx context.Context, c *Client, report func(key string, gone bool)) *prober {
	ctx, cancel := context.WithCancel(ctx)
	return &prober{c: c, ctx: ctx, cancel: cancel, active: map[string]bool{}, report: report}
}

// probe starts probing the peer key on subject, unless a probe of it is
// under way.
func (p *prober) probe(key, subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active[key] || p.ctx.Err() != nil {
		return
	}
	p.active[key] = true
	p.wg.Go(func() {
		gone := p.c.peerGone(p.ctx, subject)
		p.mu.Lock()
		delete(p.active, key)
		p.mu.Unlock()
		if p.ctx.Err() == nil {
			p.report(key, gone)
		}
	})
}

// probing tells whether a probe of key is under way.
func (p *prober) probing(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active[key]
}

func (p *prober) close() {
	p.cancel()
	p.wg.Wait()
}

// peerGone probes a peer's inbox and tells whether the peer is gone. Only a
// definite answer counts: "no responders" (the satellite knows nobody
// listens there, as after the peer's process died), or silence to two
// probes in a row while the satellite itself answers. Silence from a
// satellite that is paused, overloaded or electing a leader proves
// nothing, and the peer is kept; so does a first probe lost in a pause.
func (c *Client) peerGone(ctx context.Context, subject string) bool {
	for range 2 {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
		_, err := c.nc.RequestWithContext(pctx, subject, nil)
		cancel()
		switch {
		case err == nil:
			return false
		case errors.Is(err, nats.ErrNoResponders):
			return true
		case ctx.Err() != nil:
			return false // the prober's owner is done
		case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout):
			return false // the connection is gone: the caller hears of that anyway
		case c.nc.FlushTimeout(c.cfg.ProbeTimeout) != nil:
			return false // the satellite does not answer either
		}
	}
	return true
}

// takersWaiting tells whether a taker waits on the pipe: a message on its
// take subject (the takers' queue group) gets "no responders" from the
// satellite at once when no taker is subscribed, and the satellite sends
// that before it answers the flush behind the message. A message that
// does reach a taker is not an offer (its reply is no item's) and the
// taker drops it. A failure, or no answer within APITimeout, counts as a
// taker waiting: a listener then leaves kept items alone until it looks
// again.
func (c *Client) takersWaiting(ctx context.Context, s wire.Subjects) bool {
	answers := make(chan *nats.Msg, 1)
	sub, err := c.nc.ChanSubscribe(c.nc.NewInbox(), answers)
	if err != nil {
		return true
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(s.Take(), sub.Subject, nil); err != nil {
		return true
	}
	fctx, cancel := context.WithTimeout(ctx, c.cfg.APITimeout)
	defer cancel()
	if err := c.nc.FlushWithContext(fctx); err != nil {
		return true
	}
	select {
	case m := <-answers:
		return jsapi.Status(m) != jsapi.StatusNoResponse
	default:
		return true // it reached a taker
	}
}
