// Package jsapi is skypipe's one way to the JetStream API: the nats.go
// jetstream handle of a connection, the API prefix of its domain, the
// error codes skypipe tells apart, one retry rule for a cluster electing
// leaders, and the few requests nats.go's jetstream package does not make
// the way skypipe needs them (each says why).
package jsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Codes of JetStream API errors (jetstream.APIError.ErrorCode) that skypipe
// tells apart.
const (
	CodeStreamNotFound   = 10059
	CodeConsumerNotFound = 10014
	CodeNoMessage        = 10037
	// CodeWQNotUnique: a work-queue stream refuses a second consumer whose
	// filter overlaps another's: the claim lock.
	CodeWQNotUnique = 10100
	// CodeConsumerExists: a consumer of that name is there already, made
	// with another config. A create sent again after a timeout gets it
	// when its first copy landed: the server stamps its own metadata on
	// a consumer, so the same config does not count as the same.
	CodeConsumerExists = 10148
	// CodeJSUnavailable: JetStream answers but has no leader (a cluster
	// electing one).
	CodeJSUnavailable = 10008
	// The store is at its cap: "insufficient resources" (the server's
	// max_file_store), or a stream or account limit.
	CodeInsufficient     = 10023
	CodeMaxBytes         = 10028
	CodeAccountResources = 10002
	CodeStorageResources = 10047
	// CodeMaxStreams: the account may hold no more streams.
	CodeMaxStreams = 10027
	// CodeNotClustered: replicas asked of a JetStream that is not
	// clustered (a server may have a cluster name, as leaf nodes do,
	// without a clustered JetStream).
	CodeNotClustered = 10074
	// CodeMsgIDInProcess: a message published again with a Nats-Msg-Id
	// whose first copy a cluster's stream leader has not finished storing
	// (proposed, not yet committed): publish it again a moment later, and
	// the stream stores it or drops it as a duplicate.
	CodeMsgIDInProcess = 10158
)

// Timing bounds the API's waits.
type Timing struct {
	// Call bounds one request.
	Call time.Duration
	// FailoverWait is how long a call is tried again while a cluster that
	// lost a member elects new leaders, every FailoverRetry.
	FailoverWait  time.Duration
	FailoverRetry time.Duration
}

// API is one connection's way to JetStream.
type API struct {
	NC *nats.Conn
	JS jetstream.JetStream
	// Prefix is the subject prefix of API requests: "$JS.API." or, for a
	// JetStream domain, "$JS.<domain>.API.".
	Prefix string
	T      Timing
}

// New returns the API of nc, in JetStream domain domain ("" for none).
func New(nc *nats.Conn, domain string, t Timing) (*API, error) {
	var (
		js     jetstream.JetStream
		err    error
		prefix = jetstream.DefaultAPIPrefix
	)
	if domain != "" {
		js, err = jetstream.NewWithDomain(nc, domain)
		prefix = "$JS." + domain + ".API."
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		return nil, err
	}
	return &API{NC: nc, JS: js, Prefix: prefix, T: t}, nil
}

// Code returns the JetStream error code err carries, or 0.
func Code(err error) int {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return int(apiErr.ErrorCode)
	}
	return 0
}

// Full tells whether err says the store is at its cap.
func Full(err error) bool {
	switch Code(err) {
	case CodeInsufficient, CodeMaxBytes, CodeAccountResources, CodeStorageResources:
		return true
	}
	return false
}

// Transient tells whether err, from a JetStream call made under ctx, may go
// away once a cluster has elected its leaders.
func Transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false // the caller's own deadline or cancel
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	}
	return Code(err) == CodeJSUnavailable
}

// Retry makes call, with a context bounded by T.Call, until it succeeds,
// fails for good, or T.FailoverWait has passed: a cluster that lost a
// member answers again once it has elected new leaders, which takes
// seconds. ctx bounds it all.
func (a *API) Retry(ctx context.Context, call func(ctx context.Context) error) error {
	return a.RetryIf(ctx, Transient, call)
}

// RetryIf is Retry with its own rule of what is worth another try.
func (a *API) RetryIf(ctx context.Context, again func(context.Context, error) bool, call func(ctx context.Context) error) error {
	start := time.Now()
	for {
		cctx, cancel := context.WithTimeout(ctx, a.T.Call)
		err := call(cctx)
		cancel()
		if err == nil || !again(ctx, err) || time.Since(start) > a.T.FailoverWait {
			return err
		}
		t := time.NewTimer(a.T.FailoverRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// request sends a JetStream API request and decodes the error part of its
// answer, if any, into a *jetstream.APIError.
func (a *API) request(ctx context.Context, subject string, req any, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg, err := a.NC.RequestWithContext(ctx, a.Prefix+subject, data)
	if err != nil {
		return err
	}
	return decode(msg.Data, resp)
}

// DropConsumer asks for a consumer's deletion and does not wait for the
// answer: where nothing depends on it (a claim dropped once its item is
// removed), that is one round trip less before a receiver exits. The
// request leaves with the connection's next flush, or its Close. If it is
// lost (the connection dies first), the consumer stays, holding nothing,
// until 'skypipe rm' of its pipe.
func (a *API) DropConsumer(stream, name string) error {
	return a.NC.Publish(a.Prefix+"CONSUMER.DELETE."+stream+"."+name, nil)
}

// decode reads a JetStream API answer into resp, returning its error.
func decode(data []byte, resp any) error {
	if resp == nil && len(data) > 1 && data[0] == '{' && data[len(data)-1] == '}' && !bytes.Contains(data, []byte(`"error"`)) {
		// A confirmation with no error in it, as nearly every one is:
		// decoding it cost a sender of small kept items 3-5% of its CPU.
		return nil
	}
	var e struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("bad answer from JetStream: %w", err)
	}
	if e.Error != nil {
		return e.Error
	}
	if resp != nil {
		if err := json.Unmarshal(data, resp); err != nil {
			return fmt.Errorf("bad answer from JetStream: %w", err)
		}
	}
	return nil
}

// DecodeAck reads the satellite's answer to a publish into a stream: nil,
// or the *jetstream.APIError it carries.
func DecodeAck(data []byte) error { return decode(data, nil) }

// Purge removes every message of stream on subjects matching filter and
// returns how many it removed. jetstream's Stream.Purge would first cost a
// STREAM.INFO round trip for a handle; a follower purges once per item on
// a cluster.
func (a *API) Purge(ctx context.Context, stream, filter string) (uint64, error) {
	var purged uint64
	err := a.Retry(ctx, func(ctx context.Context) error {
		var resp struct {
			Purged uint64 `json:"purged"`
		}
		err := a.request(ctx, "STREAM.PURGE."+stream, struct {
			Filter string `json:"filter"`
		}{filter}, &resp)
		if Code(err) == CodeStreamNotFound {
			return nil
		}
		purged = resp.Purged
		return err
	})
	return purged, err
}

// StoredFrom tells whether stream holds any message on subjects matching
// filter at or after sequence seq. The stream's leader answers (STREAM.MSG.GET,
// not a direct get that a lagging replica may answer), so a message stored
// and confirmed is never missed; jetstream's GetMsg takes the direct path
// whenever the stream allows it.
func (a *API) StoredFrom(ctx context.Context, stream, filter string, seq uint64) (bool, error) {
	var found bool
	err := a.Retry(ctx, func(ctx context.Context) error {
		var resp struct {
			Message json.RawMessage `json:"message"`
		}
		err := a.request(ctx, "STREAM.MSG.GET."+stream, struct {
			Seq  uint64 `json:"seq"`
			Next string `json:"next_by_subj"`
		}{seq, filter}, &resp)
		switch Code(err) {
		case 0:
			found = err == nil && len(resp.Message) > 0
		case CodeNoMessage, CodeStreamNotFound:
			found, err = false, nil
		}
		return err
	})
	return found, err
}

// LastOn returns the data of the last message stream holds on subject, as
// the stream's leader says (STREAM.MSG.GET): a record a publish was just
// refused for is never missed, as a lagging replica's direct get could
// miss it. ok is false when there is none.
func (a *API) LastOn(ctx context.Context, stream, subject string) (data []byte, ok bool, err error) {
	err = a.Retry(ctx, func(ctx context.Context) error {
		var resp struct {
			Message *struct {
				Data []byte `json:"data"`
			} `json:"message"`
		}
		err := a.request(ctx, "STREAM.MSG.GET."+stream, struct {
			Last string `json:"last_by_subj"`
		}{subject}, &resp)
		switch Code(err) {
		case 0:
			if err == nil && resp.Message != nil {
				data, ok = resp.Message.Data, true
			}
		case CodeNoMessage, CodeStreamNotFound:
			err = nil
		}
		return err
	})
	return data, ok, err
}

// Exists tells whether err refuses a publish that expected the subject
// to hold nothing (a record someone else stored first): error 10071, or
// 10164 from a replicated stream.
func Exists(err error) bool {
	c := Code(err)
	return c == int(jetstream.JSErrCodeStreamWrongLastSequence) || c == int(jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
