package pipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/skypipe/skypipe/internal/wire"
)

// TestEachJobGoesToExactlyOneWaitingTaker: takers waiting first, then
// jobs sent live one a line: every job comes out once, across all.
func TestEachJobGoesToExactlyOneWaitingTaker(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	const workers, jobs = 3, 30
	var (
		mu  sync.Mutex
		got []string
		wg  sync.WaitGroup
	)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for range workers {
		c := sat.client()
		wg.Go(func() {
			for wctx.Err() == nil {
				var out bytes.Buffer
				if _, err := c.Receive(wctx, "jobs", &out, ReceiveOptions{}); err != nil {
					return
				}
				mu.Lock()
				got = append(got, out.String())
				mu.Unlock()
			}
		})
	}
	sat.attached(ctx, "jobs", workers)
	var lines strings.Builder
	for i := range jobs {
		fmt.Fprintf(&lines, "job %02d\n", i)
	}
	if _, err := sat.client().SendLines(ctx, "jobs", strings.NewReader(lines.String())); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every job taken", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= jobs
	})
	stop()
	wg.Wait()
	sort.Strings(got)
	if strings.Join(got, "") != lines.String() {
		t.Fatalf("jobs taken: %q", got)
	}
	if n, _ := keptItems(ctx, sat.client(), "jobs"); n != 0 {
		t.Fatalf("%d jobs left kept", n)
	}
}

// TestWorkersThatSendAndTakeOnOnePipeNeverHang: workers that each keep a
// job and then take one, on one pipe, as a job queue whose workers also
// queue jobs. An offer reaches a taker whose loop is busy claiming, so its
// answer comes late or not at all; the sender keeps the item. The late
// taker must learn that (refused) and take a kept item instead: before the
// sender refused late Takes, a taker waited forever for the live frames of
// an item its sender had kept.
func TestWorkersThatSendAndTakeOnOnePipeNeverHang(t *testing.T) {
	sat := newSatellite(t)
	// A roll call shorter than a claim's requests: answers come late often.
	sat.cfg.RollCallTimeout = 20 * time.Millisecond
	ctx := testCtx(t)
	const workers, rounds = 4, 60
	var (
		mu   sync.Mutex
		got  []string
		want []string
		wg   sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		c := sat.client()
		for i := range rounds {
			want = append(want, fmt.Sprintf("job %d-%02d\n", w, i))
		}
		wg.Go(func() {
			for i := range rounds {
				job := fmt.Sprintf("job %d-%02d\n", w, i)
				if _, err := c.Send(ctx, "jobs", strings.NewReader(job)); err != nil {
					errs <- err
					return
				}
				var out bytes.Buffer
				if _, err := c.Receive(ctx, "jobs", &out, ReceiveOptions{}); err != nil {
					errs <- fmt.Errorf("worker %d, round %d: %w", w, i, err)
					return
				}
				mu.Lock()
				got = append(got, out.String())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("jobs taken: %q", got)
	}
	if n, _ := keptItems(ctx, sat.client(), "jobs"); n != 0 {
		t.Fatalf("%d jobs left kept", n)
	}
}

// TestATakerWhoseOfferedItemNeverComesWaitsOn: a taker takes an offer
// whose sender is gone before its first byte (it went on without the
// taker and finished, or died): the taker's probe finds the sender gone,
// it says so and waits on, and the next item sent is its one item.
func TestATakerWhoseOfferedItemNeverComesWaitsOn(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	var notices lockedBuffer
	taker := sat.receive(ctx, sat.client(WithNotice(func(s string) { _, _ = notices.Write([]byte(s + "\n")) })), "jobs", ReceiveOptions{})
	sat.attached(ctx, "jobs", 1)
	// An offer as a sender makes it, from a sender that is already gone.
	s := wire.NewSubjects("jobs")
	nc := sat.conn()
	if err := nc.PublishRequest(s.Take(), s.TakeReply(nuid.Next()), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the notice of an offered item that never came", func() bool {
		return strings.Contains(notices.String(), "its sender went away before its first byte; waiting for the next")
	})
	sat.attached(ctx, "jobs", 1)
	if _, err := sat.client().Send(ctx, "jobs", strings.NewReader("job 1\n")); err != nil {
		t.Fatal(err)
	}
	res, err := taker.wait(t)
	if err != nil || res.Items != 1 || taker.out.String() != "job 1\n" {
		t.Fatalf("the taker: %+v, %v, %q", res, err, taker.out.String())
	}
}

// TestTakerGetsTheItemAndListenersACopy: with a taker and a listener
// waiting, the item is the taker's; the listener sees it too; nothing is
// kept.
func TestTakerGetsTheItemAndListenersACopy(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	taker := sat.receive(ctx, sat.client(), "t", ReceiveOptions{})
	listener := sat.receive(ctx, sat.client(), "t", ReceiveOptions{Role: Listen})
	sat.attached(ctx, "t", 2)
	data := payload(2<<20, 11)
	if res, err := sat.client().Send(ctx, "t", bytes.NewReader(data)); err != nil || res.Kept {
		t.Fatalf("send: %+v, %v", res, err)
	}
	for _, r := range []*receiving{taker, listener} {
		if _, err := r.wait(t); err != nil || r.out.String() != string(data) {
			t.Fatalf("got %d bytes, %v", r.out.Len(), err)
		}
	}
	if n, _ := keptItems(ctx, sat.client(), "t"); n != 0 {
		t.Fatalf("%d items kept", n)
	}
}

// TestTakerLeavingMidWayLeavesTheRestForTheNextTaker: a listener still
// attached does not stand in for the taker: the rest is kept.
func TestTakerLeavingMidWayLeavesTheRestForTheNextTaker(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	tctx, stopTaker := context.WithCancel(ctx)
	taker := sat.receive(tctx, sat.client(), "left", ReceiveOptions{})
	listener := sat.receive(ctx, sat.client(), "left", ReceiveOptions{Role: Listen})
	sat.attached(ctx, "left", 2)
	g := newGate()
	s := sendAsync(ctx, sat.client(), "left", g)
	g.feed(t, "one\n")
	eventually(t, "the first line at the taker", func() bool { return taker.out.String() == "one\n" })
	stopTaker()
	taker.wait(t)
	g.feed(t, "two\n")
	g.close()
	res, err := s.wait(t)
	if err != nil || !res.Kept || res.KeptFrom != 4 {
		t.Fatalf("send: %+v, %v; want kept from byte 4", res, err)
	}
	if _, err := listener.wait(t); err != nil || listener.out.String() != "one\ntwo\n" {
		t.Fatalf("listener: %q, %v", listener.out.String(), err)
	}
	var out bytes.Buffer
	_, err = sat.client().Receive(ctx, "left", &out, ReceiveOptions{PartialOK: true})
	if err != nil || out.String() != "two\n" {
		t.Fatalf("the next taker: %q, %v", out.String(), err)
	}
}

// TestOneFireWakesOneTakerOrEveryListener: a send wakes one waiting
// taker, as a send on a Go channel does; listeners all see it, as a
// close does.
func TestOneFireWakesOneTakerOrEveryListener(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		role  Role
		woken int
	}{{Take, 1}, {Listen, 3}} {
		t.Run(tc.role.String(), func(t *testing.T) {
			name := "fire-" + tc.role.String()
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			var rs []*receiving
			for range 3 {
				rs = append(rs, sat.receive(rctx, sat.client(), name, ReceiveOptions{Role: tc.role}))
			}
			sat.attached(ctx, name, 3)
			if _, err := sat.client().Send(ctx, name, strings.NewReader("\n")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the fire to wake", func() bool {
				n := 0
				for _, r := range rs {
					select {
					case <-r.done:
						n++
					default:
					}
				}
				return n == tc.woken
			})
			sat.attached(ctx, name, 3-tc.woken)
		})
	}
}

// blockedWriter is an output that holds its first Write until released.
type blockedWriter struct {
	lockedBuffer
	entered, release chan struct{}
	once, releasing  sync.Once
}

func newBlockedWriter() *blockedWriter {
	return &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
}

// unblock releases the writer, once however often it is called.
func (w *blockedWriter) unblock() { w.releasing.Do(func() { close(w.release) }) }

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return w.lockedBuffer.Write(p)
}

// A kept item is the takers': a listener that looks while a taker waits
// on the pipe leaves it, even when the taker is too busy to take it yet
// (its item was kept because the taker did not answer the offer in time,
// as a loaded aggregator does not; tails of 300 senders lost whole items
// from the aggregator's log to a listener that attached half-way). The
// taker takes it once it can. With no taker waiting, the listener takes it.
func TestAListenerLeavesAKeptItemToTheTakerWaiting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		taker bool
	}{{"a taker waits", true}, {"no taker", false}} {
		t.Run(tc.name, func(t *testing.T) {
			sat := newSatellite(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			var taker *blockedWriter
			var takerDone sync.WaitGroup
			defer takerDone.Wait()
			defer cancel()
			if tc.taker {
				// A following taker whose output is stuck on its first item.
				taker = newBlockedWriter()
				defer taker.unblock() // however the test ends, before the wait above
				c := sat.client()
				takerDone.Go(func() { _, _ = c.Receive(ctx, "logs", taker, ReceiveOptions{Follow: true}) })
				sat.attached(ctx, "logs", 1)
				sendAsync(ctx, sat.client(), "logs", strings.NewReader("one\n"))
				select {
				case <-taker.entered:
				case <-time.After(20 * time.Second):
					t.Fatal("the taker got no item")
				}
			}
			// Nobody answers this one's offer in time: it is kept.
			if res, err := sat.client().Send(ctx, "logs", strings.NewReader("two\n")); err != nil || !res.Kept {
				t.Fatalf("send: %+v, %v; want kept", res, err)
			}

			looked := make(chan bool, 16)
			lcfg := sat.cfg
			lcfg.keptLooked = func(found int, mayTake bool) {
				if found == 0 {
					return
				}
				select {
				case looked <- mayTake:
				default:
				}
			}
			listener := sat.receive(ctx, New(sat.conn(), WithConfig(lcfg)), "logs", ReceiveOptions{Role: Listen, Follow: true})
			var mayTake bool
			select {
			case mayTake = <-looked:
			case <-time.After(20 * time.Second):
				t.Fatal("the listener did not look for kept items")
			}
			if mayTake != !tc.taker {
				t.Fatalf("the listener's look: may take a kept item %v; want %v", mayTake, !tc.taker)
			}
			if !tc.taker {
				eventually(t, "the kept item at the listener", func() bool { return listener.out.String() == "two\n" })
				return
			}
			taker.unblock()
			eventually(t, "both items at the taker", func() bool { return taker.String() == "one\ntwo\n" })
			if got := listener.out.String(); strings.Contains(got, "two") {
				t.Fatalf("the listener wrote %q: it took the taker's kept item", got)
			}
		})
	}
}

// A listener waiting on an empty pipe asks whether a taker waits once, in
// the flight of its first look, and not again at each Rescan: a listener
// idle on a pipe costs the satellite only its looks (issue 11). A look
// that finds kept items asks again (the test above).
func TestAListenerWaitingOnAnEmptyPipeAsksAboutTakersOnce(t *testing.T) {
	sat := newSatellite(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	s, _ := pipeAPI(t, sat.client(), "logs")
	// What reaches the take subject: the listener's questions, as no
	// sender is there to offer anything.
	watch := sat.conn()
	questions, err := watch.SubscribeSync(s.Take())
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}

	looks := make(chan int, 64)
	lcfg := sat.cfg
	lcfg.keptLooked = func(found int, _ bool) {
		select {
		case looks <- found:
		default:
		}
	}
	listener := sat.receive(ctx, New(sat.conn(), WithConfig(lcfg)), "logs", ReceiveOptions{Role: Listen, Follow: true})
	const rescans = 5
	for i := range rescans {
		select {
		case found := <-looks:
			if found != 0 {
				t.Fatalf("look %d found %d kept items on an empty pipe", i, found)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("the listener looked %d times; want %d", i, rescans)
		}
	}
	// The listener flushed its question before its first look ended; the
	// watcher's flush brings what the satellite sent it before.
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, err := questions.Pending(); err != nil || n != 1 {
		t.Fatalf("the listener asked %d times in %d looks (%v); want once", n, rescans, err)
	}
	cancel()
	if _, err := listener.wait(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("the listener: %v", err)
	}
}

// A taker that took an offered item whose sender then kept it claims the
// item from the store. If another receiver holds it there already, the
// item is that one's, and the taker leaves it, as when a sender refuses a
// taker, and waits for the next: it never writes the live frames of an
// item that another writes whole (a job done twice, and a tail with an
// error here). If the store holds nothing of it yet (its live frames came
// first), the item is the taker's, and it reads it live to its end.
func TestATakerThatTookAnItemItsSenderKeptLeavesItOnlyToItsHolder(t *testing.T) {
	for _, tc := range []struct {
		name string
		held bool   // another receiver holds the item in the store
		want string // what the taker writes
	}{
		{name: "held by another: the taker leaves it and takes the next", held: true, want: "three\n"},
		{name: "not stored yet: the taker reads it live", held: false, want: "two\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sat := newSatellite(t)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			item := nuid.Next()
			if tc.held {
				// An item kept with nobody there, then held by a taker
				// whose output is stuck on it.
				two, err := sat.client().Send(ctx, "jobs", strings.NewReader("two\n"))
				if err != nil || !two.Kept {
					t.Fatalf("send: %+v, %v; want kept", two, err)
				}
				item = two.Item
				holder := newBlockedWriter()
				var holderDone sync.WaitGroup
				defer holderDone.Wait()
				defer cancel()
				defer holder.unblock() // however the test ends, before the wait above
				hc := sat.client()
				holderDone.Go(func() { _, _ = hc.Receive(ctx, "jobs", holder, ReceiveOptions{}) })
				select {
				case <-holder.entered:
				case <-time.After(20 * time.Second):
					t.Fatal("the holder did not take the kept item")
				}
			}

			// The taker, then an offer of that item as its sender made
			// it, and the sender's live frame that says it is kept.
			taker := sat.receive(ctx, sat.client(), "jobs", ReceiveOptions{})
			s, _ := pipeAPI(t, sat.client(), "jobs")
			nc := sat.conn()
			answers, err := nc.SubscribeSync(s.TakeReply(item))
			if err != nil {
				t.Fatal(err)
			}
			for {
				if err := nc.PublishRequest(s.Take(), s.TakeReply(item), nil); err != nil {
					t.Fatal(err)
				}
				m, err := answers.NextMsgWithContext(ctx)
				if err != nil && !errors.Is(err, nats.ErrNoResponders) {
					t.Fatalf("no answer to the offer: %v", err)
				}
				if err == nil {
					if cm, ok := wire.ParseCtl(m.Data); ok && cm.Kind == wire.Take {
						break
					}
					t.Fatalf("the taker answered the offer %q; want a Take", m.Data)
				}
				// No responders: the taker is not subscribed yet.
				select {
				case <-ctx.Done():
					t.Fatal("the taker never took the offer")
				case <-time.After(sat.cfg.Tick):
				}
			}
			frame := append(make([]byte, wire.HeaderLen), "two\n"...)
			if err := nc.Publish(s.Live(item), wire.Seal(frame, wire.FlagKept|wire.FlagLineStart, 0)); err != nil {
				t.Fatal(err)
			}
			if tc.held {
				if res, err := sat.client().Send(ctx, "jobs", strings.NewReader("three\n")); err != nil {
					t.Fatalf("send: %+v, %v", res, err)
				}
			} else {
				end := wire.Seal(make([]byte, wire.HeaderLen), wire.FlagKept|wire.FlagEnd|wire.FlagLineStart, 4)
				if err := nc.Publish(s.Live(item), end); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := taker.wait(t); err != nil {
				t.Fatalf("the taker: %v (it wrote %q)", err, taker.out.String())
			}
			if got := taker.out.String(); got != tc.want {
				t.Fatalf("the taker wrote %q; want %q", got, tc.want)
			}
		})
	}
}
