package pipes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// The store: one work-queue stream, wire.Stream, holds the kept items of
// every pipe (see doc.go, "The store").

// maxClaims is how many claims (consumers) the stream allows at once, over
// all pipes. Left unset, nats-server would allow 1,000; an account's own
// lower limit still rules.
const maxClaims = 1 << 20

func streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         wire.Stream,
		Description:  "skypipe: the kept items of every pipe",
		Subjects:     wire.StreamSubjects,
		Retention:    jetstream.WorkQueuePolicy,
		Storage:      jetstream.FileStorage,
		Discard:      jetstream.DiscardNew,
		AllowDirect:  true,
		MaxConsumers: maxClaims,
	}
}

// clusterReplicas is how many copies of the kept items a cluster of
// satellites holds: a majority survives the loss of any one.
const clusterReplicas = 3

func (c *Client) ensureStream(ctx context.Context, s wire.Subjects) error {
	err := c.createStream(ctx, streamConfig())
	switch {
	case err == nil:
		// The decisions of offers with data come with the store: a
		// satellite that keeps items settles those too. Without them
		// offers are taken as they were before (see decide.go).
		_ = c.createStream(ctx, decisionStreamConfig())
		return nil
	case jsapi.Code(err) == jsapi.CodeMaxStreams, jsapi.Full(err):
		return storeError(s, err)
	}
	return fmt.Errorf("creating the store of kept items (for pipe %q): %w", s.Name, err)
}

// createStream makes a stream of skypipe's, with three replicas on a
// cluster (one where it has fewer JetStream servers), unless it exists.
func (c *Client) createStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	js, err := c.jetstream()
	if err != nil {
		return err
	}
	if c.clustered() {
		cfg.Replicas = clusterReplicas
	}
	return js.RetryIf(ctx, func(ctx context.Context, err error) bool {
		switch {
		case jsapi.Code(err) == jsapi.CodeInsufficient && cfg.Replicas > 1:
			if cfg.Name == wire.Stream {
				c.noticef("the cluster has fewer than %d satellites: kept items are stored on one", clusterReplicas)
			}
			cfg.Replicas = 1
			return true
		case jsapi.Code(err) == jsapi.CodeNotClustered && cfg.Replicas > 1:
			cfg.Replicas = 1 // a cluster name, but one JetStream server (a leaf node's)
			return true
		}
		return jsapi.Code(err) == jsapi.CodeJSUnavailable // a cluster electing its leader
	}, func(ctx context.Context) error {
		_, err := js.JS.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil
		}
		return err
	})
}

// purgeItem deletes every stored frame of an item.
func (c *Client) purgeItem(ctx context.Context, s wire.Subjects, item string) error {
	js, err := c.jetstream()
	if err == nil {
		_, err = js.Purge(ctx, s.Stream, s.Claim(item))
	}
	if err != nil {
		return fmt.Errorf("removing item %s from the pipe: %w", item, err)
	}
	return nil
}

// storedFrom tells whether any frame of item is stored at or after stream
// sequence seq, as the stream's leader says.
func (c *Client) storedFrom(ctx context.Context, s wire.Subjects, item string, seq uint64) (bool, error) {
	js, err := c.jetstream()
	if err != nil {
		return false, err
	}
	found, err := js.StoredFrom(ctx, s.Stream, s.Claim(item), seq)
	if err != nil {
		return false, fmt.Errorf("looking at item %s in the pipe: %w", item, err)
	}
	return found, nil
}

// storeError names the limit that stopped an item from being kept, if one
// did: the satellite's store (its --max-store, or the disk), or the JetStream
// limits of the user's NATS account.
func storeError(s wire.Subjects, err error) error {
	switch code := jsapi.Code(err); {
	case code == jsapi.CodeMaxStreams:
		return fmt.Errorf("%w: %w: %w, and skypipe keeps the items of every pipe in one stream of its own, %s, which does not exist yet (%v)", ErrPipeFull, ErrAccountLimit, ErrNoRoomForStream, wire.Stream, err)
	case code == jsapi.CodeAccountResources:
		return fmt.Errorf("%w: %w: its store is full (max_file or max_bytes); pipe %q kept nothing of this item (%v)", ErrPipeFull, ErrAccountLimit, s.Name, err)
	case jsapi.Full(err):
		return fmt.Errorf("%w: the satellite's store is at its cap; pipe %q kept nothing of this item (%v)", ErrPipeFull, s.Name, err)
	}
	return fmt.Errorf("storing in pipe %q: %w", s.Name, err)
}

// storeWriter publishes one item's kept frames and tracks the satellite's
// confirmations, at most its window in flight. Its owner, a sender, calls
// write and wait from one goroutine; confirmations come in through the
// Client's confirmations, and a watchdog fails the writer when they stop
// coming.
type storeWriter struct {
	c    *Client
	s    wire.Subjects
	item string
	// headAsync: the store is known to exist (Client.lookForStore), so the
	// head frame is published like every other frame, with a reply
	// subject of its own, and the frames after it follow at once; else it
	// is stored by request, which makes the store if there is none. Set
	// by the owner before the first write.
	headAsync bool
	// headSent: the head frame went out; its confirmation may not have
	// come back (the sender was interrupted meanwhile), so it may be stored.
	// The owner's alone.
	headSent bool
	subject  string // where frames go
	reply    string // where their confirmations come: reply.<frame number>
	// retain: the connection reconnects. Each frame then carries a
	// Nats-Msg-Id, and a copy of it is kept until it is confirmed, so that
	// the frames a lost connection left unconfirmed can be published again
	// once it is back; the stream drops the ones it already has.
	retain bool
	// input: the item's input is a regular file (retain): a frame keeps
	// its header, not a copy, and is read again from the file to be
	// published again. Set by the owner before the first write.
	input *input

	mu sync.Mutex
	// cond is signalled whenever a frame is confirmed, or the writer fails.
	cond *sync.Cond
	// unconfirmed are the frames published and not yet confirmed, in the
	// order they went out; sent numbers the frames.
	unconfirmed []pendingFrame
	// spare are the copies of confirmed frames (retain), reused for the
	// next ones: a sender storing at a few hundred MB/s would otherwise
	// make a 256 KiB copy per frame for the collector, and its heap goal,
	// twice what it holds, took its RSS from 18 to 59 MiB (a 1 GiB item).
	// Never more copies exist than the window has grown to.
	spare [][]byte
	// window is how many frames may be unconfirmed (StoreWindow, grown
	// across a long path up to StoreWindowMax).
	window pathWindow
	// headStored: the satellite confirmed the head frame (stored).
	headStored bool
	sent       uint64
	progress   time.Time // the last confirmation, or the first frame after none pending
	silence    time.Time // when the watchdog last published the unconfirmed frames again
	err        error

	// inProcess are the frames published again whose first copy the
	// stream was still storing (CodeMsgIDInProcess): the watcher publishes
	// them again after FailoverRetry, unless confirmed meanwhile. retry
	// wakes it.
	inProcess []uint64
	retry     chan struct{}

	stop      chan struct{}
	connected chan nats.Status // retain: the connection is back
	watcher   sync.WaitGroup

	// msg is the message write publishes each frame with (the owner's).
	msg nats.Msg
	// wakeDone and wakeStop: the context whose end wakes the owner's
	// waits for room (its Done channel), and the stop of that wake-up
	// (wakeOnEnd). Set under mu by the owner.
	wakeDone <-chan struct{}
	wakeStop func() bool
}

// pendingFrame is a kept frame on its way into the store.
type pendingFrame struct {
	n    uint64
	head bool   // the item's head, on the head subject
	id   string // its Nats-Msg-Id (retain)
	data []byte // a copy of it (retain, unless the writer has an input)
	// hdr and size: its header and how many of the item's bytes follow
	// it, to read it again from the writer's input (retain).
	hdr  [wire.HeaderLen]byte
	size int
}

func (c *Client) newStoreWriter(s wire.Subjects, item string) (*storeWriter, error) {
	w := &storeWriter{c: c, s: s, item: item, subject: s.Kept(item), stop: make(chan struct{}), retry: make(chan struct{}, 1), retain: c.reconnects(), window: newStoreWindow(c.cfg)}
	w.cond = sync.NewCond(&w.mu)
	reply, err := c.confirmations.add(c.nc, item, w.onAck)
	if err != nil {
		return nil, err
	}
	w.reply = reply
	if w.retain {
		w.connected = c.nc.StatusChanged(nats.CONNECTED)
	}
	w.watcher.Go(w.watch)
	return w, nil
}

// msgID is a kept frame's Nats-Msg-Id: the item, the frame's subject kind
// (head or not), its offset and its flags name it.
func msgID(item string, head bool, frame []byte) string {
	kind := "k"
	if head {
		kind = "h"
	}
	return item + "." + kind + "." + strconv.FormatUint(binary.BigEndian.Uint64(frame[8:16]), 10) + "." + strconv.Itoa(int(frame[1]))
}

// confirmations hands the satellite's confirmations of stored frames to the
// writers of a Client's items, through one subscription made on first use:
// an item, a SendLines line among them, costs no subscription of its own.
// The reply subject of an item's frames is the prefix, its id and the
// frame's number.
type confirmations struct {
	mu     sync.Mutex
	prefix string
	sub    *nats.Subscription
	to     map[string]func(*nats.Msg)
}

// add routes the confirmations sent to the returned reply subject to onAck
// until remove.
func (r *confirmations) add(nc *nats.Conn, item string, onAck func(*nats.Msg)) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		prefix := nc.NewInbox()
		sub, err := nc.Subscribe(prefix+".*.*", r.route)
		if err != nil {
			return "", err
		}
		_ = sub.SetPendingLimits(-1, -1)
		r.prefix, r.sub, r.to = prefix, sub, map[string]func(*nats.Msg){}
	}
	r.to[item] = onAck
	return r.prefix + "." + item, nil
}

// remove stops routing an item's confirmations: late ones are dropped.
func (r *confirmations) remove(item string) {
	r.mu.Lock()
	delete(r.to, item)
	r.mu.Unlock()
}

func (r *confirmations) route(m *nats.Msg) {
	r.mu.Lock()
	item, _, _ := strings.Cut(strings.TrimPrefix(m.Subject, r.prefix+"."), ".")
	onAck := r.to[item]
	r.mu.Unlock()
	if onAck != nil {
		onAck(m)
	}
}

// watch publishes the unconfirmed frames again when confirmations stop
// coming, and fails the writer when they stay away: a frame published to
// a satellite that lost it (a cluster leader change) is never confirmed,
// and nobody would wake the sender otherwise. A satellite that is only
// busy confirms late (see Config.AckTimeout).
func (w *storeWriter) watch() {
	cfg := w.c.cfg
	t := time.NewTicker(cfg.AckTimeout / 4)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.connected: // nil unless retain
			w.resend()
			continue
		case <-w.retry:
			select {
			case <-w.stop:
				return
			case <-time.After(cfg.FailoverRetry):
			}
			w.publishInProcess()
			continue
		case <-t.C:
		}
		w.mu.Lock()
		now := time.Now()
		if !w.c.nc.IsConnected() && !w.c.nc.IsClosed() && w.retain {
			// Nothing can be confirmed while the connection is being
			// re-established: the time does not count. Once closed (its
			// owner's bound ran out) it counts again.
			w.progress, w.silence = now, now
		}
		switch {
		case len(w.unconfirmed) == 0 || w.err != nil:
		case now.Sub(w.progress) > cfg.AckGiveUp:
			w.err = fmt.Errorf("%w (pipe %q, %d frames unconfirmed after %v)", ErrNotStored, w.s.Name, len(w.unconfirmed), cfg.AckGiveUp.Round(time.Second))
			w.cond.Broadcast()
		case w.retain && now.Sub(w.progress) > cfg.AckTimeout && now.Sub(w.silence) > cfg.AckTimeout:
			w.silence = now
			w.publishAgain()
		}
		w.mu.Unlock()
	}
}

// resend publishes again the frames a lost connection left unconfirmed,
// once it is back.
func (w *storeWriter) resend() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.progress = time.Now()
	w.publishAgain()
}

// publishAgain publishes the unconfirmed frames again, in order (retain);
// w.mu is held. The stream drops those it already holds (their
// Nats-Msg-Id), and their copies' confirmations find them confirmed. A
// publish that fails is left to the next reconnection or to the watchdog.
func (w *storeWriter) publishAgain() {
	for _, f := range w.unconfirmed {
		m, ok := w.frameMsg(f)
		if !ok || w.c.nc.PublishMsg(m) != nil {
			return
		}
	}
}

// publishInProcess publishes again the frames the stream was still
// storing when their copies came (inProcess), those not confirmed since.
func (w *storeWriter) publishInProcess() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.inProcess {
		i := slices.IndexFunc(w.unconfirmed, func(f pendingFrame) bool { return f.n == n })
		if i < 0 {
			continue
		}
		m, ok := w.frameMsg(w.unconfirmed[i])
		if !ok {
			break
		}
		if w.c.nc.PublishMsg(m) != nil {
			break // the connection went: resend publishes them all
		}
	}
	w.inProcess = w.inProcess[:0]
}

// frameMsg is the message that stores a pending frame again (retain); w.mu
// is held. A frame it cannot read again from the writer's input fails the
// writer, and ok is false.
func (w *storeWriter) frameMsg(f pendingFrame) (m *nats.Msg, ok bool) {
	m = &nats.Msg{}
	w.fillFrameMsg(m, f)
	if f.data == nil && w.input != nil {
		data, err := w.input.frame(&f.hdr, f.size)
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("storing in pipe %q: %w", w.s.Name, err)
			}
			w.cond.Broadcast()
			return nil, false
		}
		m.Data = data
	}
	return m, true
}

// fillFrameMsg makes m the message that stores a pending frame, reusing
// its header.
func (w *storeWriter) fillFrameMsg(m *nats.Msg, f pendingFrame) {
	m.Subject = w.subject
	if f.head {
		m.Subject = w.s.Head(w.item)
	}
	m.Reply, m.Data = w.reply+"."+strconv.FormatUint(f.n, 10), f.data
	if f.id == "" {
		m.Header = nil
		return
	}
	if ids := m.Header[jetstream.MsgIDHeader]; len(ids) == 1 {
		ids[0] = f.id
		return
	}
	m.Header = nats.Header{jetstream.MsgIDHeader: []string{f.id}}
}

func (w *storeWriter) onAck(m *nats.Msg) {
	var err error
	inProcess := false
	if jsapi.Status(m) == jsapi.StatusNoResponse {
		err = fmt.Errorf("%w: no store answered for pipe %q (removed while sending, or its cluster lost a member)", ErrNotStored, w.s.Name)
	} else if aerr := jsapi.DecodeAck(m.Data); aerr != nil {
		inProcess = jsapi.Code(aerr) == jsapi.CodeMsgIDInProcess
		err = storeError(w.s, aerr)
	}
	n, perr := strconv.ParseUint(wire.LastToken(m.Subject), 10, 64)
	w.mu.Lock()
	defer w.mu.Unlock()
	// At most StoreWindowMax frames, confirmed mostly in order: the first
	// is nearly always the one.
	i := slices.IndexFunc(w.unconfirmed, func(f pendingFrame) bool { return f.n == n })
	if perr != nil || i < 0 {
		return // confirmed before: a frame published again, or a late answer
	}
	if inProcess && w.unconfirmed[i].id != "" {
		// A frame published again after a reconnect whose first copy a
		// cluster's leader is still storing: neither stored nor refused
		// yet. It stays unconfirmed (the watchdog's bound holds) and goes
		// out again in a moment; the first copy's own answer, if it comes,
		// confirms it. Failing here failed a sender whose member of a
		// cluster was killed (faults/pipe_cluster_member_lost_reconnect, 1
		// run in 4).
		w.inProcess = append(w.inProcess, n)
		select {
		case w.retry <- struct{}{}:
		default:
		}
		return
	}
	if d := w.unconfirmed[i].data; d != nil {
		w.spare = append(w.spare, d) // nats.go copied it when it was published
	}
	if w.unconfirmed[i].head && err == nil {
		w.headStored = true
	}
	w.unconfirmed = slices.Delete(w.unconfirmed, i, i+1)
	w.progress = time.Now()
	w.window.heard(w.progress)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
}

// write stores one sealed frame. The first frame of an item goes to the head
// subject; unless headAsync, it is confirmed before write returns, and it
// creates the store if there is none. buf may be reused when write returns.
func (w *storeWriter) write(ctx context.Context, buf []byte) error {
	head := !w.headSent
	if head && !w.headAsync {
		return w.writeHead(ctx, buf)
	}
	w.mu.Lock()
	if !w.room() && w.err == nil {
		// Waiting for room honours ctx: a sender interrupted, or whose
		// connection closed past its reconnect bound, while the
		// satellite confirmed nothing waited here for good.
		blocked := time.Now()
		w.wakeOnEnd(ctx)
		for !w.room() && w.err == nil && ctx.Err() == nil {
			w.cond.Wait()
		}
		if w.err == nil && ctx.Err() != nil {
			w.mu.Unlock()
			return ctx.Err()
		}
		w.window.waited(time.Since(blocked), true)
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if len(w.unconfirmed) == 0 {
		w.progress = time.Now()
	}
	w.window.asking(time.Now(), len(w.unconfirmed))
	w.sent++
	f := pendingFrame{n: w.sent, head: head}
	if w.retain {
		f.id = msgID(w.item, head, buf)
		if w.input != nil {
			f.hdr, f.size = [wire.HeaderLen]byte(buf), len(buf)-wire.HeaderLen
		} else {
			f.data = w.copyOf(buf)
		}
	}
	w.unconfirmed = append(w.unconfirmed, f)
	w.mu.Unlock()
	w.headSent = true
	// Each frame's reply subject names it, so that a confirmation is
	// never counted for another frame, one published again included.
	// The message is the writer's own, reused: nats.go copies it out
	// before PublishMsg returns, and a frame's own message and header,
	// 550 bytes, were half of what a sender allocated (and so of the heap
	// its GC let grow) for a 1 GiB kept item.
	m := &w.msg
	w.fillFrameMsg(m, f)
	if f.data == nil {
		m.Data = buf // not retained, or read again from the input if need be
	}
	err := w.c.nc.PublishMsg(m)
	m.Data = nil // not held until the next frame
	if err != nil && !w.c.lostInFlight(err) {
		return fmt.Errorf("storing in pipe %q: %w", w.s.Name, err)
	}
	return nil
}

// wakeOnEnd makes the end of ctx wake the owner's waits for room; w.mu is
// held. It is arranged once for each context the owner writes under, not
// for each wait: a sender outrunning its satellite waits for room at
// nearly every frame, 4,096 a GiB. close releases it.
func (w *storeWriter) wakeOnEnd(ctx context.Context) {
	done := ctx.Done()
	if done == nil || done == w.wakeDone {
		return // never ends, or arranged already
	}
	if w.wakeStop != nil {
		w.wakeStop()
	}
	w.wakeDone = done
	w.wakeStop = context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
}

// room reports whether the next frame fits in the window; w.mu is held.
// The window spans the frames from the oldest unconfirmed one to the
// next, not only the unconfirmed ones: a frame a cluster's dying leader
// lost while its new leader stored the frames after it is published
// again (watch) at most a window behind them, where a reader puts it back
// in order (reorder.go). Counting only the unconfirmed frames let a
// sender run on past the lost one, to the item's end: in one run of
// faults/pipe_cluster_leader_killed of 4 its sender exited 0, every frame
// confirmed, and the reader found the item broken ("expected byte
// 983040, got byte 1245184"), the frame stored further from its place
// than a reader holds frames.
func (w *storeWriter) room() bool {
	return len(w.unconfirmed) == 0 || w.sent+1-w.unconfirmed[0].n < uint64(w.window.size())
}

// timed starts the window from a round trip to the satellite timed before
// the first frame (see pathWindow.timed).
func (w *storeWriter) timed(rtt time.Duration) {
	w.mu.Lock()
	w.window.timed(rtt)
	w.mu.Unlock()
}

// copyOf copies a frame into a spare copy if one is there; w.mu is held.
func (w *storeWriter) copyOf(buf []byte) []byte {
	if n := len(w.spare); n > 0 {
		d := w.spare[n-1]
		w.spare[n-1] = nil
		w.spare = w.spare[:n-1]
		return append(d[:0], buf...)
	}
	return slices.Clone(buf)
}

func (w *storeWriter) writeHead(ctx context.Context, buf []byte) error {
	js, err := w.c.jetstream()
	if err != nil {
		return err
	}
	created := false
	// Asked again after a timeout (a loaded satellite) or a lost
	// connection, the stream keeps one: the request is retried below,
	// whether or not the frames after it are retained.
	m := nats.Msg{Subject: w.s.Head(w.item), Data: buf,
		Header: nats.Header{jetstream.MsgIDHeader: []string{msgID(w.item, true, buf)}}}
	err = js.Retry(ctx, func(ctx context.Context) error {
		w.headSent = true
		resp, err := w.c.nc.RequestMsgWithContext(ctx, &m)
		if errors.Is(err, nats.ErrNoResponders) && !created {
			// No stream takes the subject: the pipe's first kept item.
			created = true
			if err := w.c.ensureStream(ctx, w.s); err != nil {
				return err
			}
			resp, err = w.c.nc.RequestMsgWithContext(ctx, &m)
		}
		if err != nil {
			return err // a new stream, or one whose cluster elects a leader, may not answer at once
		}
		if err := jsapi.DecodeAck(resp.Data); err != nil {
			return storeError(w.s, err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrPipeFull) || jsapi.Code(err) != 0 {
			return err
		}
		return fmt.Errorf("storing in pipe %q: %w", w.s.Name, err)
	}
	w.mu.Lock()
	w.headStored = true
	w.mu.Unlock()
	w.c.storeSeen.Store(true)
	return nil
}

// stored tells whether the satellite confirmed the item's head: the item
// is kept (its frames after the head are confirmed by wait).
func (w *storeWriter) stored() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.headStored
}

// wait returns when every frame written is confirmed, on the first error,
// or when ctx ends.
func (w *storeWriter) wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.unconfirmed) > 0 && w.err == nil && ctx.Err() == nil {
		w.cond.Wait()
	}
	if w.err != nil {
		return w.err
	}
	return ctx.Err()
}

// close stops the writer and waits for its watchdog. Confirmations that
// come later are dropped.
func (w *storeWriter) close() {
	if w == nil {
		return
	}
	w.c.confirmations.remove(w.item)
	close(w.stop)
	w.watcher.Wait()
	w.mu.Lock()
	if w.wakeStop != nil {
		w.wakeStop()
	}
	w.mu.Unlock()
	if w.connected != nil {
		w.c.nc.RemoveStatusListener(w.connected)
	}
}
