package pipes

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// chunkSize is how many bytes of an item one frame carries at most.
const chunkSize = wire.MaxChunk

// Client moves items through the pipes of one NATS server or cluster.
type Client struct {
	nc     *nats.Conn
	js     *jsapi.API
	cfg    Config
	domain string
	notice func(string)
	// chunks are senders' read buffers, shared by the items a Client
	// sends one after another (SendLines), so that each does not allocate
	// its own.
	chunks *sync.Pool
	// confirmations routes store confirmations to the writers of the
	// items being kept.
	confirmations confirmations
	// storeSeen: the store (wire.Stream) was found, or made, on this
	// connection's satellite: a kept item's head then goes out with its
	// frames, not by a request of its own.
	storeSeen atomic.Bool
	// storeAsked: a sender of this Client asked whether the store exists;
	// later ones do not ask again (a SendLines of 10,000 live lines to a
	// satellite that keeps nothing would ask 10,000 times), and store
	// their heads by request until one is stored.
	storeAsked atomic.Bool
}

// Option configures a Client.
type Option func(*Client)

// WithNotice sets where a Client reports what a user should know but that is
// not an error, such as a receiver joining an item mid-way.
func WithNotice(f func(msg string)) Option {
	return func(c *Client) { c.notice = f }
}

// WithConfig sets the Client's timings and sizes (DefaultConfig otherwise).
func WithConfig(cfg Config) Option {
	return func(c *Client) { c.cfg = cfg }
}

// WithJetStreamDomain makes the Client use the JetStream of domain d, as a
// leaf node of a hub with JetStream in that domain needs.
func WithJetStreamDomain(d string) Option {
	return func(c *Client) { c.domain = d }
}

// New returns a Client that uses nc, which must stay open while it is used.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{nc: nc, cfg: DefaultConfig(), notice: func(string) {}, chunks: &sync.Pool{
		New: func() any { return &chunk{buf: make([]byte, wire.HeaderLen+chunkSize)} },
	}}
	for _, o := range opts {
		o(c)
	}
	// jsapi.New fails only for a domain nats.go refuses (one with a '.'):
	// every JetStream call then reports it.
	c.js, _ = jsapi.New(nc, c.domain, jsapi.Timing{
		Call: c.cfg.APITimeout, FailoverWait: c.cfg.FailoverWait, FailoverRetry: c.cfg.FailoverRetry,
	})
	return c
}

// jetstream returns the Client's JetStream API, or why it has none.
func (c *Client) jetstream() (*jsapi.API, error) {
	if c.js == nil {
		return nil, fmt.Errorf("JetStream domain %q is not valid", c.domain)
	}
	return c.js, nil
}

// lookForStore tells, on the returned channel, whether the store exists:
// at once if it was seen before, else by asking the satellite (STREAM.INFO)
// on a goroutine that wg waits for. A sender asks beside its roll call, so
// that the answer comes back in the same round trip; a kept item's head
// then goes out with its first frames (storeWriter.headAsync) instead of
// costing a round trip of its own. A Client asks once: a store not found
// is made, and then seen, by the first head stored by request.
func (c *Client) lookForStore(ctx context.Context, wg *sync.WaitGroup) <-chan bool {
	found := make(chan bool, 1)
	if c.storeSeen.Load() || !c.storeAsked.CompareAndSwap(false, true) {
		found <- c.storeSeen.Load()
		return found
	}
	wg.Go(func() {
		ok := false
		if js, err := c.jetstream(); err == nil {
			cctx, cancel := context.WithTimeout(ctx, c.cfg.APITimeout)
			_, err = js.JS.Stream(cctx, wire.Stream)
			cancel()
			ok = err == nil
		}
		if ok {
			c.storeSeen.Store(true)
		}
		found <- ok
	})
	return found
}

func (c *Client) noticef(format string, args ...any) {
	c.notice(fmt.Sprintf(format, args...))
}

func checkName(name string) (wire.Subjects, error) {
	if err := ValidateName(name); err != nil {
		return wire.Subjects{}, err
	}
	return wire.NewSubjects(name), nil
}

// clustered tells whether the satellite is one of a cluster.
func (c *Client) clustered() bool { return c.nc.ConnectedClusterName() != "" }

// invariant reports a broken invariant of the package's own logic as an
// error that fails the item (and, under test, as a panic): an item is
// never carried on past one.
func (c *Client) invariant(format string, args ...any) error {
	err := fmt.Errorf("%w: "+format, append([]any{errInvariant}, args...)...)
	if c.cfg.strict {
		panic(err)
	}
	return err
}

// errInvariant: the package's own logic went wrong; the item is failed
// rather than carried on with a hole.
var errInvariant = errors.New("skypipe internal error")

// watch returns a context that ends when ctx does or when the connection to
// the satellite is lost, and a function that translates an error caused by
// the loss into ErrDisconnected. stop releases the watch and waits for its
// goroutine.
//
// A connection that reconnects (nats.go's AllowReconnect; 'skypipe
// --reconnect') is lost only once it is closed: its owner bounds how long
// it tries. Meanwhile watch says so (the notice) and, each time the
// connection is back, calls reconnected: the caller then asks again for
// what was in flight.
func (c *Client) watch(ctx context.Context, reconnected func()) (context.Context, func(error) error, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	reconnects := c.reconnects()
	ch := c.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED, nats.CLOSED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		down := false // said "reconnecting" since the connection was last up
		for {
			select {
			case st, open := <-ch:
				// stop closes ch (nats.go's RemoveStatusListener does): that
				// is the watch ending, not the connection. Taken for a loss,
				// it turned a sender's own error ("pipe full") into "lost the
				// connection" whenever this goroutine woke before stop's
				// cancel.
				switch {
				case !open:
					return
				case st == nats.CONNECTED:
					down = false
					if len(c.nc.Servers()) > 1 {
						// A cluster's members: say which one it is now.
						c.noticef("reconnected to the satellite (%s)", connectedTo(c.nc))
					} else {
						c.noticef("reconnected to the satellite")
					}
					reconnected()
				case st == nats.RECONNECTING:
					// Once for each loss, not for each try.
					if !down {
						c.noticef("lost the connection to the satellite; reconnecting...")
					}
					down = true
				case st == nats.DISCONNECTED && reconnects:
					// On its way to RECONNECTING, or to CLOSED.
				default:
					cancel(ErrDisconnected)
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	if c.nc.IsClosed() || !reconnects && !c.nc.IsConnected() {
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
		cancel(nil)
		c.nc.RemoveStatusListener(ch)
		<-done
	}
}

// lostInFlight tells whether err, from a publish or a flush, only lost
// what was in flight on a connection that is being re-established (what
// is lost then goes again once it is back), rather than failing for good.
func (c *Client) lostInFlight(err error) bool {
	return err != nil && c.reconnects() && !c.nc.IsClosed() &&
		!errors.Is(err, nats.ErrReconnectBufExceeded) && !errors.Is(err, nats.ErrMaxPayload)
}

// reconnects tells whether the Client's connection is re-established when
// it is lost.
func (c *Client) reconnects() bool { return c.nc.Opts.AllowReconnect }

// cleanupContext is the context of work that must still happen once the
// caller's context has ended (giving a claim back, marking an item
// broken): ctx's values without its cancel, bounded by limit.
func cleanupContext(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), limit)
}

// connectedTo is the server nc is connected to, with no credentials
// (nats.go's ConnectedUrlRedacted hides a password, not a token).
func connectedTo(nc *nats.Conn) string {
	u, err := url.Parse(nc.ConnectedUrl())
	if err != nil {
		return "a member whose URL does not parse"
	}
	u.User = nil
	return u.String()
}
