package pipes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// Offers with data (doc.go, "Offers"). A sender that read a small item
// whole before offering it puts the item on the offer, so that the taker
// the satellite picks can write it out at once, instead of answering and
// waiting for the frames: a round trip less for a trigger. But then the
// taker writes before the sender has heard it, and a sender that gave up
// waiting for an answer (RollCallTimeout) and kept the item would hand it
// out twice. So the satellite settles it: the taker, and a sender that
// gives up, each try to store the item's first decision record
// (DecisionStream, expected last subject sequence 0). The one whose record
// is stored has the item; the other yields. A taker writes out an item
// from its offer only once its record is stored; a sender gives up on a
// taker only once its own is.

// decisionKeep is how long a decision record is kept: longer than any
// answer to an offer can still come. A taker's record follows the offer
// at once, unless its process was stopped (FrozenAfter catches that) or
// its connection held the offer, which the satellite ends after two
// missed pings (two minutes at most).
const decisionKeep = 5 * time.Minute

// decisionStreamConfig: small records in memory, kept decisionKeep. At its
// cap (DiscardNew) a record is refused: a taker then takes the item as it
// is sent, a sender reads who has it.
func decisionStreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              wire.DecisionStream,
		Description:       "skypipe: who each item offered with its data went to",
		Subjects:          wire.DecisionSubjects,
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.MemoryStorage,
		Discard:           jetstream.DiscardNew,
		MaxAge:            decisionKeep,
		MaxBytes:          64 << 20,
		MaxMsgsPerSubject: 1,
	}
}

// Prepare makes the streams skypipe uses that it would otherwise make only
// when first needed: the record of offers with data, without which takers
// take every item as it is sent. A satellite prepares its store as it
// starts ('skypipe serve'); Send makes it when it needs it.
func (c *Client) Prepare(ctx context.Context) error {
	return c.createStream(ctx, decisionStreamConfig())
}

// takerRecord is a taker's decision record: a Take with its id.
func takerRecord(rid string) []byte { return wire.AppendCtl(nil, wire.Take, 0, rid) }

// settleOffer is a sender's side of the decision on an item it offered
// with its data and had no answer for: "" if the item stays the sender's
// (no taker has it: keep it, or go on without a taker), else the id of the
// taker that has it. It fails only when the satellite could not say,
// within FailoverWait.
func (c *Client) settleOffer(ctx context.Context, s wire.Subjects, item string) (taker string, err error) {
	js, err := c.jetstream()
	if err != nil {
		return "", err
	}
	subject := s.Decided(item)
	publish := func() error {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.APITimeout)
		defer cancel()
		_, err := js.JS.PublishMsg(cctx, &nats.Msg{Subject: subject, Data: wire.AppendCtl(nil, wire.Pass, 0, item)},
			jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithRetryAttempts(0))
		return err
	}
	made := false
	deadline := time.Now().Add(c.cfg.FailoverWait)
	for {
		err := publish()
		switch {
		case err == nil:
			return "", nil
		case errors.Is(err, jetstream.ErrNoStreamResponse) && !made:
			// No record here: no taker could store one either. Make the
			// stream and try again, in case one is made meanwhile.
			made = true
			if c.createStream(ctx, decisionStreamConfig()) != nil {
				return "", nil // nobody can make it: nobody has a record
			}
			continue
		case errors.Is(err, jetstream.ErrNoStreamResponse):
			// Made, and not listening yet (a busy satellite answered the
			// create first): a taker's record may land any moment, so
			// only a record of the sender's own settles it. Try again.
		}
		// Refused for a record there, or no answer (a cluster electing a
		// leader may have stored it): read what is there.
		data, ok, rerr := js.LastOn(ctx, wire.DecisionStream, subject)
		if rerr == nil && ok {
			if cm, parsed := wire.ParseCtl(data); parsed && cm.Kind == wire.Take {
				return cm.RID, nil
			}
			return "", nil // the sender's own record
		}
		if rerr == nil && !errors.Is(err, jetstream.ErrNoStreamResponse) && !jsapi.Transient(ctx, err) && !jsapi.Exists(err) {
			// Refused for something else (the records at their cap): no
			// taker's record is there to be read, and none can be stored.
			return "", nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", fmt.Errorf("the satellite did not say whether a receiver took item %s: %w", item, err)
		}
		select {
		case <-time.After(c.cfg.FailoverRetry):
		case <-ctx.Done():
		}
	}
}

// decision is what the satellite said to a taker's record.
type decision uint8

const (
	decisionWon     decision = iota // stored: the item is the taker's, from its offer
	decisionLost                    // refused: the sender gave up on the taker first
	decisionUnknown                 // no stream, another error: take the item as it is sent
)

// decisionOf reads the satellite's answer to a taker's record.
func decisionOf(m *nats.Msg) decision {
	if jsapi.Status(m) != "" {
		return decisionUnknown // 503: no stream for the records
	}
	switch err := jsapi.DecodeAck(m.Data); {
	case err == nil:
		return decisionWon
	case jsapi.Exists(err):
		return decisionLost
	}
	return decisionUnknown
}

// pendingOffer is an offer with data a taker answers once the satellite
// has said whether its record is stored.
type pendingOffer struct {
	msg    *nats.Msg
	frames [][]byte
	asked  time.Time
}

// freezeGuard tells whether a receiver's clock ticks went missing lately:
// its process was stopped (Ctrl-Z), its machine slept, or it was starved.
// An offer it reads then may have waited unread long enough for its
// sender's record to be gone. Wall and monotonic time both count: the
// monotonic clock stands still while a machine sleeps.
type freezeGuard struct {
	limit time.Duration
	last  time.Time // the last tick
	froze time.Time // the last tick that came late
}

func newFreezeGuard(limit time.Duration, now time.Time) freezeGuard {
	return freezeGuard{limit: limit, last: now}
}

// gap is the time between two readings of the clock, the longer of the
// monotonic and the wall clock's.
func gap(from, to time.Time) time.Duration {
	return max(to.Sub(from), to.Round(0).Sub(from.Round(0)))
}

// tick records a tick of the receiver's clock.
func (g *freezeGuard) tick(now time.Time) {
	if gap(g.last, now) > g.limit {
		g.froze = now
	}
	g.last = now
}

// suspect: the receiver's ticks are late now, or were within limit.
func (g *freezeGuard) suspect(now time.Time) bool {
	return gap(g.last, now) > g.limit || (!g.froze.IsZero() && gap(g.froze, now) < g.limit)
}
