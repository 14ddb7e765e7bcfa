package pipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The store: one work-queue stream per pipe holds its kept items.

// apiTimeout bounds one JetStream API call.
const apiTimeout = 10 * time.Second

// storeWindow is how many kept chunks a sender has in flight before it waits
// for the satellite to confirm them (16 MiB).
const storeWindow = 64

const (
	errCodeStreamNotFound = 10059
	errCodeNoMessage      = 10037
	errCodeWQNotUnique    = 10100
	// The store is at its cap (the server's max_file_store): JetStream
	// answers "insufficient resources" (10023), or for a stream or account
	// limit "maximum bytes exceeded" (10028) / "resource limits exceeded"
	// (10002) / "insufficient storage resources" (10047).
	errCodeInsufficient     = 10023
	errCodeJSUnavailable    = 10008
	errCodeMaxBytes         = 10028
	errCodeAccountResources = 10002
	errCodeStorageResources = 10047
)

// A cluster of satellites that lost a member (SIGKILL, no hand-over) elects
// new leaders in seconds: JetStream calls that time out or find no leader
// meanwhile are tried again every failoverRetry for failoverWait.
const (
	failoverWait  = 30 * time.Second
	failoverRetry = 250 * time.Millisecond
	// settleTime: how long a cluster's answer that an item has nothing
	// more stored must hold before the item counts as cut.
	settleTime = 2 * time.Second
)

// transient tells whether err, from a JetStream call made with ctx, may go
// away once a cluster has elected its leaders.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false // the caller's own deadline or cancel
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	case errors.As(err, &apiErr):
		return apiErr.ErrorCode == errCodeJSUnavailable
	}
	var own *apiError
	return errors.As(err, &own) && own.ErrCode == errCodeJSUnavailable
}

// ackTimeout: a kept frame the satellite has not confirmed this long after
// the last confirmation fails the item (ErrNotStored).
const ackTimeout = apiTimeout

func streamConfig(s subjects) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.stream,
		Description: "skypipe: kept items of one pipe",
		Subjects:    []string{s.headAll(), s.keptAll()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		AllowDirect: true,
		Metadata:    map[string]string{metaName: s.name},
	}
}

// clusterReplicas is how many copies of a pipe's kept items a cluster of
// satellites holds: a majority survives the loss of any one.
const clusterReplicas = 3

// clustered tells whether the satellite is one of a cluster.
func (c *Client) clustered() bool { return c.nc.ConnectedClusterName() != "" }

func (c *Client) ensureStream(ctx context.Context, s subjects) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	cfg := streamConfig(s)
	if c.clustered() {
		cfg.Replicas = clusterReplicas
	}
	for {
		_, err = js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		switch {
		case err == nil || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			return nil
		case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeInsufficient && cfg.Replicas > 1:
			c.noticef("the cluster has fewer than %d satellites: pipe %q keeps its items on one", clusterReplicas, s.name)
			cfg.Replicas = 1
		case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeJSUnavailable:
			// A cluster electing its leader: try again shortly.
			select {
			case <-ctx.Done():
				return fmt.Errorf("creating the store of pipe %q: %w", s.name, err)
			case <-time.After(failoverRetry):
			}
		default:
			return fmt.Errorf("creating the store of pipe %q: %w", s.name, err)
		}
	}
}

// apiError is the error part of a JetStream API response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return e.Description }

// headRef names a kept item: the subject and stream sequence of its head.
type headRef struct {
	item string
	seq  uint64
}

// storedFrom tells whether any frame of item is stored at or after stream
// sequence seq. The stream's leader answers (not a replica, which may lag
// behind in a cluster), so a frame stored and confirmed is never missed.
func (c *Client) storedFrom(ctx context.Context, s subjects, item string, seq uint64) (bool, error) {
	req, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Next string `json:"next_by_subj"`
	}{seq, s.claim(item)})
	var found bool
	err := retry(ctx, func() error {
		msg, err := c.request(ctx, "$JS.API.STREAM.MSG.GET."+s.stream, req)
		if err != nil {
			return err
		}
		var resp struct {
			Error   *apiError       `json:"error"`
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return err
		}
		switch {
		case resp.Error == nil:
			found = len(resp.Message) > 0
		case resp.Error.ErrCode == errCodeNoMessage || resp.Error.ErrCode == errCodeStreamNotFound:
			found = false
		default:
			return resp.Error
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("looking at item %s in the pipe: %w", item, err)
	}
	return found, nil
}

// purgeItem deletes every stored message of an item.
func (c *Client) purgeItem(ctx context.Context, s subjects, item string) error {
	req, _ := json.Marshal(struct {
		Filter string `json:"filter"`
	}{s.claim(item)})
	err := retry(ctx, func() error {
		msg, err := c.request(ctx, "$JS.API.STREAM.PURGE."+s.stream, req)
		if err != nil {
			return err
		}
		var resp struct {
			Error *apiError `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			return err
		}
		if resp.Error != nil && resp.Error.ErrCode != errCodeStreamNotFound {
			return resp.Error
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing item %s from the pipe: %w", item, err)
	}
	return nil
}

// retry makes a JetStream call until it succeeds, fails for good, or
// failoverWait has passed: a cluster that lost a member answers again once
// it has elected new leaders, which takes seconds.
func retry(ctx context.Context, call func() error) error {
	start := time.Now()
	for {
		err := call()
		if err == nil || !transient(ctx, err) || time.Since(start) > failoverWait {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(failoverRetry):
		}
	}
}

// storeWriter publishes one item's kept frames and tracks the satellite's
// acknowledgements, at most storeWindow in flight.
type storeWriter struct {
	c       *Client
	s       subjects
	item    string
	inbox   string
	sub     *nats.Subscription
	started bool // the head is stored

	mu       sync.Mutex
	cond     *sync.Cond
	pending  int
	progress time.Time // the last confirmation, or the first frame after none pending
	err      error
	msg      nats.Msg
	watchdog *time.Ticker
	stop     chan struct{}
	subject  string // where frames go
	reply    string // where their confirmations come
}

func (c *Client) newStoreWriter(s subjects, item string) (*storeWriter, error) {
	w := &storeWriter{c: c, s: s, item: item, inbox: c.nc.NewRespInbox()}
	w.cond = sync.NewCond(&w.mu)
	sub, err := c.nc.Subscribe(w.inbox+".*", w.onAck)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	w.sub = sub
	w.watchdog = time.NewTicker(ackTimeout / 4)
	w.stop = make(chan struct{})
	go w.watch()
	return w, nil
}

// watch fails the writer when confirmations stop coming: a frame published
// to a satellite that lost it (a crash, a cluster leader change) is never
// confirmed, and nobody would wake the sender otherwise.
func (w *storeWriter) watch() {
	for {
		select {
		case <-w.stop:
			return
		case <-w.watchdog.C:
		}
		w.mu.Lock()
		if w.pending > 0 && w.err == nil && time.Since(w.progress) > ackTimeout {
			w.err = fmt.Errorf("%w (pipe %q, %d frames unconfirmed after %v)", ErrNotStored, w.s.name, w.pending, ackTimeout)
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

func (w *storeWriter) onAck(m *nats.Msg) {
	var err error
	if st := m.Header.Get("Status"); st == "503" {
		err = fmt.Errorf("%w: no store answered for pipe %q (removed while sending, or its cluster lost a member)", ErrNotStored, w.s.name)
	} else {
		var resp struct {
			Error *apiError `json:"error"`
		}
		if jerr := json.Unmarshal(m.Data, &resp); jerr != nil {
			err = fmt.Errorf("bad answer from the satellite: %w", jerr)
		} else if resp.Error != nil {
			err = storeError(w.s, resp.Error)
		}
	}
	w.mu.Lock()
	w.pending--
	w.progress = time.Now()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

func storeError(s subjects, e *apiError) error {
	switch e.ErrCode {
	case errCodeInsufficient, errCodeMaxBytes, errCodeAccountResources, errCodeStorageResources:
		return fmt.Errorf("%w: the satellite's store is at its cap; pipe %q kept nothing of this item (%s)", ErrPipeFull, s.name, e.Description)
	}
	return fmt.Errorf("storing in pipe %q: %w", s.name, e)
}

// write stores one sealed frame. The first frame of an item goes to the head
// subject and is confirmed before write returns; it creates the store if the
// pipe has none. buf may be reused when write returns.
func (w *storeWriter) write(ctx context.Context, buf []byte) error {
	if !w.started {
		m := nats.Msg{Subject: w.s.head(w.item), Data: buf}
		start := time.Now()
		for attempt := 0; ; attempt++ {
			resp, err := w.c.requestMsg(ctx, &m)
			if errors.Is(err, nats.ErrNoResponders) && attempt == 0 {
				if err := w.c.ensureStream(ctx, w.s); err != nil {
					return err
				}
				continue
			}
			if transient(ctx, err) && time.Since(start) < failoverWait {
				// A new stream, or one whose cluster elects a leader,
				// may not answer at once.
				time.Sleep(failoverRetry)
				continue
			}
			if err != nil {
				return fmt.Errorf("storing in pipe %q: %w", w.s.name, err)
			}
			var ack struct {
				Error *apiError `json:"error"`
			}
			if err := json.Unmarshal(resp.Data, &ack); err != nil {
				return fmt.Errorf("bad answer from the satellite: %w", err)
			}
			if ack.Error != nil {
				return storeError(w.s, ack.Error)
			}
			w.started = true
			return nil
		}
	}
	w.mu.Lock()
	for w.pending >= storeWindow && w.err == nil {
		w.cond.Wait()
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	if w.pending == 0 {
		w.progress = time.Now()
	}
	w.pending++
	w.mu.Unlock()
	// One reply subject for every frame: the satellite confirms a stream's
	// publishes in order, and onAck only counts them.
	if w.reply == "" {
		w.reply, w.subject = w.inbox+".ack", w.s.kept(w.item)
	}
	w.msg = nats.Msg{Subject: w.subject, Reply: w.reply, Data: buf}
	if err := w.c.nc.PublishMsg(&w.msg); err != nil {
		return fmt.Errorf("storing in pipe %q: %w", w.s.name, err)
	}
	return nil
}

// wait returns when every frame written is confirmed, or on the first error.
func (w *storeWriter) wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		if w.err == nil {
			w.err = ctx.Err()
		}
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.pending > 0 && w.err == nil {
		w.cond.Wait()
	}
	return w.err
}

func (w *storeWriter) close() {
	if w == nil {
		return
	}
	if w.sub != nil {
		_ = w.sub.Unsubscribe()
	}
	if w.stop != nil {
		w.watchdog.Stop()
		close(w.stop)
		w.stop = nil
	}
}
