package main

// What a send or receive is doing, told to a person at a terminal: a
// receiver's "waiting on pipe NAME" line, a progress line for a transfer
// that lasts more than a second, and a one-line summary at the end. Only
// when tui.go's terminalStatus says so; a nil *activity shows nothing.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

const (
	// redraw is how often the line on the terminal changes.
	redraw = 200 * time.Millisecond
	// progressAfter: a transfer shorter than this shows no progress line.
	progressAfter = time.Second
)

// activityState is what the activity shows on the terminal.
type activityState uint8

const (
	actIdle    activityState = iota // nothing yet: a receiver before its first redraw
	actWaiting                      // a receiver's waiting line, until its first byte
	actMoving                       // bytes flow; the progress line shows after progressAfter
	actEnded                        // the line is cleared: only the summary may follow
)

// activity shows one send or receive on stderr. Its methods are safe for
// concurrent use: the transfer counts bytes, pipes reports notices, and
// its own goroutine redraws.
type activity struct {
	mu    sync.Mutex
	state activityState
	what  string // "sending to pipe NAME", "receiving from pipe NAME"
	pipe  string // how the summary names the pipe
	total int64  // bytes expected, -1 unknown
	// bar: false for a receiver whose stdout is the terminal too, whose
	// data is its own progress, and a sender whose stdin is the terminal:
	// a progress line would tangle with what the terminal shows.
	bar      bool
	waiting  *progressbar.ProgressBar // the waiting line, while actWaiting
	progress *progressbar.ProgressBar // from the first byte on, drawn after progressAfter
	shown    bool                     // progress has been drawn

	moving atomic.Bool  // the first byte went through
	bytes  atomic.Int64 // bytes through so far
	first  time.Time    // when the first byte went through
	last   time.Time    // when the transfer ended

	stop chan struct{}
	done sync.WaitGroup
}

// pipeLabel is how a line names pipe name.
func pipeLabel(name string) string {
	if name == "" {
		return "the default pipe"
	}
	for _, r := range name {
		if r == ' ' || !strconv.IsGraphic(r) {
			return "pipe " + strconv.Quote(name)
		}
	}
	return "pipe " + name
}

// startSending shows a send of size bytes (-1: unknown) into pipe name, or
// returns nil when stderr is no terminal or --quiet is set.
func startSending(g *Globals, name string, size int64) *activity {
	if !terminalStatus(g) {
		return nil
	}
	// Typed on the terminal (--send): a progress line would tangle with the echo.
	return startActivity(actMoving, "sending to "+pipeLabel(name), name, size, kindOf(os.Stdin) != streamTerminal)
}

// startReceiving shows a receiver of pipe name: its waiting line, then its
// progress unless its stdout is the terminal too. nil when stderr is no
// terminal or --quiet is set.
func startReceiving(g *Globals, name string) *activity {
	if !terminalStatus(g) {
		return nil
	}
	return startActivity(actIdle, "receiving from "+pipeLabel(name), name, -1, kindOf(os.Stdout) != streamTerminal)
}

func startActivity(state activityState, what, name string, size int64, bar bool) *activity {
	if size <= 0 {
		size = -1
	}
	a := &activity{state: state, what: what, pipe: pipeLabel(name), total: size, bar: bar, stop: make(chan struct{})}
	a.done.Go(a.run)
	return a
}

func (a *activity) run() {
	t := time.NewTicker(redraw)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			a.redraw(now)
		}
	}
}

// newBar is a line of progressbar's, drawn on stderr only when asked: it
// has no goroutine of its own. It fits the terminal's width.
func newBar(size int64, desc string, opts ...progressbar.Option) *progressbar.ProgressBar {
	return progressbar.NewOptions64(size, append([]progressbar.Option{
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("skypipe: " + desc),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetWidth(20), // or narrower, to fit the terminal
		progressbar.OptionUseIECUnits(true),
	}, opts...)...)
}

// redraw draws the line the state calls for.
func (a *activity) redraw(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.state {
	case actIdle:
		a.state = actWaiting
		a.waiting = newBar(-1, "waiting on "+a.pipe,
			progressbar.OptionShowBytes(false), progressbar.OptionShowTotalBytes(false), progressbar.OptionSetElapsedTime(true))
		fallthrough
	case actWaiting:
		_ = a.waiting.RenderBlank()
	case actMoving:
		if a.progress == nil || now.Sub(a.first) < progressAfter {
			return
		}
		_ = a.progress.Set64(a.bytes.Load())
		a.shown = true
	}
}

// begin notes the first byte: the waiting line goes, the progress starts.
func (a *activity) begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.moving.Load() {
		return
	}
	a.moving.Store(true)
	if a.state == actEnded {
		return // a read after the end: nothing to show
	}
	a.clear()
	a.state, a.first = actMoving, time.Now()
	if a.bar {
		// At its size the bar stays full until end: a sender has read all
		// of its input, and waits for receivers or the store to confirm it.
		a.progress = newBar(a.total, a.what, progressbar.OptionShowBytes(true), progressbar.OptionShowCount())
		a.progress.StartWithoutRender() // its clock starts now: the rate and ETA count from the first byte
	}
}

// clear takes the line off the terminal. a.mu is held.
func (a *activity) clear() {
	if a.waiting != nil {
		_ = a.waiting.Clear()
		a.waiting = nil
	}
	if a.progress != nil && a.shown {
		_ = a.progress.Clear()
		a.shown = false
	}
}

// count adds n bytes that went through.
func (a *activity) count(n int) {
	if a == nil || n <= 0 {
		return
	}
	if !a.moving.Load() {
		a.begin()
	}
	a.bytes.Add(int64(n))
}

// notice prints a notice from pipes without breaking the line: the line
// is cleared, and drawn again at the next redraw.
func (a *activity) notice(msg string) {
	if a == nil {
		notice(msg)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clear()
	if a.state == actWaiting {
		a.state = actIdle // a fresh waiting line below the notice
	}
	notice(msg)
}

// end stops the redraws and clears the line; after it, the summary.
func (a *activity) end() {
	if a == nil {
		return
	}
	close(a.stop)
	a.done.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clear()
	a.state, a.last = actEnded, time.Now()
}

// size is how many bytes went through: "5.7 MiB".
func (a *activity) size() string { return humanBytes(a.bytes.Load()) }

// took says how long the bytes took, and how fast they went: " in 3.1s
// (1.9 MiB/s)"; nothing when that was no time worth saying.
func (a *activity) took() string {
	n := a.bytes.Load()
	d := a.last.Sub(a.first)
	if n == 0 || d < 100*time.Millisecond {
		return ""
	}
	return fmt.Sprintf(" in %s (%s/s)", humanDuration(d), humanBytes(int64(float64(n)/d.Seconds())))
}

// humanDuration: tenths of a second up to 10s, whole seconds beyond.
func humanDuration(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// sent ends a send with its summary.
func (a *activity) sent(kept bool, keptFrom uint64) {
	if a == nil {
		return
	}
	a.end()
	where := "delivered live"
	switch {
	case kept && keptFrom == 0:
		where = "kept in the pipe"
	case kept:
		where = fmt.Sprintf("kept from byte %d on", keptFrom)
	}
	printf("sent %s to %s%s, %s", a.size(), a.pipe, a.took(), where)
}

// sentLines ends a send of lines with its summary.
func (a *activity) sentLines(items int) {
	if a == nil {
		return
	}
	a.end()
	printf("sent %d %s (%s) to %s%s", items, plural(items, "item", "items"), a.size(), a.pipe, a.took())
}

// received ends a receive with its summary; a receiver whose stdout is
// the terminal shows none: its data is there.
func (a *activity) received(items int, follow bool) {
	if a == nil {
		return
	}
	a.end()
	if !a.bar {
		return
	}
	if follow {
		printf("received %d %s (%s) from %s%s", items, plural(items, "item", "items"), a.size(), a.pipe, a.took())
		return
	}
	printf("received %s from %s%s", a.size(), a.pipe, a.took())
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// countingReader counts what a sender reads from stdin.
type countingReader struct {
	f *os.File
	a *activity
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.a.count(n)
	return n, err
}

// ReadAt, Seek and Stat let pipes.Send read a file on stdin again, rather
// than keep copies of it, as it does with os.Stdin itself. What they read
// is not counted again.
func (c countingReader) ReadAt(p []byte, off int64) (int, error) { return c.f.ReadAt(p, off) }
func (c countingReader) Seek(off int64, whence int) (int64, error) {
	return c.f.Seek(off, whence)
}
func (c countingReader) Stat() (os.FileInfo, error) { return c.f.Stat() }

// countingWriter counts what a receiver writes to stdout; before its first
// byte, the waiting line goes.
type countingWriter struct {
	w io.Writer
	a *activity
}

func (c countingWriter) Write(p []byte) (int, error) {
	if c.a != nil && !c.a.moving.Load() && len(p) > 0 {
		c.a.begin()
	}
	n, err := c.w.Write(p)
	c.a.count(n)
	return n, err
}

// satelliteStarted notes a local satellite started on demand.
func satelliteStarted(pid int, dataDir string) {
	printf("started the local satellite (pid %d, data in %s; 'skypipe stop' stops it)", pid, dataDir)
}

// stdinSize is how many bytes a regular file on stdin holds from where it
// is read, or -1.
func stdinSize() int64 {
	if kindOf(os.Stdin) != streamFile {
		return -1
	}
	fi, err := os.Stdin.Stat()
	if err != nil {
		return -1
	}
	off, err := os.Stdin.Seek(0, io.SeekCurrent)
	if err != nil || fi.Size() <= off {
		return -1
	}
	return fi.Size() - off
}
