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

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/pipes"
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

	if mode == "kept" {
		for p := range npipes {
			if n := keptItems(ts, fmt.Sprintf("load%d", p)); n == 0 {
				ts.Fatalf("pipe load%d keeps nothing before the receivers start", p)
			}
		}
		startReceivers()
	}
	// Everything is out when no pipe keeps an item: a receiver removes a
	// kept item only once it wrote it out whole; a live sender returns only
	// once its receivers wrote its end.
	drained(ts, npipes)
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
	c, done := client(ts)
	defer done()
	var list []pipes.PipeInfo
	waitWithin(ts, 4*waitLimit, "the list of pipes", func() (bool, string) {
		var err error
		list, err = c.List(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	for _, p := range list {
		if p.Name == pipe {
			return p.Items
		}
	}
	return 0
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
// they make progress: it fails only when waitLimit passes with no item
// taken out.
func drained(ts *testscript.TestScript, npipes int) {
	c, done := client(ts)
	defer done()
	last, lastChange := -1, time.Now()
	for {
		list, err := c.List(context.Background())
		if err != nil {
			// A satellite this busy may answer late: that is no
			// progress, and fails the wait only if it lasts.
			if time.Since(lastChange) > waitLimit {
				ts.Fatalf("no kept item taken out in %v: %v", waitLimit, err)
			}
			continue
		}
		left := 0
		for _, p := range list {
			if strings.HasPrefix(p.Name, "load") {
				left += p.Items
			}
		}
		if left == 0 {
			return
		}
		if left != last {
			last, lastChange = left, time.Now()
		}
		if time.Since(lastChange) > waitLimit {
			ts.Fatalf("no kept item taken out in %v; %d left", waitLimit, left)
		}
		time.Sleep(pollEvery)
	}
}
