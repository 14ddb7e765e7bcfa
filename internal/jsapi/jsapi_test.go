package jsapi

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/tests/link"
)

var timing = Timing{Call: 5 * time.Second, FailoverWait: 2 * time.Second, FailoverRetry: 10 * time.Millisecond}

// stream starts a satellite with a work-queue stream "S" on subjects
// s.head.* and s.kept.*, holding n items of two messages each.
func stream(t *testing.T, n int) *API {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a, err := New(nc, "", timing)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: "S", Subjects: []string{"s.head.*", "s.kept.*"},
		Retention: jetstream.WorkQueuePolicy, AllowDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for _, kind := range []string{"head", "kept"} {
			if _, err := a.JS.Publish(ctx, fmt.Sprintf("s.%s.i%d", kind, i), []byte(kind)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a
}

func TestLookupFindsHeadsInOrderABatchAtATime(t *testing.T) {
	a := stream(t, 5)
	l := a.NewLookup()
	defer l.Close()
	ctx := context.Background()
	heads, more, err := l.Next(ctx, "S", "s.head.*", 0, 3)
	if err != nil || len(heads) != 3 || !more {
		t.Fatalf("first batch: %v, more %v, %v", heads, more, err)
	}
	for i, h := range heads {
		if want := fmt.Sprintf("s.head.i%d", i); h.Subject != want || h.Seq != uint64(2*i+1) {
			t.Fatalf("head %d: %+v, want %s at %d", i, h, want, 2*i+1)
		}
	}
	heads, more, err = l.Next(ctx, "S", "s.head.*", heads[2].Seq+1, 3)
	if err != nil || len(heads) != 2 || more {
		t.Fatalf("second batch: %v, more %v, %v", heads, more, err)
	}
	if heads, _, err := l.Next(ctx, "NONE", "s.head.*", 0, 3); err != nil || len(heads) != 0 {
		t.Fatalf("a stream that does not exist: %v, %v", heads, err)
	}
}

func TestPurgeAndStoredFrom(t *testing.T) {
	a := stream(t, 2)
	ctx := context.Background()
	if ok, err := a.StoredFrom(ctx, "S", "s.*.i1", 0); err != nil || !ok {
		t.Fatalf("StoredFrom before the purge: %v, %v", ok, err)
	}
	if ok, err := a.StoredFrom(ctx, "S", "s.*.i0", 3); err != nil || ok {
		t.Fatalf("StoredFrom past the item: %v, %v", ok, err)
	}
	n, err := a.Purge(ctx, "S", "s.*.i1")
	if err != nil || n != 2 {
		t.Fatalf("Purge: %d, %v; want 2 messages", n, err)
	}
	if ok, err := a.StoredFrom(ctx, "S", "s.*.i1", 0); err != nil || ok {
		t.Fatalf("StoredFrom after the purge: %v, %v", ok, err)
	}
	if ok, err := a.StoredFrom(ctx, "S", "s.*.i0", 0); err != nil || !ok {
		t.Fatal("the purge took another item's messages")
	}
	if n, err := a.Purge(ctx, "NONE", "s.>"); err != nil || n != 0 {
		t.Fatalf("Purge of no stream: %d, %v", n, err)
	}
}

func TestPullDeliversThroughOneInbox(t *testing.T) {
	a := stream(t, 3)
	ctx := context.Background()
	if _, err := a.JS.CreateConsumer(ctx, "S", jetstream.ConsumerConfig{Name: "c", FilterSubject: "s.*.i1", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	p, err := a.NewPull("S", "c")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ask(PullRequest{Batch: 5, Expires: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := p.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st := Status(m); st != "" {
			if st != StatusExpired || m.Header.Get("Nats-Pending-Messages") != "3" {
				t.Fatalf("status %s, pending %s; want 408 with 3 of 5 left", st, m.Header.Get("Nats-Pending-Messages"))
			}
			break
		}
		got = append(got, m.Subject)
	}
	if len(got) != 2 || got[0] != "s.head.i1" || got[1] != "s.kept.i1" {
		t.Fatalf("pulled %v", got)
	}
}

func TestRetryGivesUpOnlyOnLastingOrFinalErrors(t *testing.T) {
	a := &API{T: timing}
	ctx := context.Background()
	calls := 0
	err := a.Retry(ctx, func(context.Context) error {
		if calls++; calls < 3 {
			return &jetstream.APIError{ErrorCode: CodeJSUnavailable}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient errors: %v after %d calls", err, calls)
	}
	calls = 0
	final := &jetstream.APIError{ErrorCode: CodeWQNotUnique}
	if err := a.Retry(ctx, func(context.Context) error { calls++; return final }); !errors.Is(err, final) || calls != 1 {
		t.Fatalf("a final error: %v after %d calls", err, calls)
	}
	start := time.Now()
	if err := a.Retry(ctx, func(context.Context) error { return nats.ErrTimeout }); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("a lasting timeout: %v", err)
	}
	if time.Since(start) < timing.FailoverWait {
		t.Fatal("gave up before FailoverWait")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	_ = a.Retry(cctx, func(context.Context) error { calls++; return nats.ErrTimeout })
	if calls != 1 {
		t.Fatalf("a canceled context was tried %d times", calls)
	}
}

func TestFullAndCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		full bool
		code int
	}{
		{&jetstream.APIError{ErrorCode: CodeInsufficient}, true, CodeInsufficient},
		{fmt.Errorf("wrapped: %w", &jetstream.APIError{ErrorCode: CodeMaxBytes}), true, CodeMaxBytes},
		{&jetstream.APIError{ErrorCode: CodeWQNotUnique}, false, CodeWQNotUnique},
		{errors.New("plain"), false, 0},
	} {
		if Full(tc.err) != tc.full || Code(tc.err) != tc.code {
			t.Errorf("%v: Full %v Code %d", tc.err, Full(tc.err), Code(tc.err))
		}
	}
	if err := DecodeAck([]byte(`{"error":{"code":503,"err_code":10023,"description":"insufficient resources"}}`)); !Full(err) {
		t.Errorf("DecodeAck of a full store: %v", err)
	}
	for _, tc := range []struct {
		ack string
		ok  bool
	}{
		{`{"stream":"S","seq":1}`, true},
		{`{"stream":"error","seq":1}`, true}, // "error" as a value, not a key
		{`{"stream":"S","seq":1,"duplicate":true}`, true},
		{`{"error":{"code":500,"err_code":10077,"description":"maximum messages exceeded"}}`, false},
		{`not an answer`, false},
		{``, false},
	} {
		if err := DecodeAck([]byte(tc.ack)); (err == nil) != tc.ok {
			t.Errorf("DecodeAck(%s) = %v", tc.ack, err)
		}
	}
}

func TestLastsGivesTheLastMessageOfEachSubjectPastTheServersLimit(t *testing.T) {
	n := MaxLasts + 100 // two requests
	a := stream(t, n)
	ctx := context.Background()
	if _, err := a.JS.Publish(ctx, "s.kept.i1", []byte("later")); err != nil {
		t.Fatal(err)
	}
	l := a.NewLookup()
	defer l.Close()
	subjects := []string{"s.kept.none"}
	for i := range n {
		subjects = append(subjects, fmt.Sprintf("s.kept.i%d", i))
	}
	lasts, err := l.Lasts(ctx, "S", subjects)
	if err != nil {
		t.Fatal(err)
	}
	if len(lasts) != n {
		t.Fatalf("%d lasts, want %d", len(lasts), n)
	}
	if _, ok := lasts["s.kept.none"]; ok {
		t.Fatal("a subject that holds nothing has a last message")
	}
	if h := lasts["s.kept.i1"]; string(h.Data) != "later" || h.Seq != uint64(2*n+1) {
		t.Fatalf("last of s.kept.i1: %q at %d, want the later message at %d", h.Data, h.Seq, 2*n+1)
	}
	if h := lasts[fmt.Sprintf("s.kept.i%d", n-1)]; string(h.Data) != "kept" || h.Seq != uint64(2*n) {
		t.Fatalf("last of the last item: %q at %d", h.Data, h.Seq)
	}
	if lasts, err := l.Lasts(ctx, "NONE", subjects[:3]); err != nil || len(lasts) != 0 {
		t.Fatalf("a stream that does not exist: %v, %v", lasts, err)
	}
}

// throughLink is an API on a's satellite through a tests/link proxy, to
// delay its answers.
func throughLink(t *testing.T, a *API, tm Timing) (*API, *link.Proxy) {
	t.Helper()
	p, err := link.Start(a.NC.ConnectedAddr(), link.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	nc, err := nats.Connect("nats://" + p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := New(nc, "", tm)
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

func TestLookupWaitsForASlowAnswer(t *testing.T) {
	call := 2 * time.Second
	b, slow := throughLink(t, stream(t, 2), Timing{Call: call, FailoverWait: call, FailoverRetry: 10 * time.Millisecond})
	// Every answer comes after more than half of a call's time: the
	// stream's info, asked for at half time, says the stream is there,
	// and the answer of the get is still taken.
	slow.SetDelay(0, call*13/20)
	l := b.NewLookup()
	defer l.Close()
	start := time.Now()
	heads, _, err := l.Next(context.Background(), "S", "s.head.*", 0, 10)
	if err != nil || len(heads) != 2 {
		t.Fatalf("a slow answer: %v, %v", heads, err)
	}
	if took := time.Since(start); took < call/2 {
		t.Fatalf("the answer took %v, not longer than half a call: the test proves nothing", took)
	}
	lasts, err := l.Lasts(context.Background(), "S", []string{"s.kept.i0", "s.kept.i1"})
	if err != nil || len(lasts) != 2 {
		t.Fatalf("a slow answer to a multi-last get: %v, %v", lasts, err)
	}

	// Slower than a whole call: the caller is told, and nothing waits on.
	slow.SetDelay(0, call*3/2)
	if _, _, err := l.Next(context.Background(), "S", "s.head.*", 0, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an answer later than a call: %v", err)
	}
}

func TestLookupRoundTripIsTheLeastOfItsGets(t *testing.T) {
	b, slow := throughLink(t, stream(t, 2), timing)
	ctx := context.Background()
	const delay = 300 * time.Millisecond
	get := func(l *Lookup) {
		t.Helper()
		if heads, _, err := l.Next(ctx, "S", "s.head.*", 0, 10); err != nil || len(heads) != 2 {
			t.Fatalf("lookup: %v, %v", heads, err)
		}
	}

	far := b.NewLookup()
	defer far.Close()
	if rt := far.RoundTrip(); rt != 0 {
		t.Fatalf("round trip before any get = %v, want 0", rt)
	}
	slow.SetDelay(0, delay)
	get(far)
	if rt := far.RoundTrip(); rt < delay {
		t.Fatalf("round trip across a link that delays answers %v = %v", delay, rt)
	}

	slow.SetDelay(0, 0)
	near := b.NewLookup()
	defer near.Close()
	get(near)
	fast := near.RoundTrip()
	if fast <= 0 {
		t.Fatalf("round trip of a get = %v", fast)
	}
	slow.SetDelay(0, delay)
	get(near)
	if rt := near.RoundTrip(); rt != fast {
		t.Fatalf("round trip after a slower get = %v, want the least, %v", rt, fast)
	}
}
