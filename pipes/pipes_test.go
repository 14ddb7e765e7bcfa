package pipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skypipe/skypipe/internal/wire"
)

func TestLiveItemReachesEveryListenerAndIsNotKept(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	data := payload(3<<20+17, 1)
	a := sat.receive(ctx, sat.client(), "news", ReceiveOptions{Role: Listen})
	b := sat.receive(ctx, sat.client(), "news", ReceiveOptions{Role: Listen})
	sat.attached(ctx, "news", 2)
	res, err := sat.client().Send(ctx, "news", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept || res.Bytes != uint64(len(data)) {
		t.Fatalf("send result %+v: want %d bytes, nothing kept", res, len(data))
	}
	for _, r := range []*receiving{a, b} {
		got, err := r.wait(t)
		if err != nil {
			t.Fatal(err)
		}
		if got.Items != 1 || !bytes.Equal([]byte(r.out.String()), data) {
			t.Fatalf("receiver got %d items, %d bytes; want 1 item of %d bytes", got.Items, r.out.Len(), len(data))
		}
	}
	if n, err := keptItems(ctx, sat.client(), "news"); err != nil || n != 0 {
		t.Fatalf("kept %d items (%v), want none", n, err)
	}
}

func TestKeptItemsComeOutInOrderOnePerReceiver(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	items := [][]byte{payload(1<<20, 2), []byte("second\n"), {}, payload(600<<10, 3)}
	for _, it := range items {
		res, err := sat.client().Send(ctx, "files", bytes.NewReader(it))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Kept || res.KeptFrom != 0 {
			t.Fatalf("send result %+v: want kept from byte 0", res)
		}
	}
	sat.kept(ctx, "files", len(items))
	for i, want := range items {
		var out bytes.Buffer
		res, err := sat.client().Receive(ctx, "files", &out, ReceiveOptions{})
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if res.Items != 1 || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("item %d: got %d bytes, want %d", i, out.Len(), len(want))
		}
	}
	sat.kept(ctx, "files", 0)
	// Each receiver dropped its claim (without waiting for the answer):
	// no consumer stays behind.
	js, err := sat.client().jetstream()
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.JS.Stream(ctx, wire.NewSubjects("files").Stream)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "no claim left on the pipe", func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Consumers == 0
	})
}

func TestFollowerDrainsManyKeptItemsWithClaimsAhead(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	const n = 60
	var want strings.Builder
	lines := ""
	for i := range n {
		lines += fmt.Sprintf("job %d\n", i)
	}
	want.WriteString(lines)
	sent, err := sat.client().SendLines(ctx, "jobs", strings.NewReader(lines))
	if err != nil || sent != n {
		t.Fatalf("SendLines: %d, %v", sent, err)
	}
	sat.kept(ctx, "jobs", n)
	r := sat.receive(ctx, sat.client(), "jobs", ReceiveOptions{Follow: true})
	eventually(t, "every job", func() bool { return r.out.Len() == len(lines) })
	sat.kept(ctx, "jobs", 0)
	if r.out.String() != want.String() {
		t.Fatalf("jobs out of order:\n%s", r.out.String())
	}
}

func TestTwoReceiversNeverSplitOrShareAKeptItem(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	a, b := payload(5<<20, 4), payload(5<<20, 5)
	for _, it := range [][]byte{a, b} {
		if _, err := sat.client().Send(ctx, "pair", bytes.NewReader(it)); err != nil {
			t.Fatal(err)
		}
	}
	r1 := sat.receive(ctx, sat.client(), "pair", ReceiveOptions{})
	r2 := sat.receive(ctx, sat.client(), "pair", ReceiveOptions{})
	got := map[string]bool{}
	for _, r := range []*receiving{r1, r2} {
		if _, err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		got[r.out.String()] = true
	}
	if !got[string(a)] || !got[string(b)] {
		t.Fatal("each receiver did not get one whole item")
	}
}

func TestTakerTakesOneItemAndLeavesTheNextKept(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	big := payload(12<<20, 6)
	if _, err := sat.client().Send(ctx, "one", bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	slow := &slowWriter{delay: 2 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := sat.client().Receive(ctx, "one", slow, ReceiveOptions{})
		done <- err
	}()
	eventually(t, "the taker to start writing", func() bool { return slow.n() > 0 })
	sat.attached(ctx, "one", 0) // it took a kept item: it left every other audience
	if _, err := sat.client().Send(ctx, "one", strings.NewReader("second\n")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slow.bytes(), big) {
		t.Fatal("the taker's item is not whole")
	}
	var out bytes.Buffer
	if _, err := sat.client().Receive(ctx, "one", &out, ReceiveOptions{}); err != nil || out.String() != "second\n" {
		t.Fatalf("the next item: %q, %v", out.String(), err)
	}
}

// slowWriter takes its time over each write.
type slowWriter struct {
	mu    sync.Mutex
	delay time.Duration
	buf   bytes.Buffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay) // a slow disk or pipe, not a synchronisation
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *slowWriter) n() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Len()
}

func (w *slowWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

func TestTriggerWaiterWakesAndNothingIsKept(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	r := sat.receive(ctx, sat.client(), "trigger", ReceiveOptions{})
	sat.attached(ctx, "trigger", 1)
	if res, err := sat.client().Send(ctx, "trigger", strings.NewReader("\n")); err != nil || res.Kept {
		t.Fatalf("fire: %+v, %v", res, err)
	}
	if _, err := r.wait(t); err != nil || r.out.String() != "\n" {
		t.Fatalf("waiter: %q, %v", r.out.String(), err)
	}
	if n, _ := keptItems(ctx, sat.client(), "trigger"); n != 0 {
		t.Fatalf("the fired trigger is kept (%d items)", n)
	}
	// Fired first, it waits in the pipe.
	if res, err := sat.client().Send(ctx, "trigger", strings.NewReader("")); err != nil || !res.Kept {
		t.Fatalf("fire with nobody waiting: %+v, %v", res, err)
	}
	var out bytes.Buffer
	if res, err := sat.client().Receive(ctx, "trigger", &out, ReceiveOptions{}); err != nil || res.Items != 1 {
		t.Fatalf("the kept trigger: %+v, %v", res, err)
	}
}

func TestReceiverThatLeavesLiveItemMidWayLeavesTheRestKept(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	rctx, stop := context.WithCancel(ctx)
	r := sat.receive(rctx, sat.client(), "half", ReceiveOptions{})
	sat.attached(ctx, "half", 1)
	g := newGate()
	s := sendAsync(ctx, sat.client(), "half", g)
	g.feed(t, "first part\n")
	eventually(t, "the first part out", func() bool { return r.out.String() == "first part\n" })
	stop()
	r.wait(t)
	g.feed(t, "second part\n")
	g.close()
	res, err := s.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Kept || res.KeptFrom != uint64(len("first part\n")) {
		t.Fatalf("send result %+v: want kept from byte %d", res, len("first part\n"))
	}
	// The next receiver gets the rest, and says it is only a tail.
	var out bytes.Buffer
	_, err = sat.client().Receive(ctx, "half", &out, ReceiveOptions{})
	if ie := itemErr(t, err, ErrPartial); out.String() != "second part\n" || ie.Written != 23 {
		t.Fatalf("the kept rest: %q, written up to %d", out.String(), ie.Written)
	}
	sat.kept(ctx, "half", 0)
}

func TestSenderThatFailsKeepsNothing(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name  string
		parts []string
	}{
		{"at once", nil},
		{"after some bytes", []string{"a line\n", "half a li"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			g.fail = errors.New("is a directory")
			s := sendAsync(ctx, sat.client(), "t", g)
			for _, p := range tc.parts {
				g.feed(t, p)
			}
			g.close()
			if _, err := s.wait(t); err == nil || !strings.Contains(err.Error(), "is a directory") {
				t.Fatalf("send: %v, want the input's error", err)
			}
			if n, err := keptItems(ctx, sat.client(), "t"); err != nil || n != 0 {
				t.Fatalf("a failed send keeps %d items (%v)", n, err)
			}
			var out bytes.Buffer
			_, err := sat.client().Receive(ctx, "t", &out, ReceiveOptions{Timeout: 300 * time.Millisecond})
			if !errors.Is(err, ErrTimeout) || out.Len() != 0 {
				t.Fatalf("the next receiver: %q, %v; want nothing and ErrTimeout", out.String(), err)
			}
		})
	}
}

func TestInterruptedSenderBreaksTheItemForItsReceivers(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	t.Run("live", func(t *testing.T) {
		r := sat.receive(ctx, sat.client(), "live", ReceiveOptions{})
		sat.attached(ctx, "live", 1)
		sctx, stop := context.WithCancel(ctx)
		g := newGate()
		s := sendAsync(sctx, sat.client(), "live", g)
		g.feed(t, "ten bytes\n")
		eventually(t, "the bytes out", func() bool { return r.out.Len() == 10 })
		stop()
		if _, err := s.wait(t); !errors.Is(err, context.Canceled) {
			t.Fatalf("sender: %v, want context.Canceled", err)
		}
		_, err := r.wait(t)
		if ie := itemErr(t, err, ErrSenderAborted); ie.Written != 10 {
			t.Fatalf("written %d, want 10", ie.Written)
		}
	})
	t.Run("kept while read", func(t *testing.T) {
		sctx, stop := context.WithCancel(ctx)
		g := newGate()
		s := sendAsync(sctx, sat.client(), "kept", g)
		g.feed(t, "kept bytes\n")
		sat.kept(ctx, "kept", 1)
		r := sat.receive(ctx, sat.client(), "kept", ReceiveOptions{})
		eventually(t, "the kept bytes out", func() bool { return r.out.Len() == 11 })
		stop()
		s.wait(t)
		_, err := r.wait(t)
		itemErr(t, err, ErrSenderAborted)
		sat.kept(ctx, "kept", 0)
	})
}

func TestVanishedSenderBreaksTheItem(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	for _, kept := range []bool{false, true} {
		t.Run(fmt.Sprintf("kept=%v", kept), func(t *testing.T) {
			name := fmt.Sprintf("vanish-%v", kept)
			var r *receiving
			if !kept {
				r = sat.receive(ctx, sat.client(), name, ReceiveOptions{})
				sat.attached(ctx, name, 1)
			}
			nc := sat.conn()
			g := newGate()
			s := sendAsync(ctx, New(nc, WithConfig(sat.cfg)), name, g)
			g.feed(t, "before the crash\n")
			if kept {
				sat.kept(ctx, name, 1)
				r = sat.receive(ctx, sat.client(), name, ReceiveOptions{})
			}
			eventually(t, "the bytes out", func() bool { return r.out.Len() == 17 })
			nc.Close() // the sender's process dies: no abort, no goodbye
			_, err := r.wait(t)
			itemErr(t, err, ErrSenderVanished)
			if _, err := s.wait(t); !errors.Is(err, ErrDisconnected) {
				t.Fatalf("sender: %v, want ErrDisconnected", err)
			}
			g.close()
			sat.kept(ctx, name, 0) // the broken kept item does not block the pipe
		})
	}
}

func TestDeadClaimantsItemGoesWholeToTheNext(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	data := payload(2<<20, 7)
	if _, err := sat.client().Send(ctx, "claimed", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// A receiver that claimed the item and died without a word: its
	// consumer still holds the item.
	nc := sat.conn()
	dead := New(nc, WithConfig(sat.cfg))
	out := &blockingWriter{started: make(chan struct{})}
	go dead.Receive(ctx, "claimed", out, ReceiveOptions{})
	<-out.started
	nc.Close()
	var got bytes.Buffer
	if _, err := sat.client().Receive(ctx, "claimed", &got, ReceiveOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("got %d bytes, want the whole %d", got.Len(), len(data))
	}
	sat.kept(ctx, "claimed", 0)
}

// blockingWriter takes one write, then blocks forever: a receiver whose
// output stopped.
type blockingWriter struct {
	once    sync.Once
	started chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.started) })
	select {} // blocks: the process is about to die
}

func TestBrokenFramesAreReported(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	nc := sat.conn()
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"garbage", [][]byte{[]byte("not a frame")}},
		{"gap", [][]byte{wire.Seal(append(make([]byte, wire.HeaderLen), "a\n"...), wire.FlagLineStart, 0), wire.Seal(append(make([]byte, wire.HeaderLen), "b\n"...), 0, 99)}},
		{"checksum", [][]byte{func() []byte {
			b := wire.Seal(append(make([]byte, wire.HeaderLen), "x\n"...), 0, 0)
			b[len(b)-1] ^= 1
			return b
		}()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "corrupt-" + tc.name
			r := sat.receive(ctx, sat.client(), name, ReceiveOptions{Role: Listen})
			sat.attached(ctx, name, 1)
			subj := wire.NewSubjects(name).Live("injected")
			for _, f := range tc.frames {
				if err := nc.Publish(subj, f); err != nil {
					t.Fatal(err)
				}
			}
			_, err := r.wait(t)
			itemErr(t, err, ErrCorrupt)
		})
	}
}

func TestOutputFailureLeavesTheKeptItemWhole(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	data := payload(1<<20, 8)
	if _, err := sat.client().Send(ctx, "out", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	_, err := sat.client().Receive(ctx, "out", failAfter{n: 1000}, ReceiveOptions{})
	itemErr(t, err, ErrOutput)
	var got bytes.Buffer
	if _, err := sat.client().Receive(ctx, "out", &got, ReceiveOptions{}); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("the next receiver: %d bytes, %v", got.Len(), err)
	}
}

// failAfter fails every write: a closed stdout.
type failAfter struct{ n int }

func (f failAfter) Write(p []byte) (int, error) { return 0, io.ErrClosedPipe }

func TestRemoveItemRemovesOnlyThatItem(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	var ids []string
	for _, s := range []string{"one\n", "two\n", "three\n"} {
		res, err := c.Send(ctx, "rm", strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Item)
	}
	if err := c.RemoveItem(ctx, "rm", ids[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveItem(ctx, "rm", ids[1]); !errors.Is(err, ErrNoItem) {
		t.Fatalf("removing it again: %v, want ErrNoItem", err)
	}
	for _, want := range []string{"one\n", "three\n"} {
		var out bytes.Buffer
		if _, err := c.Receive(ctx, "rm", &out, ReceiveOptions{}); err != nil || out.String() != want {
			t.Fatalf("got %q (%v), want %q", out.String(), err, want)
		}
	}
	if n, err := c.Remove(ctx, "rm"); err != nil || n != 0 {
		t.Fatalf("Remove of an empty pipe: %d, %v", n, err)
	}
}

func TestNamesAreChecked(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := sat.client()
	bad := "tab\tname"
	if _, err := c.Send(ctx, bad, strings.NewReader("x")); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Send: %v", err)
	}
	if _, err := c.Receive(ctx, bad, io.Discard, ReceiveOptions{}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Receive: %v", err)
	}
	if _, err := c.Attached(ctx, bad); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Attached: %v", err)
	}
	if _, err := c.Remove(ctx, bad); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Remove: %v", err)
	}
}

func TestTimeoutEndsAnIdleReceiver(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	start := time.Now()
	_, err := sat.client().Receive(ctx, "idle", io.Discard, ReceiveOptions{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Fatal("returned before its timeout")
	}
}

// TestReceiverAnswersProbesUntilItsItemIsRemoved: a receiver that wrote a
// kept item out whole still answers presence probes while the item is
// being removed, so that no other receiver judges it gone, clears its
// claim and takes the item again; once the item is removed, it is gone.
func TestReceiverAnswersProbesUntilItsItemIsRemoved(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	const name = "handover"
	data := payload(1<<20, 8)
	if _, err := sat.client().Send(ctx, name, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	removing, release := make(chan string, 1), make(chan struct{})
	cfg := sat.cfg
	cfg.cleanupStarting = func(item string) {
		removing <- item
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	r := sat.receive(ctx, New(sat.conn(), WithConfig(cfg)), name, ReceiveOptions{})
	var item string
	select {
	case item = <-removing:
	case <-ctx.Done():
		t.Fatal("the receiver never began to remove its item")
	}
	// The item is written out; its removal has not begun. Who holds it?
	c := sat.client()
	js, err := c.jetstream()
	if err != nil {
		t.Fatal(err)
	}
	s := wire.NewSubjects(name)
	st, err := js.JS.Stream(ctx, s.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var holder string
	for info := range st.ListConsumers(ctx).Info() {
		if info.Config.FilterSubject == s.Claim(item) {
			holder = info.Config.Metadata[wire.MetaReceiver]
		}
	}
	if holder == "" {
		t.Fatal("no claim on the item while it is being removed")
	}
	if c.peerGone(ctx, s.Rcv(holder)) {
		t.Fatal("the receiver looked gone while removing the item it wrote out")
	}
	close(release)
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(r.out.String()), data) {
		t.Fatalf("got %d bytes, want the whole %d", r.out.Len(), len(data))
	}
	sat.kept(ctx, name, 0)
	if !c.peerGone(ctx, s.Rcv(holder)) {
		t.Fatal("the receiver still answers probes after it returned")
	}
}

// TestPlainReceiverTakesNoSecondItemBeforeItsFirstComes: a receiver
// without Follow that claimed a kept item takes no other, even while the
// first one's frames are slow to come and it looks in the store again
// meanwhile.
func TestPlainReceiverTakesNoSecondItemBeforeItsFirstComes(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	const name = "one-only"
	first, second := payload(300<<10, 9), payload(300<<10, 10)
	for _, it := range [][]byte{first, second} {
		if _, err := sat.client().Send(ctx, name, bytes.NewReader(it)); err != nil {
			t.Fatal(err)
		}
	}
	reading, release := make(chan string, 2), make(chan struct{})
	cfg := sat.cfg
	cfg.readStarting = func(rctx context.Context, item string) {
		reading <- item
		select {
		case <-release:
		case <-rctx.Done():
		}
	}
	r := sat.receive(ctx, New(sat.conn(), WithConfig(cfg)), name, ReceiveOptions{})
	select {
	case <-reading:
	case <-ctx.Done():
		t.Fatal("the receiver claimed nothing")
	}
	// Its first item's frames are held back over several rescans.
	select {
	case item := <-reading:
		t.Fatalf("a receiver without Follow claimed a second item (%s) while its first was on its way", item)
	case <-time.After(5 * sat.cfg.Rescan): // not a synchronisation: a window for a wrong claim to show
	}
	close(release)
	if _, err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(r.out.String()), first) {
		t.Fatalf("got %d bytes, want the first item's %d", r.out.Len(), len(first))
	}
	sat.kept(ctx, name, 1)
}
