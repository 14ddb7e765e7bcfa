package pipes

import (
	"bytes"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/wire"
)

// A taker that wrote its item out and left at once is found gone by the
// sender's probe ("no responders") only after its last acks: however late
// the sender's listener takes them in, the verdict waits behind them. So
// the sender counts the item delivered and keeps nothing, where before a
// verdict read first kept the item (or its end alone) for the next taker,
// which got it twice or got "only a tail" (trigger_1000_waiters, once in a
// CI run on a loaded machine). The sender's listener is held at the
// taker's first ack until the probe's verdict is queued: the order a busy
// machine can give.
func TestAProbeFindsATakerGoneOnlyAfterItsLastAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		item []byte
	}{
		{"an item that rides with its offer", []byte("fire 219\n")},
		{"an item sent live", payload(3*wire.MaxOffer, 7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sat := prepared(t)
			ctx := testCtx(t)
			takerConn := sat.conn()
			taker := New(takerConn, WithConfig(sat.cfg))
			rcv := sat.receive(ctx, taker, "fire", ReceiveOptions{})
			sat.attached(ctx, "fire", 1)

			var (
				once    sync.Once
				held    = make(chan struct{}) // the listener holds the first ack
				verdict = make(chan struct{}) // the probe's verdict is queued
				waited  time.Duration
			)
			cfg := sat.cfg
			cfg.ctlHeard = func(_ string, m *nats.Msg) {
				if cm, ok := wire.ParseCtl(m.Data); !ok || cm.Kind != wire.Ack {
					return
				}
				once.Do(func() {
					close(held)
					t0 := time.Now()
					select {
					case <-verdict:
					case <-time.After(10 * time.Second):
					}
					waited = time.Since(t0)
				})
			}
			cfg.verdictQueued = func(_, _ string) { close(verdict) }
			sender := New(sat.conn(), WithConfig(cfg))
			s := sendAsync(ctx, sender, "fire", bytes.NewReader(tc.item))

			// The taker writes the item out and leaves: its connection
			// closes, and the probe gets "no responders".
			if res, err := rcv.wait(t); err != nil || res.Items != 1 || rcv.out.String() != string(tc.item) {
				t.Fatalf("taker: %+v, %v, %d bytes; want the item once", res, err, rcv.out.Len())
			}
			takerConn.Close()
			select {
			case <-held:
			case <-time.After(20 * time.Second):
				t.Fatal("the sender heard no ack")
			}
			res, err := s.wait(t)
			if err != nil || res.Kept {
				t.Fatalf("sender: %+v, %v; want the item delivered, nothing kept", res, err)
			}
			select {
			case <-verdict:
			default:
				t.Fatalf("the sender's probe found no verdict while its listener was held for %v", waited)
			}
			sat.kept(ctx, "fire", 0)
		})
	}
}

// The offer gate queues the Take of the taker it gives the item to before
// take returns, once: the listener, which queues that taker's acks after
// its own take returns, never queues an ack ahead of the Take (the taker
// would count as a member that wrote nothing, and be kept for when it
// leaves). A second take of the same taker queues nothing; another taker,
// or a take after the sender went on, is refused.
func TestAnOfferGateQueuesItsTakersTakeOnce(t *testing.T) {
	tests := []struct {
		name  string
		steps []string // "close", or a taker's id
		want  []takeResult
		taken bool // close's answer, if a step
		queue []string
	}{
		{"answer, then its record", []string{"a", "a"}, []takeResult{takeNew, takeAgain}, false, []string{"a"}},
		{"another taker after", []string{"a", "b"}, []takeResult{takeNew, takeRefused}, false, []string{"a"}},
		{"taken, then the sender decides", []string{"a", "close"}, []takeResult{takeNew}, true, []string{"a"}},
		{"too late", []string{"close", "a"}, []takeResult{takeRefused}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newCtlQueue()
			g := offerGate{ctl: &q}
			var got []takeResult
			taken := false
			for _, step := range tt.steps {
				if step == "close" {
					taken = g.close()
					continue
				}
				got = append(got, g.take(step))
			}
			if !slices.Equal(got, tt.want) || taken != tt.taken {
				t.Errorf("take: %v, close: %v; want %v, %v", got, taken, tt.want, tt.taken)
			}
			var queued []string
			for cm, ok := q.pop(); ok; cm, ok = q.pop() {
				if cm.Kind != wire.Take {
					t.Errorf("queued a %q", cm.Kind)
				}
				queued = append(queued, cm.RID)
			}
			if !slices.Equal(queued, tt.queue) {
				t.Errorf("queued the Takes of %q; want %q", queued, tt.queue)
			}
		})
	}
}

// An ack of the last byte of an item that rode whole with its offer is not
// an ack of its end: its taker may ack all of it before a byte goes live,
// so the sender counts by the item's length, not by what it sent. A taker
// that leaves having written all its bytes but not its end leaves the end
// kept, as it would had the bytes gone live; one that wrote the end
// leaves nothing to keep.
func TestAnAckOfAnOfferedItemsLastByteIsNotItsEnd(t *testing.T) {
	tests := []struct {
		name     string
		offered  uint64
		sent     uint64 // what went live when the ack came
		ack      uint64
		endOut   bool
		keepFrom int64 // -1: nothing kept once the taker leaves
	}{
		{"offered: all its bytes, before it went live", 9, 0, 9, false, 9},
		{"offered: its end, before it went live", 9, 0, 10, true, -1},
		{"offered: its end, after it went live", 9, 9, 10, true, -1},
		{"live: all its bytes", 0, 9, 9, false, 9},
		{"live: its end", 0, 9, 10, true, -1},
		{"live: part of it", 0, 9, 4, false, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAudience()
			a.offered = tt.offered
			now := time.Now()
			a.apply(wire.Ctl{Kind: wire.Take, RID: "t"}, tt.sent, now)
			a.apply(wire.Ctl{Kind: wire.Ack, Offset: tt.ack, Accepted: tt.ack, RID: "t"}, tt.sent, now)
			if a.endOut != tt.endOut {
				t.Errorf("endOut = %v; want %v", a.endOut, tt.endOut)
			}
			a.apply(wire.Ctl{Kind: ctlDead, RID: "t"}, tt.sent, now)
			keepFrom := int64(-1)
			if a.keep.due {
				keepFrom = int64(a.keep.from)
			}
			if keepFrom != tt.keepFrom {
				t.Errorf("once the taker is gone, kept from %d; want %d (-1: nothing)", keepFrom, tt.keepFrom)
			}
		})
	}
}
