package pipes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/wire"
	"github.com/skypipe/skypipe/tests/link"
)

// linkedClient is a Client whose connection goes through its own emulated
// link in front of the satellite, made before the link is slowed.
func (s *satellite) linkedClient(t *testing.T) (*Client, *link.Proxy) {
	t.Helper()
	p := s.linkTo(t)
	nc, err := nats.Connect("nats://"+p.Addr(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return New(nc, WithConfig(s.cfg)), p
}

// offering is a satellite whose senders wait long enough for the end of
// a small input that, however busy the machine, the item rides with its
// offer (a reader's EOF a goroutine away can take more than WholeWait's
// 2 ms under the race detector).
func offering(t *testing.T) *satellite {
	sat := newSatellite(t)
	sat.cfg.WholeWait = time.Second
	return sat
}

// prepared is an offering satellite whose store is prepared, as 'skypipe
// serve' prepares it.
func prepared(t *testing.T) *satellite {
	sat := offering(t)
	if err := sat.client().Prepare(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return sat
}

// decisionRecord returns the kind of an item's decision record: Take (a
// taker's) or Pass (its sender's).
func (s *satellite) decisionRecord(ctx context.Context, t *testing.T, name, item string) byte {
	t.Helper()
	js, err := s.client().jetstream()
	if err != nil {
		t.Fatal(err)
	}
	data, ok, err := js.LastOn(ctx, wire.DecisionStream, wire.NewSubjects(name).Decided(item))
	if err != nil || !ok {
		t.Fatalf("the decision record of item %s: %v, %v", item, ok, err)
	}
	cm, ok := wire.ParseCtl(data)
	if !ok {
		t.Fatalf("a decision record %q", data)
	}
	return cm.Kind
}

// A taker writes out a small item from its offer, before its sender has
// heard from anyone: the sender, deaf for two seconds, gives up on the
// taker after RollCallTimeout, finds the taker's record in the satellite,
// and counts the item as taken, not kept.
func TestASmallItemRidesWithItsOfferToOneTaker(t *testing.T) {
	sat := prepared(t)
	ctx := testCtx(t)
	rcv := sat.receive(ctx, sat.client(), "fire", ReceiveOptions{})
	sat.attached(ctx, "fire", 1)

	snd, p := sat.linkedClient(t)
	p.SetDelay(0, 2*time.Second)
	s := sendAsync(ctx, snd, "fire", strings.NewReader("go\n"))
	if res, err := rcv.wait(t); err != nil || res.Items != 1 || rcv.out.String() != "go\n" {
		t.Fatalf("receiver: %+v, %v, %q", res, err, rcv.out.String())
	}
	res, err := s.wait(t)
	if err != nil || res.Kept || res.Bytes != 3 {
		t.Fatalf("sender: %+v, %v; want taken, not kept", res, err)
	}
	if kind := sat.decisionRecord(ctx, t, "fire", res.Item); kind != wire.Take {
		t.Fatalf("the decision record is a %q, want the taker's", kind)
	}
	sat.kept(ctx, "fire", 0)
}

// A taker whose record reaches the satellite after its sender gave up on
// it (its link up is slow) does not write the item from the offer: the
// sender's record came first and the sender keeps the item, which the
// taker then takes from the store. The item comes out once, and nothing
// stays kept. So too where the satellite had no stream of decisions: the
// sender that gives up makes it, before its record.
func TestASenderThatGaveUpFirstKeepsTheItem(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prepared bool
	}{{"prepared", true}, {"no stream of decisions", false}} {
		t.Run(tc.name, func(t *testing.T) {
			sat := offering(t)
			ctx := testCtx(t)
			if tc.prepared {
				if err := sat.client().Prepare(ctx); err != nil {
					t.Fatal(err)
				}
			}
			taker, p := sat.linkedClient(t)
			rcv := sat.receive(ctx, taker, "fire", ReceiveOptions{})
			sat.attached(ctx, "fire", 1)
			p.SetDelay(3*time.Second, 0) // three times the sender's RollCallTimeout

			res, err := sat.client().Send(ctx, "fire", strings.NewReader("once\n"))
			if err != nil || !res.Kept {
				t.Fatalf("sender: %+v, %v; want kept", res, err)
			}
			p.SetDelay(0, 0) // for what the taker sends from now on
			if got, err := rcv.wait(t); err != nil || got.Items != 1 || rcv.out.String() != "once\n" {
				t.Fatalf("receiver: %+v, %v, %q; want the item once", got, err, rcv.out.String())
			}
			if kind := sat.decisionRecord(ctx, t, "fire", res.Item); kind != wire.Pass {
				t.Fatalf("the decision record is a %q, want the sender's", kind)
			}
			sat.kept(ctx, "fire", 0)
		})
	}
}

// A taker that reads only offers without data (a skypipe before them)
// answers an offer with data as it answers any: the sender then sends the
// item live, and it comes out whole.
func TestAnOfferWithDataToAnOlderTaker(t *testing.T) {
	sat := prepared(t)
	ctx := testCtx(t)
	s := wire.NewSubjects("job")
	nc := sat.conn()
	type got struct {
		offer []byte
		item  []byte
		err   error
	}
	done := make(chan got, 1)
	_, err := nc.QueueSubscribe(s.Take(), takers, func(m *nats.Msg) {
		id, _ := offeredItem(m.Reply)
		var item []byte
		live, err := nc.Subscribe(s.Live(id), func(lm *nats.Msg) {
			f, err := wire.Parse(lm.Data)
			if err != nil {
				done <- got{err: err}
				return
			}
			item = append(item, f.Data...)
			if f.End() {
				_ = nc.Publish(s.Item(id), wire.AppendAck(nil, f.Offset+1, f.Offset+1, "old"))
				done <- got{offer: m.Data, item: item}
			}
		})
		if err != nil {
			done <- got{err: err}
			return
		}
		_ = live.SetPendingLimits(-1, -1)
		_ = m.Respond(wire.AppendCtl(nil, wire.Take, 0, "old"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := sat.client().Send(ctx, "job", strings.NewReader("make all\n"))
	if err != nil || res.Kept {
		t.Fatalf("sender: %+v, %v", res, err)
	}
	g := <-done
	if g.err != nil || string(g.item) != "make all\n" {
		t.Fatalf("the older taker got %q, %v", g.item, g.err)
	}
	if _, withData, err := wire.ParseOffer(g.offer); !withData || err != nil {
		t.Fatalf("the offer carried no item (%v): the test proves nothing", err)
	}
}

// Without the stream of decisions (a NATS of the user's own, before its
// first kept item) a taker answers an offer with data as it answers any,
// and the item comes out as it is sent; nothing makes the stream.
func TestAnOfferWithDataWithoutTheDecisions(t *testing.T) {
	sat := offering(t)
	ctx := testCtx(t)
	rcv := sat.receive(ctx, sat.client(), "fire", ReceiveOptions{})
	sat.attached(ctx, "fire", 1)
	res, err := sat.client().Send(ctx, "fire", strings.NewReader("go\n"))
	if err != nil || res.Kept {
		t.Fatalf("sender: %+v, %v", res, err)
	}
	if got, err := rcv.wait(t); err != nil || got.Items != 1 || rcv.out.String() != "go\n" {
		t.Fatalf("receiver: %+v, %v, %q", got, err, rcv.out.String())
	}
	js, _ := sat.client().jetstream()
	if _, err := js.JS.Stream(ctx, wire.DecisionStream); err == nil {
		t.Fatal("the stream of decisions was made")
	}
}

// A taker's clock that stood still (a stopped process, a sleeping
// machine) makes it suspect the offers it reads then: for FrozenAfter
// from the late tick, and while a tick is late.
func TestFreezeGuardSuspectsOffersReadAfterAStop(t *testing.T) {
	const limit = 30 * time.Second
	t0 := time.Now()
	for _, tc := range []struct {
		name    string
		ticks   []time.Duration // after t0
		at      time.Duration   // when the offer is read
		suspect bool
	}{
		{"ticking", []time.Duration{2 * time.Second, 4 * time.Second}, 5 * time.Second, false},
		{"a tick late now", []time.Duration{2 * time.Second}, 40 * time.Second, true},
		{"a late tick just now", []time.Duration{2 * time.Second, 50 * time.Second}, 50 * time.Second, true},
		{"a late tick a while ago", []time.Duration{2 * time.Second, 50 * time.Second, 52 * time.Second, 54 * time.Second, 60 * time.Second, 70 * time.Second, 82 * time.Second}, 83 * time.Second, false},
		{"never ticked, read at once", nil, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFreezeGuard(limit, t0)
			for _, d := range tc.ticks {
				g.tick(t0.Add(d))
			}
			if got := g.suspect(t0.Add(tc.at)); got != tc.suspect {
				t.Fatalf("suspect = %v, want %v", got, tc.suspect)
			}
		})
	}
	// The wall clock alone jumped (a machine that slept: its monotonic
	// clock stood still).
	g := newFreezeGuard(limit, t0)
	slept := t0.Round(0).Add(10 * time.Minute) // no monotonic reading
	if !g.suspect(slept) {
		t.Fatal("a wall clock 10 minutes on is not suspect")
	}
}

// failingAfter is an input that gives its bytes, then fails at once.
type failingAfter struct {
	data []byte
	read bool
}

func (f *failingAfter) Read(p []byte) (int, error) {
	if !f.read {
		f.read = true
		return copy(p, f.data), nil
	}
	return 0, errors.New("input broken")
}

// An input that fails right after its first bytes (within the sender's
// WholeWait for its end) is not an item read whole: it is not offered with
// its data, and the waiting taker sees the item begin and break, as it
// would if the input failed later.
func TestAnInputThatFailsAtOnceBreaksTheItemForItsTaker(t *testing.T) {
	sat := prepared(t)
	ctx := testCtx(t)
	rcv := sat.receive(ctx, sat.client(), "news", ReceiveOptions{})
	sat.attached(ctx, "news", 1)
	if _, err := sat.client().Send(ctx, "news", &failingAfter{data: []byte("the first half\n")}); err == nil {
		t.Fatal("the broken sender succeeded")
	}
	_, err := rcv.wait(t)
	itemErr(t, err, ErrSenderAborted)
	if got := rcv.out.String(); got != "the first half\n" {
		t.Fatalf("the taker wrote %q before the break", got)
	}
	sat.kept(ctx, "news", 0)
}
