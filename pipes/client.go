package pipes

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

// Client moves items through the pipes of one NATS server or cluster.
type Client struct {
	nc     *nats.Conn
	notice func(string)
	// chunks are senders' read buffers, shared by the items a Client
	// sends one after another (SendLines), so that each does not allocate
	// its own.
	chunks *sync.Pool
}

// Option configures a Client.
type Option func(*Client)

// WithNotice sets where a Client reports what a user should know but that is
// not an error, such as a receiver joining an item mid-way.
func WithNotice(f func(msg string)) Option {
	return func(c *Client) { c.notice = f }
}

// New returns a Client that uses nc, which must stay open while it is used.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{nc: nc, notice: func(string) {}, chunks: &sync.Pool{
		New: func() any { return &chunk{buf: make([]byte, frameHeaderLen+chunkSize)} },
	}}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *Client) noticef(format string, args ...any) {
	c.notice(fmt.Sprintf(format, args...))
}

func checkName(name string) (subjects, error) {
	if err := ValidateName(name); err != nil {
		return subjects{}, err
	}
	return newSubjects(name), nil
}

// request sends a request and waits for the answer, apiTimeout at most.
func (c *Client) request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	return c.requestMsg(ctx, &nats.Msg{Subject: subject, Data: data})
}

func (c *Client) requestMsg(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return c.nc.RequestMsgWithContext(ctx, m)
}

// watch returns a context that ends when ctx does or when the connection to
// the satellite is lost, and a function that translates an error caused by
// the loss into ErrDisconnected. stop releases the watch.
func (c *Client) watch(ctx context.Context) (context.Context, func(error) error, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	ch := c.nc.StatusChanged(nats.DISCONNECTED, nats.CLOSED)
	go func() {
		select {
		case <-ch:
			cancel(ErrDisconnected)
		case <-ctx.Done():
		}
	}()
	if !c.nc.IsConnected() {
		cancel(ErrDisconnected)
	}
	explain := func(err error) error {
		if err != nil && errors.Is(context.Cause(ctx), ErrDisconnected) && !errors.Is(err, ErrDisconnected) {
			var ie *ItemError
			if errors.As(err, &ie) {
				return err // says which item broke, and how far it got
			}
			if errors.Is(err, context.Canceled) {
				return ErrDisconnected
			}
			return fmt.Errorf("%w: %v", ErrDisconnected, err)
		}
		return err
	}
	return ctx, explain, func() {
		c.nc.RemoveStatusListener(ch)
		cancel(nil)
	}
}
