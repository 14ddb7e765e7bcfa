package main

// The cases of issue 4, each against a same-run baseline where there is one.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// caseTimeout bounds every process of a case.
const caseTimeout = 10 * time.Minute

// stdinOf turns a possibly nil file into a possibly nil reader (a nil
// *os.File in an io.Reader is not a nil reader).
func stdinOf(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return f
}

// makeInput writes size pseudo-random bytes (seeded: the same every run).
func makeInput(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	src := rand.NewChaCha8([32]byte{'s', 'k', 'y', 'p', 'i', 'p', 'e'})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		_, _ = src.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return f.Close()
}

// transfer is one measured move of a file from a sender to receivers.
type transfer struct {
	wall    time.Duration
	sendRSS int64
	recvRSS int64 // the largest of the receivers'
	satRSS  int64
}

func mbps(bytes int64, d time.Duration) float64 {
	return float64(bytes) / d.Seconds() / 1e6
}

// median returns the median transfer by wall time, with the peaks of all.
func median(ts []transfer) transfer {
	slices.SortFunc(ts, func(a, b transfer) int { return int(a.wall - b.wall) })
	m := ts[len(ts)/2]
	for _, t := range ts {
		m.sendRSS = max(m.sendRSS, t.sendRSS)
		m.recvRSS = max(m.recvRSS, t.recvRSS)
		m.satRSS = max(m.satRSS, t.satRSS)
	}
	return m
}

// verify checks what a receiver wrote against the input.
func (b *bench) verify(what string, s *sink, size int64) {
	ok := s.err == nil && s.n == size && s.sum() == b.inputSum
	detail := fmt.Sprintf("%d of %d bytes, %s %s", s.n, size, b.cfg.check, s.sum())
	if s.err != nil {
		detail += ": " + s.err.Error()
	}
	b.rep.check(what, ok, detail)
}

// baseline moves the input once through the TCP relay.
func (b *bench) baseline(input string, size int64) (transfer, error) {
	relay := exec.Command(b.w.self)
	relay.Env = append(os.Environ(), helperEnv+"=relay")
	relay.Stderr = os.Stderr
	out, err := relay.StdoutPipe()
	if err != nil {
		return transfer{}, err
	}
	if err := relay.Start(); err != nil {
		return transfer{}, err
	}
	defer func() { _ = relay.Process.Kill(); _ = relay.Wait() }()
	addrs, err := readLine(out)
	if err != nil {
		return transfer{}, fmt.Errorf("relay: %w", err)
	}
	inAddr, outAddr, ok := strings.Cut(addrs, " ")
	if !ok {
		return transfer{}, fmt.Errorf("relay said %q", addrs)
	}
	helperEnvOf := func(h string) []string { return append(os.Environ(), helperEnv+"="+h) }
	s := newSink(b.cfg.check)
	recv, err := startProc(helperEnvOf("tcprecv"), nil, s, b.w.self, outAddr)
	if err != nil {
		return transfer{}, err
	}
	f, err := os.Open(input)
	if err != nil {
		return transfer{}, err
	}
	defer f.Close()
	send, err := startProc(helperEnvOf("tcpsend"), f, nil, b.w.self, inAddr)
	if err != nil {
		return transfer{}, err
	}
	if err := errorsOf(send.waitTimeout(caseTimeout), recv.waitTimeout(caseTimeout)); err != nil {
		return transfer{}, err
	}
	b.verify("baseline relay: receiver got every byte", s, size)
	return transfer{wall: recv.end.Sub(send.start), sendRSS: send.maxRSS(), recvRSS: recv.maxRSS()}, nil
}

// live moves the input from a sender to n receivers attached first.
func (b *bench) live(what, input string, size int64, n int) (transfer, error) {
	name := b.w.pipeName(what)
	sinks := make([]*sink, n)
	recvs := make([]*proc, n)
	for i := range n {
		sinks[i] = newSink(b.cfg.check)
		args := []string{"--recv", name}
		if n > 1 {
			args = append(args, "--listen") // fan-out: every receiver a copy
		}
		p, err := b.w.run("recv-"+what, nil, sinks[i], args...)
		if err != nil {
			return transfer{}, err
		}
		recvs[i] = p
	}
	if err := b.w.attached(name, n); err != nil {
		return transfer{}, err
	}
	f, err := os.Open(input)
	if err != nil {
		return transfer{}, err
	}
	defer f.Close()
	b.w.resetSatPeak()
	send, err := b.w.run("send-"+what, f, nil, "--send", name)
	if err != nil {
		return transfer{}, err
	}
	errs := []error{send.waitTimeout(caseTimeout)}
	t := transfer{sendRSS: send.maxRSS(), satRSS: b.w.satPeak()}
	for i, r := range recvs {
		errs = append(errs, r.waitTimeout(caseTimeout))
		t.wall = max(t.wall, r.end.Sub(send.start))
		t.recvRSS = max(t.recvRSS, r.maxRSS())
		b.verify(fmt.Sprintf("%s: receiver %d of %d got every byte", what, i+1, n), sinks[i], size)
	}
	t.wall = max(t.wall, send.elapsed())
	return t, errorsOf(errs...)
}

// kept stores the input with nobody attached, then drains it.
func (b *bench) kept(input string, size int64) (store, drain transfer, err error) {
	name := b.w.pipeName("kept")
	f, err := os.Open(input)
	if err != nil {
		return store, drain, err
	}
	defer f.Close()
	b.w.resetSatPeak()
	send, err := b.w.run("send-kept", f, nil, "--send", name)
	if err != nil {
		return store, drain, err
	}
	if err := send.waitTimeout(caseTimeout); err != nil {
		return store, drain, err
	}
	store = transfer{wall: send.elapsed(), sendRSS: send.maxRSS(), satRSS: b.w.satPeak()}
	b.w.resetSatPeak()
	s := newSink(b.cfg.check)
	recv, err := b.w.run("recv-kept", nil, s, "--recv", name)
	if err != nil {
		return store, drain, err
	}
	if err := recv.waitTimeout(caseTimeout); err != nil {
		return store, drain, err
	}
	drain = transfer{wall: recv.elapsed(), recvRSS: recv.maxRSS(), satRSS: b.w.satPeak()}
	b.verify("kept: the drained item is the stored one", s, size)
	return store, drain, nil
}

// latencies of the trigger case, each a sorted list.
type triggerTimes struct {
	wake      []time.Duration // sender start -> waiter exit
	fireWait  []time.Duration // whole `echo | skypipe t` with a waiter
	fireNone  []time.Duration // whole `echo | skypipe t` with nobody waiting
	firstWait []time.Duration // whole `skypipe t` on a trigger fired first
}

// trigger fires a trigger rounds times at a waiting receiver, rounds times
// at nobody, then takes the triggers fired at nobody, one receiver each.
func (b *bench) trigger(rounds int) (triggerTimes, error) {
	var tt triggerTimes
	newline := filepath.Join(b.w.dir, "newline")
	if err := os.WriteFile(newline, []byte("\n"), 0o600); err != nil {
		return tt, err
	}
	fire := func(name string) (*proc, error) {
		f, err := os.Open(newline)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return b.w.run("fire", f, nil, "--send", name)
	}
	waited := b.w.pipeName("trigger")
	for range rounds {
		s := newSink(b.cfg.check)
		waiter, err := b.w.run("wait", nil, s, "--recv", waited)
		if err != nil {
			return tt, err
		}
		if err := b.w.attached(waited, 1); err != nil {
			return tt, err
		}
		sender, err := fire(waited)
		if err != nil {
			return tt, err
		}
		if err := errorsOf(sender.waitTimeout(time.Minute), waiter.waitTimeout(time.Minute)); err != nil {
			return tt, err
		}
		if s.n != 1 {
			b.rep.check("trigger: the waiter got the newline", false, fmt.Sprintf("%d bytes", s.n))
		}
		tt.wake = append(tt.wake, waiter.end.Sub(sender.start))
		tt.fireWait = append(tt.fireWait, sender.elapsed())
	}
	b.rep.check("trigger: every waiter woke with the newline", len(tt.wake) == rounds, fmt.Sprintf("%d rounds", len(tt.wake)))
	nobody := b.w.pipeName("trigger-first")
	for range rounds {
		sender, err := fire(nobody)
		if err != nil {
			return tt, err
		}
		if err := sender.waitTimeout(time.Minute); err != nil {
			return tt, err
		}
		tt.fireNone = append(tt.fireNone, sender.elapsed())
	}
	got := 0
	for range rounds {
		s := newSink(b.cfg.check)
		waiter, err := b.w.run("wait-first", nil, s, "--recv", nobody)
		if err != nil {
			return tt, err
		}
		if err := waiter.waitTimeout(time.Minute); err != nil {
			return tt, err
		}
		if s.n == 1 {
			got++
		}
		tt.firstWait = append(tt.firstWait, waiter.elapsed())
	}
	b.rep.check("trigger: every trigger fired first was taken once", got == rounds, fmt.Sprintf("%d of %d", got, rounds))
	for _, l := range []*[]time.Duration{&tt.wake, &tt.fireWait, &tt.fireNone, &tt.firstWait} {
		slices.Sort(*l)
	}
	return tt, nil
}

// pct returns the p-th percentile of sorted durations, in milliseconds.
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1)*p/100 + 0.5)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// itemLines writes count items of itemSize bytes as lines: "%08d " and
// filler, ending in '\n'; each line is one item.
func itemLines(path string, count, itemSize int) error {
	var buf bytes.Buffer
	for i := range count {
		buf.WriteString(itemLine(i, itemSize))
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

func itemLine(i, size int) string {
	head := fmt.Sprintf("%08d ", i)
	fill := strings.Repeat(string(rune('a'+i%26)), size-len(head)-1)
	return head + fill + "\n"
}

// smallResult is one way of sending many small items, then draining them.
type smallResult struct {
	send     time.Duration
	drain    time.Duration
	sendRSS  int64
	drainRSS int64
}

// smallPerProcess sends count items with one skypipe process each, conc at
// a time, as a shell loop with xargs -P would.
func (b *bench) smallPerProcess(count, size, conc int) (string, smallResult, error) {
	name := b.w.pipeName("small-proc")
	var res smallResult
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p, err := startProc(b.w.env, strings.NewReader(itemLine(i, size)), nil, b.w.skypipe, "--send", name)
				if err == nil {
					err = p.waitTimeout(time.Minute)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					res.sendRSS = max(res.sendRSS, p.maxRSS())
				}
				mu.Unlock()
			}
		}()
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	res.send = time.Since(start)
	return name, res, firstErr
}

// smallLines sends count items from one process, one item a line (-l).
func (b *bench) smallLines(count, size int) (string, smallResult, error) {
	name := b.w.pipeName("small-lines")
	input := filepath.Join(b.w.dir, "lines")
	if err := itemLines(input, count, size); err != nil {
		return "", smallResult{}, err
	}
	f, err := os.Open(input)
	if err != nil {
		return "", smallResult{}, err
	}
	defer f.Close()
	p, err := b.w.run("send-lines", f, nil, "--send", "--lines", name)
	if err != nil {
		return "", smallResult{}, err
	}
	if err := p.waitTimeout(caseTimeout); err != nil {
		return "", smallResult{}, err
	}
	return name, smallResult{send: p.elapsed(), sendRSS: p.maxRSS()}, nil
}

// drainSmall takes every item of a pipe with one `skypipe -f`, checks that
// each came out once and whole, and stops the receiver.
func (b *bench) drainSmall(what, name string, count, size int, res *smallResult) error {
	seen := make([]int, count)
	bad := 0
	s := newSink(b.cfg.check)
	s.target = int64(count * size)
	s.onLine = func(line []byte) {
		i, err := strconv.Atoi(string(line[:min(8, len(line))]))
		if err != nil || i < 0 || i >= count || string(line) != itemLine(i, size) {
			bad++
			return
		}
		seen[i]++
	}
	recv, err := b.w.run("drain-"+what, nil, s, "--recv", "--follow", name)
	if err != nil {
		return err
	}
	select {
	case <-recv.done:
		return fmt.Errorf("draining %s: receiver exited early: %v", what, recv.wait())
	case <-time.After(caseTimeout):
		_ = recv.cmd.Process.Kill()
		<-recv.done
		return fmt.Errorf("draining %s: got %d of %d bytes in %v", what, s.n, s.target, caseTimeout)
	case <-s.reachedCh:
	}
	_ = recv.cmd.Process.Signal(syscall.SIGINT)
	_ = recv.waitTimeout(time.Minute) // interrupted: exit 130 by design
	res.drainRSS = recv.maxRSS()
	res.drain = s.reached.Sub(recv.start)
	once := 0
	for _, n := range seen {
		if n == 1 {
			once++
		}
	}
	b.rep.check(fmt.Sprintf("small items (%s): each of %d items drained once and whole", what, count),
		once == count && bad == 0 && s.n == int64(count*size), fmt.Sprintf("%d once, %d bad lines, %d bytes", once, bad, s.n))
	return nil
}

func readLine(r io.Reader) (string, error) {
	var line []byte
	var c [1]byte
	for {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				return string(line), nil
			}
			line = append(line, c[0])
		}
		if err != nil {
			return string(line), err
		}
	}
}
