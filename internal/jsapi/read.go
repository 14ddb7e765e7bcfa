package jsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message statuses JetStream sends on a reply subject (header "Status").
const (
	StatusHeartbeat  = "100" // an idle heartbeat of a pull
	StatusEndOfBatch = "204" // a batched direct get is done
	StatusNoMessages = "404" // nothing to get or pull (now)
	StatusExpired    = "408" // a pull request ran out (Nats-Pending-Messages says what it left)
	StatusConflict   = "409" // a pull was cut short: consumer deleted, leader changed, limits
	StatusNoResponse = "503" // nobody answers that subject
)

// Status returns a message's status, "" for a message that carries data.
func Status(m *nats.Msg) string {
	if len(m.Data) > 0 || m.Header == nil {
		return ""
	}
	return m.Header.Get("Status")
}

// Head is a stored message found by a Lookup: its subject, sequence and
// payload.
type Head struct {
	Subject string
	Seq     uint64
	Data    []byte
}

// Lookup finds stored messages by batched direct gets, which neither create
// a consumer nor read the messages' owners: the first messages on a subject
// filter from a sequence on (Next), or the last message of each of many
// subjects (Lasts). nats.go's jetstream has no batched get; one request a
// message would cost a receiver one round trip per kept item it looks at.
// A Lookup keeps one inbox for all its requests.
type Lookup struct {
	api   *API
	in    *inbox // its answers, on prefix.n
	reply string // the inbox's prefix
	n     int
	// least is the least round trip of its gets, in nanoseconds: from the
	// request to the first message of its answer; 0 before any.
	least atomic.Int64
}

// RoundTrip is the least round trip of the Lookup's gets to the satellite,
// from a request to the first message of its answer: 0 before any. A
// direct get reads only the small messages it returns, so it times the
// path more closely than a pull of large frames from a cold store does.
// Safe from any goroutine.
func (l *Lookup) RoundTrip() time.Duration { return time.Duration(l.least.Load()) }

func (l *Lookup) timed(rtt time.Duration) {
	for {
		old := l.least.Load()
		if rtt <= 0 || old != 0 && old <= int64(rtt) || l.least.CompareAndSwap(old, int64(rtt)) {
			return
		}
	}
}

// NewLookup returns a Lookup; Close releases its inbox.
func (a *API) NewLookup() *Lookup { return &Lookup{api: a} }

// Next returns up to batch messages of stream on subjects matching filter
// at or after sequence from, in order; more says whether the stream holds
// matching messages beyond them. A stream that does not exist holds none.
func (l *Lookup) Next(ctx context.Context, stream, filter string, from uint64, batch int) (heads []Head, more bool, err error) {
	heads, pending, err := l.get(ctx, stream, struct {
		Seq   uint64 `json:"seq"`
		Next  string `json:"next_by_subj"`
		Batch int    `json:"batch"`
	}{from, filter, batch})
	if err != nil {
		return nil, false, err
	}
	return heads, pending > 0 && len(heads) > 0, nil
}

// First returns the first messages of stream on subjects matching filter
// at or after sequence from, in order: up to batch of them, and no more
// than maxBytes in all (the satellite stops before the message that would
// pass it, but always sends one).
func (l *Lookup) First(ctx context.Context, stream, filter string, from uint64, batch, maxBytes int) ([]Head, error) {
	msgs, _, err := l.get(ctx, stream, struct {
		Seq      uint64 `json:"seq"`
		Next     string `json:"next_by_subj"`
		Batch    int    `json:"batch"`
		MaxBytes int    `json:"max_bytes"`
	}{from, filter, batch, maxBytes})
	return msgs, err
}

// MaxLasts is how many subjects one multi-last direct get names at most:
// the satellite refuses to answer with more than 1,024 messages.
const MaxLasts = 1024

// Lasts returns the last message stream holds on each of subjects, by
// subject; a subject that holds none is left out, as is every subject of a
// stream that does not exist. It asks once per MaxLasts subjects, and again
// for those the satellite left out of an answer to keep it under its byte
// limit.
func (l *Lookup) Lasts(ctx context.Context, stream string, subjects []string) (map[string]Head, error) {
	out := make(map[string]Head, len(subjects))
	for len(subjects) > 0 {
		ask := subjects[:min(len(subjects), MaxLasts)]
		msgs, pending, err := l.get(ctx, stream, struct {
			Multi []string `json:"multi_last"`
			Batch int      `json:"batch"`
		}{ask, len(ask)})
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			out[m.Subject] = m
		}
		if pending > 0 && len(msgs) > 0 {
			// Cut short by the byte limit: ask again for what is missing.
			rest := make([]string, 0, len(ask)-len(msgs))
			for _, s := range ask {
				if _, ok := out[s]; !ok {
					rest = append(rest, s)
				}
			}
			subjects = append(rest, subjects[len(ask):]...)
			continue
		}
		subjects = subjects[len(ask):]
	}
	return out, nil
}

// get sends one batched direct get and returns the messages of its answer
// and how many more the stream holds that match it (the end of batch's
// Nats-Num-Pending).
func (l *Lookup) get(ctx context.Context, stream string, r any) (msgs []Head, pending uint64, err error) {
	if l.in == nil {
		l.reply = l.api.NC.NewRespInbox()
		if l.in, err = subscribeInbox(l.api.NC, l.reply+".*"); err != nil {
			return nil, 0, err
		}
	}
	l.n++
	reply := l.reply + "." + strconv.Itoa(l.n)
	req, err := json.Marshal(r)
	if err != nil {
		return nil, 0, err
	}
	if err := l.api.NC.PublishRequest(l.api.Prefix+"DIRECT.GET."+stream, reply, req); err != nil {
		return nil, 0, err
	}
	sent := time.Now()
	// The answer gets the whole of T.Call (or of ctx's time, if less). When
	// none has come by half of it, the stream's info is asked for beside
	// the wait: across a leaf node to a JetStream domain, a direct get of
	// a stream that does not exist gets no answer at all, not "no
	// responders", and the info says it does not exist. A stream that is
	// there and slow to answer (a cluster member busy replicating, a loaded
	// machine) is waited for: asking again would only queue behind this.
	wait := l.api.T.Call
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = time.Until(dl)
	}
	whole, cancel := context.WithTimeout(ctx, wait)
	read, stopRead := context.WithCancel(whole)
	var gone atomic.Bool
	var probing sync.WaitGroup
	probing.Add(1)
	probe := time.AfterFunc(wait/2, func() {
		defer probing.Done()
		if l.noStream(whole, stream) {
			gone.Store(true)
			stopRead()
		}
	})
	defer func() {
		cancel()
		if probe.Stop() {
			probing.Done()
		}
		probing.Wait()
		stopRead()
	}()
	for {
		m, err := l.in.next(read)
		if err != nil && gone.Load() {
			return nil, 0, nil // no stream: nothing stored
		}
		if err != nil {
			return nil, 0, err
		}
		if m.Subject != reply {
			continue // the late answer to an earlier request
		}
		if len(msgs) == 0 {
			l.timed(time.Since(sent))
		}
		switch st := m.Header.Get("Status"); st {
		case "":
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("bad sequence %q from a direct get", m.Header.Get("Nats-Sequence"))
			}
			msgs = append(msgs, Head{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Data: m.Data})
		case StatusEndOfBatch:
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return msgs, np, nil
		case StatusNoMessages, StatusNoResponse: // nothing stored, or no stream
			return msgs, 0, nil
		default:
			return nil, 0, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
	}
}

// noStream tells whether the satellite says stream does not exist.
func (l *Lookup) noStream(ctx context.Context, stream string) bool {
	_, err := l.api.JS.Stream(ctx, stream)
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

// Close releases the Lookup's inbox.
func (l *Lookup) Close() {
	if l.in != nil {
		l.in.close()
		l.in = nil
	}
}

// PullRequest asks a pull consumer for messages. Zero fields are left out.
type PullRequest struct {
	Batch     int           `json:"batch,omitempty"`
	MaxBytes  int           `json:"max_bytes,omitempty"`
	Expires   time.Duration `json:"expires,omitempty"`
	NoWait    bool          `json:"no_wait,omitempty"`
	Heartbeat time.Duration `json:"idle_heartbeat,omitempty"`
}

// Pull reads a pull consumer through one inbox that lives as long as the
// Pull: messages the satellite sent for a pull that ran out still arrive
// (nats.go's Fetch unsubscribes when its wait runs out, and a message then
// in flight is lost to the reader, which with the long AckWait a claim uses
// is never delivered again), and a reader can ask for exactly what is
// stored (a pull for more than there is makes the satellite look through
// every later message of the stream).
type Pull struct {
	api     *API
	in      *inbox
	subject string // the inbox's
	next    string
	req     []byte
}

// NewPull subscribes the inbox of a Pull on consumer of stream.
func (a *API) NewPull(stream, consumer string) (*Pull, error) {
	p := &Pull{api: a, subject: a.NC.NewInbox(), next: a.Prefix + "CONSUMER.MSG.NEXT." + stream + "." + consumer}
	var err error
	if p.in, err = subscribeInbox(a.NC, p.subject); err != nil {
		return nil, err
	}
	return p, nil
}

// Ask sends a pull request; what it pulls arrives through Next.
func (p *Pull) Ask(r PullRequest) error {
	var err error
	if p.req, err = json.Marshal(r); err != nil {
		return err
	}
	return p.api.NC.PublishRequest(p.next, p.subject, p.req)
}

// Next returns the next message or status (see Status) that came through
// the Pull's inbox, waiting for one until ctx ends.
func (p *Pull) Next(ctx context.Context) (*nats.Msg, error) { return p.in.next(ctx) }

// Close releases the inbox; messages still queued are dropped.
func (p *Pull) Close() {
	p.in.close()
}
