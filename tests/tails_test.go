package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/pipes"
)

// Many machines on one pipe, from real processes:
//
//	tails SAT PIPE SENDERS LINES
//	    one aggregator (`skypipe --recv -f PIPE`) attaches; SENDERS senders
//	    (`skypipe --send PIPE`, each fed like `tail -f | skypipe PIPE`) each
//	    write LINES lines, one every tailEvery, all at once (started one
//	    every tailRamp, the lines start once all run); half-way a
//	    listener (`skypipe --recv -f --listen PIPE`) attaches. Then every
//	    sender's stdin ends. Every sender must exit 0; the aggregator must
//	    have every line exactly once, each sender's in order; the listener
//	    each sender's lines from where it attached (within tailSlack of
//	    the moment it was counted attached) to the last, none twice.
//	    SAT is a satellite `satserve SAT` started: its CPU time and memory
//	    are logged, with the senders', aggregator's and listener's memory.
//	    SAT "here" is the one `satellite` started in the test process:
//	    what each connection sent and got through it is logged instead,
//	    and what the satellite carries while every sender is quiet for
//	    tailIdle before its input ends
//	    (a subscriber to ">" would count it all, but it answers every
//	    request, and "no responders" is what skypipe's roll call and
//	    storing rely on).
//
// tailEvery is how often a tailed log grows by a line.
const tailEvery = 100 * time.Millisecond

// tailRamp is the time between two senders' starts: machines come up
// over time, and a thousand processes started at once on the test's two
// cores starve the satellite (and the receivers answering roll calls) for
// tens of seconds, which is a different test.
const tailRamp = 30 * time.Millisecond

// tailSlack is how many lines after the moment a listener was counted
// attached a sender may still send without it: a sender adds a receiver
// when its join arrives, which a busy satellite may deliver after the
// listener answered a roll call.
const tailSlack = 10

// tailLine is line n of sender s: it names both, so any loss, repeat,
// reorder or damage shows.
func tailLine(s, n int) string {
	return fmt.Sprintf("s%04d %06d %s", s, n, strings.Repeat("x", 40))
}

// tailReader is one receiver of tails: its process and what it wrote.
type tailReader struct {
	cmd  *exec.Cmd
	err  bytes.Buffer
	mu   sync.Mutex // guards n while the reader runs
	n    int        // lines read, good or bad
	got  [][]int    // per sender, the line numbers in the order they came
	bad  []string
	done chan struct{}
}

func startTailReader(ts *testscript.TestScript, senders int, args ...string) *tailReader {
	r := &tailReader{got: make([][]int, senders), done: make(chan struct{})}
	r.cmd = exec.Command(skypipeBin(ts), args...)
	r.cmd.Env, r.cmd.Stderr = scriptEnv(ts), &r.err
	out, err := r.cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(r.cmd.Start())
	ts.Defer(func() { _ = r.cmd.Process.Kill() })
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var s, n int
			var pad string
			l := sc.Text()
			r.mu.Lock()
			r.n++
			r.mu.Unlock()
			if _, err := fmt.Sscanf(l, "s%d %d %s", &s, &n, &pad); err != nil || s < 0 || s >= senders || l != tailLine(s, n) {
				r.bad = append(r.bad, l)
				continue
			}
			r.got[s] = append(r.got[s], n)
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return r
}

// waitLines waits until the receiver has read n lines, for limit at most,
// and tells whether it did.
func (r *tailReader) waitLines(n int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		r.mu.Lock()
		got := r.n
		r.mu.Unlock()
		if got >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a bound
	}
}

// stop interrupts a receiver and checks that it ended as interrupted.
func (r *tailReader) stop(ts *testscript.TestScript, what string) {
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	<-r.done
	err := r.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		ts.Fatalf("the %s ended with %v, not as interrupted: %s", what, err, lastLines(r.err.String(), 5))
	}
	if len(r.bad) > 0 {
		ts.Fatalf("the %s wrote %d damaged line(s), e.g. %q", what, len(r.bad), r.bad[0])
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func cmdTails(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 || len(args) > 5 || len(args) == 5 && args[4] != "lib" {
		ts.Fatalf("usage: tails SAT PIPE SENDERS LINES [lib]")
	}
	pipe, senders, lines := args[1], int(intArg(ts, args[2])), int(intArg(ts, args[3]))
	lib := len(args) == 5
	if senders < 1 || lines < 4 {
		ts.Fatalf("tails: at least one sender and 4 lines (a listener attaches half-way)")
	}
	var sat *embedded.Server
	satPid := os.Getpid()
	if args[0] == "here" {
		v, ok := inProcess.Load(ts)
		if !ok {
			ts.Fatalf("tails here: no satellite in the test process (run 'satellite' first)")
		}
		sat = v.(*embedded.Server)
	} else {
		pid, err := os.ReadFile(ts.MkAbs(args[0] + ".pid"))
		ts.Check(err)
		satPid = int(intArg(ts, strings.TrimSpace(string(pid))))
	}

	agg := startTailReader(ts, senders, "--recv", "-f", pipe)
	attachedWithin(ts, pipe, 1)

	cpu0, start, testCPU0 := procCPU(ts, satPid), time.Now(), procCPU(ts, os.Getpid())
	ss := make([]*tailSender, senders)
	ramp := time.NewTicker(tailRamp)
	defer ramp.Stop()
	for i := range ss {
		<-ramp.C
		if lib {
			ss[i] = startLibSender(ts, pipe)
		} else {
			ss[i] = startTailSender(ts, pipe)
		}
	}
	ts.Logf("%d senders started in %v", senders, time.Since(start).Round(time.Millisecond))

	// The logs grow, a line a sender every tailEvery; half-way a listener
	// attaches.
	var lis *tailReader
	attachedAt := -1
	tick := time.NewTicker(tailEvery)
	defer tick.Stop()
	var senderRSS []int
	for n := range lines {
		<-tick.C
		for i, s := range ss {
			if _, err := io.WriteString(s.stdin, tailLine(i, n)+"\n"); err != nil {
				ts.Fatalf("sender %d stopped reading its input at line %d (%v): %s", i, n, err, s.ended())
			}
		}
		if n+1 == lines/2 {
			lis = startTailReader(ts, senders, "--recv", "-f", "--listen", pipe)
			attachedWithin(ts, pipe, 2)
			attachedAt = n + 1
		}
		if n+1 == lines*3/4 {
			for _, s := range ss {
				senderRSS = append(senderRSS, procKiB(ts, s.pid(), "VmRSS"))
			}
		}
	}
	var receivers, senderConns map[uint64]bool
	if sat != nil {
		receivers, senderConns = tailConns(ts, sat, senders)
		idleTraffic(ts, sat, senders)
	}
	for _, s := range ss {
		ts.Check(s.stdin.Close())
	}
	testCPU := procCPU(ts, os.Getpid()) - testCPU0
	// A sender exits once its receivers wrote its item's end: then both
	// have all of it.
	limit := time.NewTimer(4 * waitLimit)
	defer limit.Stop()
	failed := map[string]int{}
	for i, s := range ss {
		select {
		case err := <-s.exit:
			if err != nil {
				failed[fmt.Sprintf("%v: %s", err, lastLines(s.err.String(), 1))]++
			}
		case <-limit.C:
			ts.Fatalf("sender %d had not exited %v after its input ended", i, 4*waitLimit)
		}
	}
	for e, n := range failed {
		ts.Logf("%d sender(s) failed: %s", n, e)
	}
	if len(failed) > 0 {
		ts.Fatalf("not every sender exited 0")
	}
	took, cpu := time.Since(start), procCPU(ts, satPid)-cpu0
	satHWM := procKiB(ts, satPid, "VmHWM")
	aggHWM, lisHWM := procKiB(ts, agg.cmd.Process.Pid, "VmHWM"), procKiB(ts, lis.cmd.Process.Pid, "VmHWM")
	aggCPU, lisCPU := procCPU(ts, agg.cmd.Process.Pid), procCPU(ts, lis.cmd.Process.Pid)
	sendCPU := testCPU // library senders: the test process
	if !lib {
		sendCPU = 0
		for _, s := range ss {
			sendCPU += s.cmd.ProcessState.UserTime() + s.cmd.ProcessState.SystemTime()
		}
	}
	// A sender that heard no answer to its roll call in time (a starved
	// machine) keeps its item, and exits once the item is stored: the
	// aggregator takes it from the store, maybe after that.
	if !agg.waitLines(senders*lines, waitLimit) {
		ts.Logf("the aggregator had not read %d lines %v after the last sender exited; %s", senders*lines, waitLimit, keptNow(ts, pipe))
	}
	agg.stop(ts, "aggregator")
	lis.stop(ts, "listener")

	for s := range senders {
		if !slices.Equal(agg.got[s], seq(0, lines)) {
			ts.Fatalf("the aggregator got sender %d's lines as %s, not each of 0..%d once in order; the sender said: %q; the aggregator said: %q",
				s, brief(agg.got[s]), lines-1, lastLines(ss[s].err.String(), 3), lastLines(agg.err.String(), 5))
		}
		got := lis.got[s]
		if len(got) == 0 || !slices.Equal(got, seq(got[0], lines)) || got[0] > attachedAt+tailSlack {
			ts.Fatalf("the listener, counted attached after line %d, got sender %d's lines as %s, not each from there (or up to %d lines later) to %d once in order", attachedAt-1, s, brief(got), tailSlack, lines-1)
		}
	}
	slices.Sort(senderRSS)
	what := "satellite"
	if sat != nil {
		what = "test process with the satellite"
	}
	if lib {
		ts.Logf("the senders are library clients in the test process, each with its own connection: their CPU and memory are the test process's")
	}
	ts.Logf("%d senders x %d lines in %v: %s CPU %.1f s (%.0f%% of one core), VmHWM %d MiB; senders' CPU %.1f s in all, VmRSS median %d KiB, max %d KiB; aggregator CPU %.1f s, VmHWM %d MiB; listener CPU %.1f s, VmHWM %d MiB",
		senders, lines, took.Round(time.Millisecond), what, cpu.Seconds(), 100*cpu.Seconds()/took.Seconds(), satHWM>>10,
		sendCPU.Seconds(), senderRSS[len(senderRSS)/2], senderRSS[len(senderRSS)-1], aggCPU.Seconds(), aggHWM>>10, lisCPU.Seconds(), lisHWM>>10)
	if sat != nil {
		connTraffic(ts, sat, receivers, senderConns, lines)
	}
}

// tailConns returns the satellite's open connections of the receivers
// (those that answer presence probes) and of the senders (the others).
func tailConns(ts *testscript.TestScript, sat *embedded.Server, senders int) (receivers, others map[uint64]bool) {
	cz, err := sat.NATS().Connz(&server.ConnzOptions{Subscriptions: true, Limit: 1 << 20})
	ts.Check(err)
	receivers, others = map[uint64]bool{}, map[uint64]bool{}
	for _, c := range cz.Conns {
		others[c.Cid] = true
		for _, sub := range c.Subs {
			if strings.Contains(sub, ".rcv.") {
				receivers[c.Cid] = true
				delete(others, c.Cid)
			}
		}
	}
	if len(receivers) != 2 || len(others) != senders {
		ts.Fatalf("%d connections answer presence probes and %d do not, not the aggregator's and the listener's and %d senders'", len(receivers), len(others), senders)
	}
	return receivers, others
}

// tailIdle is how long idleTraffic watches senders that send nothing: three
// of a receiver's probe periods (pipes.DefaultConfig().IdleProbe).
const tailIdle = 6 * time.Second

// idleTraffic logs how many messages a second the satellite carries while
// every sender is attached and quiet, as `tail -f` of a log nobody writes
// to: presence probes and their answers.
func idleTraffic(ts *testscript.TestScript, sat *embedded.Server, senders int) {
	in := func() int64 {
		cz, err := sat.NATS().Connz(&server.ConnzOptions{Limit: 1 << 20})
		ts.Check(err)
		var n int64
		for _, c := range cz.Conns {
			n += c.InMsgs
		}
		return n
	}
	n0, t0 := in(), time.Now()
	time.Sleep(tailIdle) // a measurement window, not a wait for a condition
	n, d := in()-n0, time.Since(t0)
	ts.Logf("%d quiet senders, 2 receivers: %.0f messages a second into the satellite (%.2f a sender a second)", senders, float64(n)/d.Seconds(), float64(n)/d.Seconds()/float64(senders))
}

// connTraffic logs what went through the satellite for each sender, and
// for the receivers, from every connection it had (closed ones too).
func connTraffic(ts *testscript.TestScript, sat *embedded.Server, receivers, senderConns map[uint64]bool, lines int) {
	cz, err := sat.NATS().Connz(&server.ConnzOptions{State: server.ConnAll, Limit: 1 << 20})
	ts.Check(err)
	senders := len(senderConns)
	var sIn, sOut, sInB, sOutB, rIn, rOut, rInB int64
	for _, c := range cz.Conns {
		switch {
		case receivers[c.Cid]:
			rIn, rOut, rInB = rIn+c.InMsgs, rOut+c.OutMsgs, rInB+c.InBytes
		case senderConns[c.Cid]:
			sIn, sOut, sInB, sOutB = sIn+c.InMsgs, sOut+c.OutMsgs, sInB+c.InBytes, sOutB+c.OutBytes
		}
	}
	per := func(v int64) float64 { return float64(v) / float64(senders) }
	ts.Logf("through the satellite, a sender of %d lines: sent %.1f messages (%.1f KiB), got %.1f (%.1f KiB); the two receivers sent %.1f messages a sender (%.1f KiB: acks, roll-call answers, joins) and got %.1f",
		lines, per(sIn), per(sInB)/1024, per(sOut), per(sOutB)/1024, per(rIn), per(rInB)/1024, per(rOut))
}

// tailSender is one sender of tails: a skypipe process, or a library
// client in the test process (lib) with its own connection.
type tailSender struct {
	cmd   *exec.Cmd // nil for a library client
	stdin io.WriteCloser
	err   bytes.Buffer
	exit  chan error
}

func startTailSender(ts *testscript.TestScript, pipe string) *tailSender {
	s := &tailSender{exit: make(chan error, 1)}
	s.cmd = exec.Command(skypipeBin(ts), "--send", pipe)
	s.cmd.Env, s.cmd.Stderr = scriptEnv(ts), &s.err
	var err error
	s.stdin, err = s.cmd.StdinPipe()
	ts.Check(err)
	ts.Check(s.cmd.Start())
	ts.Defer(func() { _ = s.cmd.Process.Kill() })
	go func() { s.exit <- s.cmd.Wait() }()
	return s
}

// startLibSender sends from an OS pipe, as the binary sends its stdin: a
// write does not wait for the sender to read.
func startLibSender(ts *testscript.TestScript, pipe string) *tailSender {
	s := &tailSender{exit: make(chan error, 1)}
	nc := conn(ts)
	ts.Defer(nc.Close)
	r, w, err := os.Pipe()
	ts.Check(err)
	s.stdin = w
	ctx, cancel := context.WithCancel(context.Background())
	ts.Defer(cancel)
	go func() {
		defer r.Close()
		_, err := pipes.New(nc).Send(ctx, pipe, r)
		if err != nil {
			s.err.WriteString(err.Error())
		}
		s.exit <- err
	}()
	return s
}

// keptNow says how many items pipe keeps.
func keptNow(ts *testscript.TestScript, pipe string) string {
	c, done := client(ts)
	defer done()
	list, err := c.List(context.Background())
	if err != nil {
		return fmt.Sprintf("listing the pipes: %v", err)
	}
	for _, p := range list {
		if p.Name == pipe {
			return fmt.Sprintf("%q keeps %d item(s)", pipe, p.Items)
		}
	}
	return fmt.Sprintf("%q keeps nothing", pipe)
}

// ended says how a sender that stopped reading its input ended: its exit
// and the last line of its stderr, once it has exited (within waitLimit).
func (s *tailSender) ended() string {
	select {
	case err := <-s.exit:
		return fmt.Sprintf("%v: %s", err, lastLines(s.err.String(), 1))
	case <-time.After(waitLimit):
		return "it has not exited"
	}
}

func (s *tailSender) pid() int {
	if s.cmd == nil {
		return os.Getpid()
	}
	return s.cmd.Process.Pid
}

// attachedWithin waits until want receivers are attached to pipe; a
// satellite carrying a thousand senders may count them late.
func attachedWithin(ts *testscript.TestScript, pipe string, want int) {
	waitAttached(ts, pipe, want, 4*waitLimit)
}

func seq(from, to int) []int {
	out := make([]int, 0, max(0, to-from))
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// brief shows a list of line numbers short.
func brief(l []int) string {
	if len(l) <= 12 {
		return fmt.Sprint(l)
	}
	return fmt.Sprintf("%v ... %v (%d)", l[:6], l[len(l)-6:], len(l))
}

// procCPU is the CPU time (user and system) process pid has used.
func procCPU(ts *testscript.TestScript, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	ts.Check(err)
	// Fields after the command's name, which ends at the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// procKiB reads a size field (VmRSS, VmHWM) of /proc/PID/status.
func procKiB(ts *testscript.TestScript, pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	ts.Check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	ts.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
