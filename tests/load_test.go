package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/internal/wire"
)

// Load, from many real processes at once:
//
//	load MODE PIPES SENDERS ITEMS MAXSIZE RECEIVERS
//	    SENDERS concurrent senders each send ITEMS items (one skypipe
//	    process per item) of random sizes from 0 to MAXSIZE bytes to
//	    pipes chosen at random among PIPES; RECEIVERS receivers with
//	    --follow (spread evenly over the pipes) read them. MODE kept: the
//	    items are all kept first, then drained; each must come out exactly
//	    once across its pipe's receivers. MODE live: the receivers attach
//	    first; each must get every item of its pipe exactly once. Items
//	    are lines that name their item and place, so a lost, duplicated,
//	    reordered or damaged byte is found wherever it lands.
//	inorder PIPE N
//	    queue N one-line items in PIPE (through the library, one after
//	    another), drain them with one `skypipe --follow`, and check that
//	    all came out in the order they went in

// loadLine is the length of every line of a load item.
const loadLine = 64

// loadItem is one item of the load: its id, pipe and number of lines.
type loadItem struct {
	id    string
	pipe  string
	lines int
}

// line writes line n of an item into b (loadLine bytes): the item's id,
// the line's number, and filler that depends on both.
func (it loadItem) line(b []byte, n int) []byte {
	b = b[:0]
	b = append(b, it.id...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	for c := byte('a' + (n+len(it.id))%26); len(b) < loadLine-1; c = 'a' + (c-'a'+1)%26 {
		b = append(b, c)
	}
	return append(b, '\n')
}

// tally counts, per receiver, what it got of each item, and checks each
// line as it arrives.
type tally struct {
	mu   sync.Mutex
	got  map[string]int // item -> lines, in order
	errs []string
}

func (t *tally) fail(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.errs) < 10 {
		t.errs = append(t.errs, fmt.Sprintf(format, args...))
	}
}

// read checks every line a receiver writes: known item, next line, exact bytes.
func (t *tally) read(r io.Reader, items map[string]loadItem) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 2*loadLine), 2*loadLine)
	want := make([]byte, 0, loadLine)
	for sc.Scan() {
		l := sc.Bytes()
		id, rest, _ := bytes.Cut(l, []byte{' '})
		nstr, _, _ := bytes.Cut(rest, []byte{' '})
		it, ok := items[string(id)]
		n, err := strconv.Atoi(string(nstr))
		if !ok || err != nil {
			t.fail("a line of no item: %q", l)
			continue
		}
		t.mu.Lock()
		next := t.got[it.id]
		t.got[it.id] = next + 1
		t.mu.Unlock()
		if n != next {
			t.fail("item %s: line %d came where line %d was due", it.id, n, next)
		}
		if want = it.line(want, n); !bytes.Equal(want[:loadLine-1], l) {
			t.fail("item %s line %d damaged: %q", it.id, n, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.fail("reading: %v", err)
	}
}

func cmdLoad(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 6 || (args[0] != "kept" && args[0] != "live") {
		ts.Fatalf("usage: load kept|live PIPES SENDERS ITEMS MAXSIZE RECEIVERS")
	}
	mode := args[0]
	npipes, nsenders, nitems := int(intArg(ts, args[1])), int(intArg(ts, args[2])), int(intArg(ts, args[3]))
	maxLines, nrecv := int(intArg(ts, args[4]))/loadLine, int(intArg(ts, args[5]))
	rng := rand.New(rand.NewPCG(uint64(npipes), uint64(nsenders*nitems)))
	items := map[string]loadItem{}
	plan := make([][]loadItem, nsenders)
	total := 0
	for s := range plan {
		for i := range nitems {
			it := loadItem{id: fmt.Sprintf("s%d-i%d", s, i), pipe: fmt.Sprintf("load%d", rng.IntN(npipes)), lines: rng.IntN(maxLines + 1)}
			plan[s] = append(plan[s], it)
			items[it.id] = it
			total += it.lines * loadLine
		}
	}
	ts.Logf("%s: %d items, %d bytes, %d pipes, %d receivers", mode, len(items), total, npipes, nrecv)

	skypipe := skypipeBin(ts)
	env := scriptEnv(ts)

	type receiver struct {
		pipe  string
		cmd   *exec.Cmd
		tally *tally
		done  chan struct{}
		err   bytes.Buffer
	}
	var recvs []*receiver
	startReceivers := func() {
		for i := range nrecv {
			r := &receiver{pipe: fmt.Sprintf("load%d", i%npipes), tally: &tally{got: map[string]int{}}, done: make(chan struct{})}
			args := []string{"--recv", "--follow", r.pipe}
			if mode == "live" {
				args = append(args, "--listen") // each a copy of every item
			}
			r.cmd = exec.Command(skypipe, args...)
			r.cmd.Env, r.cmd.Stderr = env, &r.err
			out, err := r.cmd.StdoutPipe()
			ts.Check(err)
			ts.Check(r.cmd.Start())
			ts.Defer(func() { _ = r.cmd.Process.Kill() })
			go func() { r.tally.read(out, items); close(r.done) }()
			recvs = append(recvs, r)
		}
	}
	if mode == "live" {
		startReceivers()
		// Live items reach only receivers already attached. A satellite
		// this busy may take long to see 20 receivers join: a wider bound.
		c, done := client(ts)
		for p := range npipes {
			pipe, want := fmt.Sprintf("load%d", p), (nrecv-p+npipes-1)/npipes
			waitWithin(ts, 4*waitLimit, fmt.Sprintf("%d receiver(s) on %q", want, pipe), func() (bool, string) {
				n, err := c.Attached(context.Background(), pipe)
				return err == nil && n == want, fmt.Sprint(n, err)
			})
		}
		done()
	}

	sending := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, len(items))
	for _, items := range plan {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, it := range items {
				cmd := exec.Command(skypipe, "--send", it.pipe)
				var stderr bytes.Buffer
				cmd.Env, cmd.Stderr = env, &stderr
				in, err := cmd.StdinPipe()
				if err == nil {
					err = cmd.Start()
				}
				if err != nil {
					errs <- err.Error()
					return
				}
				w := bufio.NewWriterSize(in, 64<<10)
				line := make([]byte, 0, loadLine)
				for n := range it.lines {
					line = it.line(line, n)
					_, _ = w.Write(line)
				}
				_ = w.Flush()
				_ = in.Close()
				if err := cmd.Wait(); err != nil {
					errs <- fmt.Sprintf("sender of %s: %v: %s", it.id, err, stderr.String())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		ts.Fatalf("%s", e)
	}
	ts.Logf("sent in %v", time.Since(sending).Round(time.Millisecond))

	kept := -1 // items kept when the receivers start; -1: not counted
	if mode == "kept" {
		kept = 0
		for p := range npipes {
			n := keptItems(ts, fmt.Sprintf("load%d", p))
			if n == 0 {
				ts.Fatalf("pipe load%d keeps nothing before the receivers start", p)
			}
			kept += n
		}
		startReceivers()
	}
	// Everything is out when no pipe keeps an item: a receiver removes a
	// kept item only once it wrote it out whole; a live sender returns only
	// once its receivers wrote its end.
	drained(ts, npipes, kept, func() {
		// Why no item came out: what each receiver wrote, and where
		// its goroutines wait (SIGQUIT makes a Go program print them).
		for i, r := range recvs {
			r.tally.mu.Lock()
			got := len(r.tally.got)
			r.tally.mu.Unlock()
			_ = r.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-r.done:
			case <-time.After(5 * time.Second):
			}
			_ = r.cmd.Process.Kill()
			<-r.done
			_ = r.cmd.Wait()
			ts.Logf("receiver %d of %s: lines of %d item(s); stderr:\n%s", i, r.pipe, got, skypipeStacks(r.err.String()))
		}
	})
	for _, r := range recvs {
		_ = r.cmd.Process.Signal(syscall.SIGINT)
		<-r.done
		err := r.cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			ts.Fatalf("receiver of %s ended with %v, not as interrupted: %s", r.pipe, err, r.err.String())
		}
		for _, e := range r.tally.errs {
			ts.Logf("receiver of %s: %s", r.pipe, e)
		}
		if len(r.tally.errs) > 0 {
			ts.Fatalf("receiver of %s got damaged or misordered data", r.pipe)
		}
	}

	// Every item exactly once: per receiver (live), across receivers (kept).
	bad := 0
	for _, it := range items {
		if it.lines == 0 {
			continue // an empty item has no bytes to count; the pipes drained
		}
		copies := 0
		for _, r := range recvs {
			if r.pipe != it.pipe {
				continue
			}
			switch got := r.tally.got[it.id]; {
			case got == it.lines:
				copies++
			case got != 0 || mode == "live":
				if bad++; bad <= 10 {
					ts.Logf("item %s: a receiver of %s got %d of its %d lines", it.id, it.pipe, got, it.lines)
				}
			}
		}
		if mode == "kept" && copies != 1 {
			if bad++; bad <= 10 {
				ts.Logf("kept item %s came out %d times", it.id, copies)
			}
		}
	}
	if bad > 0 {
		ts.Fatalf("%d item(s) lost, cut or duplicated", bad)
	}
}

// keptItems is how many items pipe keeps. A satellite this busy (4 GB
// just stored, on a loaded machine) may answer late: it asks again for
// 4*waitLimit, as for the receivers of the live load (CI47: 30 s of lists
// timed out, with three busy loops beside the suite).
func keptItems(ts *testscript.TestScript, pipe string) int {
	nc := conn(ts)
	defer nc.Close()
	var kept map[string]int
	waitWithin(ts, 4*waitLimit, "the count of kept items", func() (bool, string) {
		var err error
		kept, err = keptByPipe(nc)
		return err == nil, fmt.Sprint(err)
	})
	return kept[pipe]
}

// keptByPipe counts the kept items of every pipe, by name, from the
// satellite's index of the stream's subjects: one head an item. It reads
// no stored message. Client.List (skypipe ls) reads every item's head and
// last frame, which with gigabytes kept makes the satellite load its whole
// store while it holds the store's lock, and the removals of the receivers
// being watched wait behind it: a drain polled with List saw its first
// item out after 25-32 s on a loaded machine, and failed CI after 30 s
// with none.
func keptByPipe(nc *nats.Conn) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, wire.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(wire.HeadsOfAll))
	if err != nil {
		return nil, err
	}
	kept := map[string]int{}
	for subject, n := range info.State.Subjects {
		tok, _, ok := wire.PipeOfHead(subject)
		if !ok {
			continue
		}
		if name, err := wire.NameFromToken(tok); err == nil {
			kept[name] += int(n)
		}
	}
	return kept, nil
}

func cmdInOrder(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: inorder PIPE N")
	}
	pipe, n := args[0], int(intArg(ts, args[1]))
	c, done := client(ts)
	for i := range n {
		_, err := c.Send(context.Background(), pipe, strings.NewReader(fmt.Sprintf("item %d\n", i)))
		ts.Check(err)
	}
	done()
	if got := keptItems(ts, pipe); got != n {
		ts.Fatalf("the pipe keeps %d items, not %d", got, n)
	}
	cmd := exec.Command(skypipeBin(ts), "--recv", "--follow", pipe)
	cmd.Env = scriptEnv(ts)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(cmd.Start())
	ts.Defer(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(out)
	for i := range n {
		if !sc.Scan() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			ts.Fatalf("the receiver stopped after %d items: %v %s", i, sc.Err(), stderr.String())
		}
		if want := fmt.Sprintf("item %d", i); sc.Text() != want {
			ts.Fatalf("item %d out of order: got %q, want %q", i, sc.Text(), want)
		}
	}
	cmdKept(ts, false, []string{pipe, "0"})
	_ = cmd.Process.Signal(syscall.SIGINT)
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 130 {
		ts.Fatalf("the receiver ended with %v: %s", err, stderr.String())
	}
}

// scriptEnv is the environment a script's skypipe processes see.
func scriptEnv(ts *testscript.TestScript) []string {
	env := os.Environ()
	for _, k := range []string{"PATH", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "SKYPIPE_URL"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	if v := ts.Getenv("SKYPIPE_RECONNECT"); v != "" { // a bound the script set
		env = append(env, "SKYPIPE_RECONNECT="+v)
	}
	return env
}

// drained waits until pipes load0..loadN-1 keep nothing, for as long as
// they make progress: it fails only when a bound (limit, below) passes
// with no item taken out, and then calls diagnose first. kept is how many
// items they kept when their receivers started, or -1.
func drained(ts *testscript.TestScript, npipes, kept int, diagnose func()) {
	nc := conn(ts)
	defer nc.Close()
	start := time.Now()
	last, lastChange := kept, start
	var first time.Duration // when the first item was taken out
	// limit is how long drained waits for the next item out. The first
	// waits for twenty receivers to start and claim on a satellite that
	// holds 4 GB, and for the satellite to take the acks that remove it:
	// 17-19 s on a machine running two of these scripts and a busy loop.
	// It gets the wider bound this script gives a busy satellite's
	// answers; every later item waitLimit.
	limit := func() time.Duration {
		if first == 0 {
			return 4 * waitLimit
		}
		return waitLimit
	}
	stuck := func(format string, args ...any) {
		diagnose()
		ts.Fatalf(format, args...)
	}
	for ; ; time.Sleep(drainPoll) {
		byPipe, err := keptByPipe(nc)
		if err != nil {
			// A satellite this busy may answer late: that is no
			// progress, and fails the wait only if it lasts.
			if time.Since(lastChange) > limit() {
				stuck("no kept item taken out in %v: %v", limit(), err)
			}
			continue
		}
		left := 0
		for p := range npipes {
			left += byPipe[fmt.Sprintf("load%d", p)]
		}
		if left == 0 {
			if kept > 0 {
				ts.Logf("drained in %v, the first item out after %v", time.Since(start).Round(time.Millisecond), first.Round(time.Millisecond))
			}
			return
		}
		if left != last {
			if last >= 0 && first == 0 {
				first = time.Since(start)
			}
			last, lastChange = left, time.Now()
		}
		if time.Since(lastChange) > limit() {
			stuck("no kept item taken out in %v; %d left", limit(), left)
		}
	}
}

// drainPoll is how often drained counts what is left: progress is judged
// over waitLimit, and each count costs the satellite it watches a little.
const drainPoll = 250 * time.Millisecond

// skypipeStacks keeps what a receiver wrote before its goroutine dump, and
// of the dump the goroutines in skypipe's own code: each one's header, the
// call it waits in, and its calls in skypipe's packages, so that twenty
// receivers' dumps fit in a CI log.
func skypipeStacks(stderr string) string {
	before, dump, found := strings.Cut(stderr, "\ngoroutine ")
	if !found {
		return stderr
	}
	out := []string{before}
	for _, g := range strings.Split("goroutine "+dump, "\n\n") {
		lines := strings.Split(g, "\n")
		var calls []string // function lines; each is followed by its file line
		for _, l := range lines[1:] {
			if l != "" && !strings.HasPrefix(l, "\t") {
				calls = append(calls, l)
			}
		}
		var ours []string
		waits := true // the first call outside the runtime is the wait
		mine := false
		for _, c := range calls {
			skypipe := strings.Contains(c, "skypipe/skypipe/")
			if runtime := strings.HasPrefix(c, "runtime.") || strings.HasPrefix(c, "internal/"); skypipe || waits && !runtime {
				ours = append(ours, c)
				waits = false
			}
			mine = mine || skypipe
		}
		if mine {
			out = append(out, lines[0])
			out = append(out, ours...)
		}
	}
	return strings.Join(out, "\n")
}
