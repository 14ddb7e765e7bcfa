package pipes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/internal/jsapi"
	"github.com/skypipe/skypipe/internal/wire"
)

// fastConfig is DefaultConfig with every timing cut down, so that tests of
// presence, stalls and failovers take a fraction of a second; and strict,
// so that a broken invariant panics.
func fastConfig() Config {
	c := DefaultConfig()
	c.LineStall = 150 * time.Millisecond
	c.IdleProbe = 300 * time.Millisecond
	c.ProbeTimeout = time.Second
	c.RollCallTimeout = time.Second
	c.FrozenAfter = 5 * time.Second
	c.Reconnect = 5 * time.Second
	c.ResendWait = 2 * time.Second
	c.Tick = 20 * time.Millisecond
	c.Rescan = 200 * time.Millisecond
	c.APITimeout = 10 * time.Second
	c.AckTimeout = 10 * time.Second
	c.FailoverWait = 10 * time.Second
	c.FailoverRetry = 50 * time.Millisecond
	c.SettleTime = 200 * time.Millisecond
	c.KeptPullWait = 400 * time.Millisecond
	c.strict = true
	return c
}

// satellite is a real satellite (an embedded NATS server with JetStream)
// in the test process, on loopback.
type satellite struct {
	t   *testing.T
	srv *embedded.Server
	cfg Config
}

func newSatellite(t *testing.T) *satellite {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &satellite{t: t, srv: srv, cfg: fastConfig()}
}

// conn is a new connection to the satellite, closed when the test ends.
func (s *satellite) conn() *nats.Conn {
	s.t.Helper()
	nc, err := nats.Connect(s.srv.URL(), nats.NoReconnect())
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

// client is a Client on a connection of its own, as a skypipe process has.
func (s *satellite) client(opts ...Option) *Client {
	return New(s.conn(), append([]Option{WithConfig(s.cfg)}, opts...)...)
}

// pipeAPI is a pipe's subjects and its client's JetStream layer, for
// tests that drive a receiver's parts by hand.
func pipeAPI(t *testing.T, c *Client, name string) (wire.Subjects, *jsapi.API) {
	t.Helper()
	s, err := checkName(name)
	if err != nil {
		t.Fatal(err)
	}
	js, err := c.jetstream()
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

// ctx bounds a test's waits.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// payload is n pseudo-random bytes, the same for the same seed.
func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// lockedBuffer is an output a test reads while a receiver writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// receiving runs Receive beside the test; wait returns what it returned.
type receiving struct {
	out  *lockedBuffer
	done chan struct{}
	res  ReceiveResult
	err  error
}

func (s *satellite) receive(ctx context.Context, c *Client, name string, opt ReceiveOptions) *receiving {
	r := &receiving{out: &lockedBuffer{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.res, r.err = c.Receive(ctx, name, r.out, opt)
	}()
	return r
}

func (r *receiving) wait(t *testing.T) (ReceiveResult, error) {
	t.Helper()
	select {
	case <-r.done:
		return r.res, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("the receiver did not return")
		return ReceiveResult{}, nil
	}
}

// sending runs Send beside the test.
type sending struct {
	done chan struct{}
	res  SendResult
	err  error
}

func sendAsync(ctx context.Context, c *Client, name string, r io.Reader) *sending {
	s := &sending{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.res, s.err = c.Send(ctx, name, r)
	}()
	return s
}

func (s *sending) wait(t *testing.T) (SendResult, error) {
	t.Helper()
	select {
	case <-s.done:
		return s.res, s.err
	case <-time.After(30 * time.Second):
		t.Fatal("the sender did not return")
		return SendResult{}, nil
	}
}

// eventually polls cond until it holds, for 20 s at most.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// attached waits until n receivers are attached to the pipe.
func (s *satellite) attached(ctx context.Context, name string, n int) {
	s.t.Helper()
	c := s.client()
	eventually(s.t, fmt.Sprintf("%d receivers on %q", n, name), func() bool {
		got, err := c.Attached(ctx, name)
		return err == nil && got == n
	})
}

// kept waits until the pipe keeps n items.
func (s *satellite) kept(ctx context.Context, name string, n int) {
	s.t.Helper()
	c := s.client()
	eventually(s.t, fmt.Sprintf("%d kept items in %q", n, name), func() bool {
		got, err := keptItems(ctx, c, name)
		return err == nil && got == n
	})
}

func keptItems(ctx context.Context, c *Client, name string) (int, error) {
	list, err := c.List(ctx)
	if err != nil {
		return 0, err
	}
	for _, p := range list {
		if p.Name == name {
			return p.Items, nil
		}
	}
	return 0, nil
}

// itemErr asserts that err is an ItemError wrapping want.
func itemErr(t *testing.T, err error, want error) *ItemError {
	t.Helper()
	var ie *ItemError
	if !errors.As(err, &ie) || !errors.Is(err, want) {
		t.Fatalf("err = %v, want an ItemError wrapping %v", err, want)
	}
	return ie
}

// gate is a reader that hands out its chunks one at a time, each when the
// test releases it, then EOF (or the error fail holds).
type gate struct {
	chunks chan []byte
	fail   error
	cur    []byte
}

func newGate() *gate { return &gate{chunks: make(chan []byte)} }

func (g *gate) Read(p []byte) (int, error) {
	if len(g.cur) == 0 {
		b, ok := <-g.chunks
		if !ok {
			if g.fail != nil {
				return 0, g.fail
			}
			return 0, io.EOF
		}
		g.cur = b
	}
	n := copy(p, g.cur)
	g.cur = g.cur[n:]
	return n, nil
}

// feed hands the gate's reader one more chunk.
func (g *gate) feed(t *testing.T, b string) {
	t.Helper()
	select {
	case g.chunks <- []byte(b):
	case <-time.After(20 * time.Second):
		t.Fatal("the sender did not read")
	}
}

func (g *gate) close() { close(g.chunks) }
