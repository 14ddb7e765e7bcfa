package pipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	errCodeStreamNotFound   = 10059
	errCodeNoMessage        = 10037
	errCodeConsumerNotFound = 10014
	errCodeWQNotUnique      = 10100
)

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

func (c *Client) ensureStream(ctx context.Context, s subjects) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return err
	}
	_, err = js.CreateOrUpdateStream(ctx, streamConfig(s))
	if err != nil {
		return fmt.Errorf("creating the store of pipe %q: %w", s.name, err)
	}
	return nil
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

// nextHead finds the first item head at or after stream sequence from. ok is
// false when there is none (or no store at all).
func (c *Client) nextHead(ctx context.Context, s subjects, from uint64) (headRef, bool, error) {
	req, _ := json.Marshal(struct {
		Seq  uint64 `json:"seq"`
		Next string `json:"next_by_subj"`
	}{from, s.headAll()})
	msg, err := c.request(ctx, "$JS.API.DIRECT.GET."+s.stream, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return headRef{}, false, nil // no store: nothing kept
	}
	if err != nil {
		return headRef{}, false, fmt.Errorf("looking for kept items: %w", err)
	}
	if st := msg.Header.Get("Status"); st != "" {
		if st == "404" {
			return headRef{}, false, nil
		}
		return headRef{}, false, fmt.Errorf("looking for kept items: status %s %s", st, msg.Header.Get("Description"))
	}
	seq, err := strconv.ParseUint(msg.Header.Get("Nats-Sequence"), 10, 64)
	if err != nil {
		return headRef{}, false, fmt.Errorf("looking for kept items: bad sequence %q", msg.Header.Get("Nats-Sequence"))
	}
	return headRef{item: lastToken(msg.Header.Get("Nats-Subject")), seq: seq}, true, nil
}

// headExists tells whether the head of item still stands at seq.
func (c *Client) headExists(ctx context.Context, s subjects, h headRef) (bool, error) {
	got, ok, err := c.nextHead(ctx, s, h.seq)
	if err != nil || !ok {
		return false, err
	}
	return got.seq == h.seq && got.item == h.item, nil
}

// purgeItem deletes every stored message of an item.
func (c *Client) purgeItem(ctx context.Context, s subjects, item string) error {
	req, _ := json.Marshal(struct {
		Filter string `json:"filter"`
	}{s.claim(item)})
	msg, err := c.request(ctx, "$JS.API.STREAM.PURGE."+s.stream, req)
	if err != nil {
		return fmt.Errorf("removing item %s from the pipe: %w", item, err)
	}
	var resp struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("removing item %s from the pipe: %w", item, err)
	}
	if resp.Error != nil && resp.Error.ErrCode != errCodeStreamNotFound {
		return fmt.Errorf("removing item %s from the pipe: %w", item, resp.Error)
	}
	return nil
}

// storeWriter publishes one item's kept frames and tracks the satellite's
// acknowledgements, at most storeWindow in flight.
type storeWriter struct {
	c       *Client
	s       subjects
	item    string
	inbox   string
	sub     *nats.Subscription
	next    uint64 // id of the next publish
	started bool   // the head is stored

	mu      sync.Mutex
	cond    *sync.Cond
	pending int
	err     error
	msg     nats.Msg
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
	return w, nil
}

func (w *storeWriter) onAck(m *nats.Msg) {
	var err error
	if st := m.Header.Get("Status"); st == "503" {
		err = fmt.Errorf("the store of pipe %q is gone (removed while sending?)", w.s.name)
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
	if err != nil && w.err == nil {
		w.err = err
	}
	w.cond.Broadcast()
	w.mu.Unlock()
}

func storeError(s subjects, e *apiError) error {
	return fmt.Errorf("storing in pipe %q: %w", s.name, e)
}

// write stores one sealed frame. The first frame of an item goes to the head
// subject and is confirmed before write returns; it creates the store if the
// pipe has none. buf may be reused when write returns.
func (w *storeWriter) write(ctx context.Context, buf []byte) error {
	if !w.started {
		m := nats.Msg{Subject: w.s.head(w.item), Data: buf}
		for attempt := 0; ; attempt++ {
			resp, err := w.c.requestMsg(ctx, &m)
			if errors.Is(err, nats.ErrNoResponders) && attempt == 0 {
				if err := w.c.ensureStream(ctx, w.s); err != nil {
					return err
				}
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
	w.pending++
	w.mu.Unlock()
	w.next++
	w.msg = nats.Msg{Subject: w.s.kept(w.item), Reply: w.inbox + "." + strconv.FormatUint(w.next, 10), Data: buf}
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
	if w != nil && w.sub != nil {
		_ = w.sub.Unsubscribe()
	}
}
