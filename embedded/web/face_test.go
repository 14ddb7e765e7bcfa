package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/pipes"
)

const satToken = "the-satellite-token"

// face runs a real satellite and its face behind an httptest server.
type face struct {
	srv  *embedded.Server
	http *httptest.Server
	logs *logLines
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logLines) all() string  { l.mu.Lock(); defer l.mu.Unlock(); return strings.Join(l.lines, "\n") }

func newFace(t *testing.T, tlsOn bool) *face {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: satToken, Websocket: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	logs := &logLines{}
	f, err := New(Config{
		Token:     satToken,
		Connect:   func() (*nats.Conn, error) { return srv.Connect("test-face", satToken) },
		Websocket: srv.WebsocketAddr(),
		Log:       logs.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(f)
	if tlsOn {
		hs.EnableHTTP2 = true
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)
	return &face{srv: srv, http: hs, logs: logs}
}

func (f *face) client(t *testing.T) *pipes.Client {
	nc, err := f.srv.Connect("test", satToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return pipes.New(nc)
}

func (f *face) do(t *testing.T, method, path, token string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return string(b)
}

func waitAttached(t *testing.T, c *pipes.Client, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := c.Attached(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d receivers on %q, want %d", got, name, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSendTakeListRemove(t *testing.T) {
	f := newFace(t, false)
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	resp := f.do(t, "PUT", "/p/files%2Fphotos", satToken, bytes.NewReader(data))
	var s sent
	if err := json.Unmarshal([]byte(readAll(t, resp)), &s); err != nil || resp.StatusCode != 200 || s.Bytes != uint64(len(data)) || !s.Kept || s.Pipe != "files/photos" {
		t.Fatalf("PUT: %d %+v %v", resp.StatusCode, s, err)
	}
	resp = f.do(t, "POST", "/p/files%2Fphotos", satToken, strings.NewReader("second"))
	readAll(t, resp)
	resp = f.do(t, "GET", "/pipes", satToken, nil)
	var list []pipeInfo
	if err := json.Unmarshal([]byte(readAll(t, resp)), &list); err != nil || len(list) != 1 || list[0].Name != "files/photos" || list[0].Items != 2 || list[0].Whole != 2 || list[0].BrokenItems == nil {
		t.Fatalf("GET /pipes: %+v %v", list, err)
	}
	resp = f.do(t, "GET", "/p/files%2Fphotos", satToken, nil)
	if got := readAll(t, resp); resp.StatusCode != 200 || got != string(data) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET: %d, %d bytes, %q", resp.StatusCode, len(got), resp.Header.Get("Content-Type"))
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=files_photos` {
		t.Errorf("Content-Disposition %q", cd)
	}
	// One item by its id, as rm --item: the others stay.
	readAll(t, f.do(t, "PUT", "/p/files%2Fphotos", satToken, strings.NewReader("third")))
	resp = f.do(t, "PUT", "/p/files%2Fphotos", satToken, strings.NewReader("fourth"))
	var fourth sent
	if err := json.Unmarshal([]byte(readAll(t, resp)), &fourth); err != nil || fourth.Item == "" {
		t.Fatalf("PUT: %+v %v", fourth, err)
	}
	resp = f.do(t, "DELETE", "/p/files%2Fphotos?item="+fourth.Item, satToken, nil)
	if got := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(got, `"removed":1`) {
		t.Fatalf("DELETE ?item=: %d %s", resp.StatusCode, got)
	}
	resp = f.do(t, "DELETE", "/p/files%2Fphotos?item="+fourth.Item, satToken, nil)
	if got := readAll(t, resp); resp.StatusCode != 404 {
		t.Fatalf("DELETE ?item= of an item gone: %d %s", resp.StatusCode, got)
	}
	resp = f.do(t, "DELETE", "/p/files%2Fphotos", satToken, nil)
	if got := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(got, `"removed":2`) {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, got)
	}
	// An empty item is an item: a trigger.
	readAll(t, f.do(t, "PUT", "/p/", satToken, strings.NewReader("")))
	resp = f.do(t, "GET", "/p/", satToken, nil)
	if got := readAll(t, resp); resp.StatusCode != 200 || got != "" {
		t.Fatalf("GET of an empty item on the default pipe: %d %q", resp.StatusCode, got)
	}
	if strings.Contains(f.logs.all(), satToken) {
		t.Fatalf("the log shows the token:\n%s", f.logs.all())
	}
}

func TestRequestsThatAreRefused(t *testing.T) {
	f := newFace(t, false)
	narrow, err := Mint(satToken, Scope{Send: []string{"logs"}})
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := Mint(satToken, Scope{Recv: []string{"logs"}, Expires: time.Now().Add(-time.Minute)})
	other, _ := Mint("another-satellite", Scope{Send: []string{"logs"}})
	for _, tc := range []struct {
		method, path, token string
		status              int
		says                string
	}{
		{"GET", "/p/logs", "", 401, "no token"},
		{"GET", "/p/logs", "wrong", 401, "refused the token"},
		{"PUT", "/p/logs", other, 401, "not a token of this satellite"},
		{"GET", "/p/logs", expired, 401, "expired"},
		{"GET", "/p/logs?token=" + satToken, satToken, 400, "never in a URL"},
		{"GET", "/p/logs", narrow, 403, `may not take from pipe "logs"`},
		{"DELETE", "/p/logs", narrow, 403, `may not take from pipe "logs"`},
		{"PUT", "/p/other", narrow, 403, `may not send to pipe "other"`},
		{"HEAD", "/p/logs", satToken, 405, ""},
		{"PATCH", "/p/logs", satToken, 405, "PATCH is not a method"},
		{"POST", "/pipes", satToken, 405, "not a method"},
		{"GET", "/nothing", satToken, 404, "no such path"},
		{"GET", "/p/logs?listen=1&timeout=50ms", satToken, 504, "nothing arrived in time"},
		{"GET", "/p/logs?listen=maybe", satToken, 400, "not a boolean"},
		{"GET", "/p/logs?follow=maybe", satToken, 400, "not a boolean"},
		{"GET", "/p/logs?timeout=soon", satToken, 400, "not a duration"},
		{"GET", "/p/bad%00name", satToken, 400, "invalid pipe name"},
		{"GET", "/p/logs?timeout=50ms", satToken, 504, "nothing arrived in time"},
		{"GET", "/p/logs?follow=1&timeout=50ms", satToken, 504, "nothing arrived in time"},
	} {
		resp := f.do(t, tc.method, tc.path, tc.token, strings.NewReader(""))
		body := readAll(t, resp)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) || (tc.status >= 400 && tc.method != "HEAD" && !strings.HasPrefix(body, "skypipe: error: ")) {
			t.Errorf("%s %s: %d %q, want %d saying %q", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.says)
		}
	}
	if resp := f.do(t, "GET", "/p/logs", "", nil); resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("a 401 without WWW-Authenticate")
	}
	// A narrow token lists only its pipes, and sends where it may.
	readAll(t, f.do(t, "PUT", "/p/secret", satToken, strings.NewReader("not for the narrow token")))
	readAll(t, f.do(t, "PUT", "/p/logs", narrow, strings.NewReader("a log line\n")))
	resp := f.do(t, "GET", "/pipes", narrow, nil)
	if got := readAll(t, resp); !strings.Contains(got, `"logs"`) || strings.Contains(got, "secret") {
		t.Errorf("GET /pipes with a narrow token: %s", got)
	}
	for _, tok := range []string{satToken, narrow} {
		if strings.Contains(f.logs.all(), tok) {
			t.Fatalf("the log shows a token:\n%s", f.logs.all())
		}
	}
	if !strings.Contains(f.logs.all(), "narrow token") {
		t.Errorf("the log does not tell narrow tokens apart:\n%s", f.logs.all())
	}
}

func TestHTTP10ReceiversAreRefused(t *testing.T) {
	f := newFace(t, false)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /p/x HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n", satToken)
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "HTTP/1.0 505") {
		t.Fatalf("an HTTP/1.0 receiver got %q", b)
	}
}

// brokenSender sends some bytes, then fails, as an interrupted sender does.
type brokenSender struct {
	data []byte
	sent bool
}

func (b *brokenSender) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, b.data), nil
	}
	return 0, errors.New("interrupted")
}

// TestBrokenItemsNeverEndCleanly: a receiver whose item breaks after its
// body started sees the response cut (HTTP/1.1: no last chunk; HTTP/2: a
// reset stream), never a clean end; one whose item breaks before it gets
// an error status.
func TestBrokenItemsNeverEndCleanly(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			f := newFace(t, h2)
			c := f.client(t)
			type result struct {
				resp *http.Response
				body string
				err  error
			}
			got := make(chan result, 1)
			go func() {
				req, _ := http.NewRequest("GET", f.http.URL+"/p/news", nil)
				req.Header.Set("Authorization", "Bearer "+satToken)
				resp, err := f.http.Client().Do(req)
				if err != nil {
					got <- result{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- result{resp: resp, body: string(b), err: err}
			}()
			waitAttached(t, c, "news", 1)
			if _, err := c.Send(context.Background(), "news", &brokenSender{data: []byte("the first half of the news\n")}); err == nil {
				t.Fatal("the broken sender succeeded")
			}
			r := <-got
			if r.err == nil {
				t.Fatalf("a broken item ended cleanly: status %v, body %q", r.resp.Status, r.body)
			}
			if r.resp != nil && (r.resp.StatusCode != 200 || !strings.HasPrefix(r.body, "the first half")) {
				t.Fatalf("status %v, body %q before the cut", r.resp.Status, r.body)
			}
			if h2 && r.resp.ProtoMajor != 2 {
				t.Errorf("spoke %s, want HTTP/2", r.resp.Proto)
			}
		})
	}
}

// TestBrokenUploadBreaksTheItem: a client that goes away mid-body leaves a
// broken item, which its receiver sees as broken.
func TestBrokenUploadBreaksTheItem(t *testing.T) {
	f := newFace(t, false)
	c := f.client(t)
	recv := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		_, err := c.Receive(context.Background(), "up", &out, pipes.ReceiveOptions{Timeout: 30 * time.Second})
		recv <- err
	}()
	waitAttached(t, c, "up", 1)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	// More than a frame, so that part of the item is out before the cut.
	fmt.Fprintf(conn, "PUT /p/up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", satToken, 1<<20)
	if _, err := conn.Write(bytes.Repeat([]byte("x"), 600<<10)); err != nil {
		t.Fatal(err)
	}
	conn.Close() // the client goes away 600 KiB into 1 MiB
	err = <-recv
	var ie *pipes.ItemError
	if !errors.As(err, &ie) || !errors.Is(err, pipes.ErrSenderAborted) {
		t.Fatalf("the receiver of a cut upload: %v (got %q)", err, out.String())
	}
}

func TestLiveAndFollow(t *testing.T) {
	f := newFace(t, false)
	c := f.client(t)
	req, _ := http.NewRequest("GET", f.http.URL+"/p/logs?follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+satToken)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Headers wait for the first byte: follow in a goroutine instead.
	lines := make(chan string, 10)
	go func() {
		resp, err := f.http.Client().Do(req.WithContext(ctx))
		if err != nil {
			close(lines)
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 1024)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				lines <- string(buf[:n])
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	waitAttached(t, c, "logs", 1)
	var all string
	for _, l := range []string{"one\n", "two\n"} {
		if _, err := c.Send(context.Background(), "logs", strings.NewReader(l)); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(all, l) {
			s, ok := <-lines
			if !ok {
				t.Fatalf("the follower ended after %q", all)
			}
			all += s
		}
	}
	if all != "one\ntwo\n" {
		t.Fatalf("the follower got %q", all)
	}
	cancel() // the client goes away: the follower detaches
	for range lines {
	}
	waitAttached(t, c, "logs", 0)
}

func TestWebsocketReachesNATS(t *testing.T) {
	f := newFace(t, true)
	pool := x509.NewCertPool()
	pool.AddCert(f.http.Certificate())
	u := strings.Replace(f.http.URL, "https://", "wss://", 1)
	nc, err := nats.Connect(u, nats.Token(satToken), nats.Secure(&tls.Config{RootCAs: pool}), nats.NoReconnect())
	if err != nil {
		t.Fatalf("NATS over WebSocket through the face: %v", err)
	}
	defer nc.Close()
	c := pipes.New(nc)
	if _, err := c.Send(context.Background(), "ws", strings.NewReader("over wss")); err != nil {
		t.Fatal(err)
	}
	resp := f.do(t, "GET", "/p/ws", satToken, nil)
	if got := readAll(t, resp); got != "over wss" {
		t.Fatalf("got %q", got)
	}
	if _, err := nats.Connect(u, nats.Token("wrong"), nats.Secure(&tls.Config{RootCAs: pool}), nats.NoReconnect()); err == nil {
		t.Fatal("a wrong token got in over WebSocket")
	}
}

func TestThePage(t *testing.T) {
	f := newFace(t, false)
	for path, want := range map[string]string{"/": "<title>skypipe</title>", "/app.js": "function receive", "/style.css": ".drop"} {
		resp := f.do(t, "GET", path, "", nil)
		body := readAll(t, resp)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, lacks %q", path, resp.StatusCode, want)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
}

// TestReceiverGoneKeepsTheItem: a GET that goes away mid-item leaves the
// kept item whole in the pipe for the next one.
func TestReceiverGoneKeepsTheItem(t *testing.T) {
	f := newFace(t, false)
	data := make([]byte, 16<<20)
	rand.Read(data)
	readAll(t, f.do(t, "PUT", "/p/big", satToken, bytes.NewReader(data)))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.http.URL+"/p/big", nil)
	req.Header.Set("Authorization", "Bearer "+satToken)
	resp, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel() // the client goes away 1 MiB in
	resp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp := f.do(t, "GET", "/p/big?timeout=5s", satToken, nil)
		got := readAll(t, resp)
		if resp.StatusCode == 200 {
			if got != string(data) {
				t.Fatalf("the next receiver got %d bytes, not the whole item", len(got))
			}
			return
		}
		// The first receiver's claim may not be released yet.
		if time.Now().After(deadline) {
			t.Fatalf("the item did not come back: %d %s", resp.StatusCode, got)
		}
	}
}
