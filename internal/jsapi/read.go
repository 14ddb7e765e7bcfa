package jsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
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

// Head is a stored message found by a Lookup: its subject and sequence.
type Head struct {
	Subject string
	Seq     uint64
}

// Lookup finds, in one request, the first stored messages on a subject
// filter from a sequence on: a batched direct get, which neither creates a
// consumer nor reads the messages' owners. nats.go's jetstream has no
// batched get; one request a message would cost a receiver one round trip
// per kept item it looks at. A Lookup keeps one inbox for all its requests.
type Lookup struct {
	api   *API
	sub   *nats.Subscription
	inbox string
	n     int
}

// NewLookup returns a Lookup; Close releases its inbox.
func (a *API) NewLookup() *Lookup { return &Lookup{api: a} }

// Next returns up to batch messages of stream on subjects matching filter
// at or after sequence from, in order; more says whether the stream holds
// matching messages beyond them. A stream that does not exist holds none.
func (l *Lookup) Next(ctx context.Context, stream, filter string, from uint64, batch int) (heads []Head, more bool, err error) {
	if l.sub == nil {
		l.inbox = l.api.NC.NewRespInbox()
		if l.sub, err = l.api.NC.SubscribeSync(l.inbox + ".*"); err != nil {
			return nil, false, err
		}
		_ = l.sub.SetPendingLimits(-1, -1)
	}
	l.n++
	reply := l.inbox + "." + strconv.Itoa(l.n)
	req, _ := json.Marshal(struct {
		Seq   uint64 `json:"seq"`
		Next  string `json:"next_by_subj"`
		Batch int    `json:"batch"`
	}{from, filter, batch})
	if err := l.api.NC.PublishRequest(l.api.Prefix+"DIRECT.GET."+stream, reply, req); err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.api.T.Call)
	defer cancel()
	for {
		m, err := l.sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, false, nil // no stream: nothing stored
		}
		if err != nil {
			return nil, false, err
		}
		if m.Subject != reply {
			continue // the late answer to an earlier request
		}
		switch st := m.Header.Get("Status"); st {
		case "":
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return nil, false, fmt.Errorf("bad sequence %q from a direct get", m.Header.Get("Nats-Sequence"))
			}
			heads = append(heads, Head{Subject: m.Header.Get("Nats-Subject"), Seq: seq})
		case StatusEndOfBatch:
			np, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return heads, np > 0 && len(heads) > 0, nil
		case StatusNoMessages, StatusNoResponse: // nothing stored, or no stream
			return heads, false, nil
		default:
			return nil, false, fmt.Errorf("direct get: status %s %s", st, m.Header.Get("Description"))
		}
	}
}

// Close releases the Lookup's inbox.
func (l *Lookup) Close() {
	if l.sub != nil {
		_ = l.sub.Unsubscribe()
		l.sub = nil
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
	api   *API
	sub   *nats.Subscription
	inbox string
	next  string
	req   []byte
}

// NewPull subscribes the inbox of a Pull on consumer of stream.
func (a *API) NewPull(stream, consumer string) (*Pull, error) {
	p := &Pull{api: a, inbox: a.NC.NewInbox(), next: a.Prefix + "CONSUMER.MSG.NEXT." + stream + "." + consumer}
	sub, err := a.NC.SubscribeSync(p.inbox)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1) // bounded by what the reader asks for
	p.sub = sub
	return p, nil
}

// Ask sends a pull request; what it pulls arrives through Next.
func (p *Pull) Ask(r PullRequest) error {
	var err error
	if p.req, err = json.Marshal(r); err != nil {
		return err
	}
	return p.api.NC.PublishRequest(p.next, p.inbox, p.req)
}

// Next returns the next message or status (see Status) that came through
// the Pull's inbox.
func (p *Pull) Next(ctx context.Context) (*nats.Msg, error) {
	return p.sub.NextMsgWithContext(ctx)
}

// Close releases the inbox.
func (p *Pull) Close() {
	_ = p.sub.Unsubscribe()
}
