package pipes

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/internal/wire"
)

// fileWith writes prefix and data to a new file and opens it, at the
// first byte of data.
func fileWith(t *testing.T, prefix, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input")
	if err := os.WriteFile(path, append(append([]byte{}, prefix...), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Seek(int64(len(prefix)), 0); err != nil {
		t.Fatal(err)
	}
	return f
}

// Send reads again only what it can read again the same: a regular file,
// from where its offset was when Send was called; never a pipe, a device,
// or a reader that cannot say what it is.
func TestAnInputIsReadAgainOnlyIfItIsARegularFile(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for _, tc := range []struct {
		name     string
		r        io.Reader
		want     bool
		wantBase int64
	}{
		{"a regular file at its start", fileWith(t, nil, []byte("data")), true, 0},
		{"a regular file read from byte 7", fileWith(t, []byte("prefix:"), []byte("data")), true, 7},
		{"a pipe", pr, false, 0},
		{"a device", devNull, false, 0},
		{"a reader of bytes", bytes.NewReader([]byte("data")), false, 0},
		{"a gate", newGate(), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := rereadInput(tc.r)
			if (in != nil) != tc.want {
				t.Fatalf("read again: %v, want %v", in != nil, tc.want)
			}
			if in != nil && in.base != tc.wantBase {
				t.Fatalf("the item starts at byte %d of the file, want %d", in.base, tc.wantBase)
			}
		})
	}
}

// A frame read again from its file is the frame first sealed, byte for
// byte, or an ErrInputChanged that says which bytes: never a frame whose
// bytes the sender did not first read.
func TestAFrameReadAgainFromItsFileIsTheFrameSentOrAnError(t *testing.T) {
	data := payload(3*chunkSize, 3)
	for _, tc := range []struct {
		name   string
		off    int
		size   int
		change func(f *os.File) error
		want   error
	}{
		{"a whole frame, unchanged", chunkSize, chunkSize, nil, nil},
		{"a short last frame, unchanged", 2*chunkSize + 10, chunkSize - 10, nil, nil},
		{"a header alone (an end)", 3 * chunkSize, 0, nil, nil},
		{"a byte changed", chunkSize, chunkSize, func(f *os.File) error {
			_, err := f.WriteAt([]byte{^data[chunkSize+99]}, 5+chunkSize+99)
			return err
		}, ErrInputChanged},
		{"a byte changed in another frame", chunkSize, chunkSize, func(f *os.File) error {
			_, err := f.WriteAt([]byte{^data[99]}, 5+99)
			return err
		}, nil},
		{"the file truncated", chunkSize, chunkSize, func(f *os.File) error { return f.Truncate(5 + chunkSize + 100) }, ErrInputChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fileWith(t, []byte("12345"), data)
			in := rereadInput(f)
			if in == nil {
				t.Fatal("a regular file is not read again")
			}
			sent := wire.Seal(append(make([]byte, wire.HeaderLen), data[tc.off:tc.off+tc.size]...), 0, uint64(tc.off))
			if tc.size == 0 {
				sent = wire.EndFrame(0, uint64(tc.off))
			}
			if tc.change != nil {
				if err := tc.change(f); err != nil {
					t.Fatal(err)
				}
			}
			got, err := in.frame((*[wire.HeaderLen]byte)(sent), tc.size)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read again: %v, want %v", err, tc.want)
			}
			if err == nil && !bytes.Equal(got, sent) {
				t.Fatalf("read again: a frame of %d bytes unlike the %d sent", len(got), len(sent))
			}
		})
	}
	t.Run("an offset past what a file may hold", func(t *testing.T) {
		in := rereadInput(fileWith(t, []byte("12345"), data))
		hdr := [wire.HeaderLen]byte(wire.Seal(make([]byte, wire.HeaderLen), 0, math.MaxInt64))
		if _, err := in.frame(&hdr, 10); !errors.Is(err, ErrInputChanged) {
			t.Fatalf("read again: %v, want ErrInputChanged", err)
		}
	})
}

// A reconnecting writer whose input is a file keeps no copy of any frame
// (the frames it would publish again are read from the file), stores the
// item whole, and publishing the unconfirmed frames again reads them from
// the file; one whose bytes changed there fails the writer.
func TestAWriterOfAFileKeepsNoCopiesAndReadsItsFramesAgain(t *testing.T) {
	sat := newSatellite(t)
	ctx := testCtx(t)
	c := New(reconnecting(t, sat.srv.URL()), WithConfig(sat.cfg))
	data := payload(4*sat.cfg.StoreWindowMax*chunkSize/8, 9)
	f := fileWith(t, []byte("prefix"), data)
	w := storeWriterOf(t, c, "file", "item1")
	if !w.retain {
		t.Fatal("a reconnecting connection's writer does not retain its frames")
	}
	w.input = rereadInput(f)
	var head [wire.HeaderLen]byte
	if err := w.write(ctx, wire.Seal(head[:], 0, 0)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, wire.HeaderLen+chunkSize)
	for off := 0; off < len(data); {
		n, err := f.Read(buf[wire.HeaderLen:])
		if err != nil {
			t.Fatal(err)
		}
		if err := w.write(ctx, wire.Seal(buf[:wire.HeaderLen+n], 0, uint64(off))); err != nil {
			t.Fatal(err)
		}
		clear(buf) // the writer holds nothing of it
		off += n
		w.mu.Lock()
		copies := len(w.spare)
		for _, pf := range w.unconfirmed {
			if pf.data != nil {
				copies++
			}
		}
		// What a reconnect publishes again is read from the file.
		for _, pf := range w.unconfirmed {
			m, ok := w.frameMsg(pf)
			if !ok {
				t.Fatalf("frame %d read again: %v", pf.n, w.err)
			}
			fr, err := wire.Parse(m.Data)
			if err != nil || !bytes.Equal(fr.Data, data[fr.Offset:fr.Offset+uint64(len(fr.Data))]) {
				t.Fatalf("frame %d read again: %v, or not the bytes sent", pf.n, err)
			}
		}
		w.mu.Unlock()
		if copies > 0 {
			t.Fatalf("after %d bytes: %d copies held", off, copies)
		}
	}
	if err := w.write(ctx, wire.EndFrame(0, uint64(len(data)))); err != nil {
		t.Fatal(err)
	}
	w.resend() // as after a reconnect: the stream drops what it has (Nats-Msg-Id)
	if err := w.wait(ctx); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := sat.client().Receive(ctx, "file", &got, ReceiveOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("got %d bytes, want the %d sent", got.Len(), len(data))
	}

	// A frame whose bytes changed in the file since fails the writer.
	w2 := storeWriterOf(t, c, "file", "item2")
	w2.input = rereadInput(fileWith(t, nil, data[:chunkSize]))
	frame := wire.Seal(append(make([]byte, wire.HeaderLen), data[:chunkSize]...), 0, 0)
	if _, err := w2.input.r.(*os.File).WriteAt([]byte("changed"), 1000); err != nil {
		t.Fatal(err)
	}
	w2.mu.Lock()
	_, ok := w2.frameMsg(pendingFrame{n: 1, hdr: [wire.HeaderLen]byte(frame), size: chunkSize})
	err := w2.err
	w2.mu.Unlock()
	if ok || !errors.Is(err, ErrInputChanged) {
		t.Fatalf("a changed frame read again: ok %v, the writer's error %v; want ErrInputChanged", ok, err)
	}
}

// gatedFile is a regular file that Send reads up to a limit the test
// moves: ReadAt, Seek and Stat pass through, as a wrapper of a file may
// let them (cmd/skypipe's counting reader).
type gatedFile struct {
	*os.File
	mu      sync.Mutex
	cond    *sync.Cond
	pos     int64 // of the item's bytes, read
	limit   int64
	readAts atomic.Int64
}

func newGatedFile(f *os.File, limit int64) *gatedFile {
	g := &gatedFile{File: f, limit: limit}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gatedFile) Read(p []byte) (int, error) {
	g.mu.Lock()
	for g.pos >= g.limit {
		g.cond.Wait()
	}
	p = p[:min(int64(len(p)), g.limit-g.pos)]
	g.mu.Unlock()
	n, err := g.File.Read(p)
	g.mu.Lock()
	g.pos += int64(n)
	g.cond.Broadcast()
	g.mu.Unlock()
	return n, err
}

func (g *gatedFile) ReadAt(p []byte, off int64) (int, error) {
	g.readAts.Add(1)
	return g.File.ReadAt(p, off)
}

// open lets the reader read up to limit.
func (g *gatedFile) open(limit int64) {
	g.mu.Lock()
	g.limit = limit
	g.cond.Broadcast()
	g.mu.Unlock()
}

// waitRead waits until the reader has read up to n bytes.
func (g *gatedFile) waitRead(t *testing.T, n int64) {
	t.Helper()
	eventually(t, "the sender to read its input", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.pos >= n
	})
}

// A sender of a file rides out a lost connection without copies of what
// it keeps: the frames the connection lost are read again from the file,
// and the item is stored whole. If the file changed meanwhile, the sender
// fails with ErrInputChanged and the pipe keeps nothing of the item.
//
// The frames are lost for sure: published while the link is frozen, they
// are held by it, and dropped when it resets the connection; nothing can
// be confirmed until the sender reconnects after the freeze. The store
// window (16 frames) has room for them once the first half is stored.
func TestASenderOfAFileReadsTheFramesALostConnectionLostAgain(t *testing.T) {
	for _, changed := range []bool{false, true} {
		name := "the file unchanged"
		if changed {
			name = "the file changed"
		}
		t.Run(name, func(t *testing.T) {
			sat := newSatellite(t)
			ctx := testCtx(t)
			p := sat.linkTo(t)
			var said notices
			cfg := sat.cfg
			cfg.StoreWindow = 16
			sc := New(reconnecting(t, "nats://"+p.Addr()), WithConfig(cfg), WithNotice(said.add))
			js, err := jetstream.New(sat.conn())
			if err != nil {
				t.Fatal(err)
			}
			data := payload(8<<20, 21)
			const prefix, half, lost = 7, 4 << 20, 1 << 20
			f := fileWith(t, []byte("prefix:"), data)
			in := newGatedFile(f, half)
			t.Cleanup(func() { in.open(math.MaxInt64) }) // a sender left reading, if the test fails
			s := sendAsync(ctx, sc, "kept", in)
			in.waitRead(t, half)
			eventually(t, "the first half to be stored", func() bool {
				str, err := js.Stream(ctx, wire.Stream)
				return err == nil && str.CachedInfo().State.Msgs == 1+half/chunkSize
			})
			p.Stall(time.Second)
			in.open(half + lost)
			in.waitRead(t, half+lost)
			if changed {
				if _, err := f.WriteAt(bytes.Repeat([]byte("x"), lost), prefix+half); err != nil {
					t.Fatal(err)
				}
			}
			// The frames read since the freeze were published into it.
			p.Reset()
			in.open(math.MaxInt64)
			res, err := s.wait(t)
			if changed {
				if !errors.Is(err, ErrInputChanged) {
					t.Fatalf("send: %v, want ErrInputChanged (notices %q)", err, said.String())
				}
				sat.kept(ctx, "kept", 0)
				return
			}
			if err != nil {
				t.Fatalf("send: %v (notices %q)", err, said.String())
			}
			if !res.Kept || res.KeptFrom != 0 {
				t.Fatalf("send: %+v, want the whole item kept", res)
			}
			if in.readAts.Load() == 0 {
				t.Fatal("no frame was read again from the file")
			}
			if !strings.Contains(said.String(), "reconnected to the satellite") {
				t.Fatalf("the sender's notices do not say it reconnected: %q", said.String())
			}
			var got bytes.Buffer
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if _, err := sat.client().Receive(rctx, "kept", &got, ReceiveOptions{}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatalf("got %d bytes, want the %d sent (first difference at %d)", got.Len(), len(data), firstDiff(got.String(), string(data)))
			}
		})
	}
}
