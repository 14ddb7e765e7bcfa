package main

// Child processes: starting them, timing them, their peak memory, and
// checking what they write.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// proc is a child process the benchmark times.
type proc struct {
	cmd    *exec.Cmd
	start  time.Time
	end    time.Time
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	sink   *sink
	peak   atomic.Int64 // VmHWM, as last read
}

// startProc starts name with args. stdin may be nil (/dev/null), an
// *os.File or any reader; out, if not nil, receives stdout through a pipe.
func startProc(env []string, stdin io.Reader, out *sink, name string, args ...string) (*proc, error) {
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{}), sink: out}
	p.cmd.Env = env
	p.cmd.Stdin = stdin
	p.cmd.Stderr = &p.stderr
	var w *os.File
	if out != nil {
		r, pw, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		setPipeSize(r)
		p.cmd.Stdout, w = pw, pw
		out.start(r)
	}
	p.start = time.Now()
	err := p.cmd.Start()
	if w != nil {
		w.Close() // the child holds the write end now
	}
	if err != nil {
		if out != nil {
			out.wait()
		}
		return nil, err
	}
	go p.watchPeak()
	go func() {
		p.err = p.cmd.Wait()
		p.end = time.Now()
		if out != nil {
			out.wait()
		}
		close(p.done)
	}()
	return p, nil
}

// setPipeSize makes a pipe hold 1 MiB, so that a reader and a writer on
// different cores switch less often. Baseline and skypipe get the same.
func setPipeSize(f *os.File) {
	const fSetPipeSz = 1031
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fSetPipeSz, 1<<20)
}

// wait waits for the process and returns an error that says what it wrote
// on stderr if it failed.
func (p *proc) wait() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(p.cmd.Args, " "), p.err, strings.TrimSpace(p.stderr.String()))
	}
	return nil
}

// waitTimeout is wait, bounded: a benchmark must not hang on a stuck case.
func (p *proc) waitTimeout(d time.Duration) error {
	select {
	case <-p.done:
		return p.wait()
	case <-time.After(d):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s: still running after %v, killed: %s", strings.Join(p.cmd.Args, " "), d, strings.TrimSpace(p.stderr.String()))
	}
}

// elapsed is the process's wall time from its start to its exit.
func (p *proc) elapsed() time.Duration { return p.end.Sub(p.start) }

// peakEvery is how often the peak RSS of a child is read.
const peakEvery = 5 * time.Millisecond

// watchPeak reads the process's peak resident set (VmHWM, which only
// grows) until it exits. wait4's rusage cannot serve: os/exec starts a
// child with vfork, so the child's ru_maxrss counts this process's own
// peak from before the exec.
func (p *proc) watchPeak() {
	tick := time.NewTicker(peakEvery)
	defer tick.Stop()
	for {
		if v := peakRSS(p.cmd.Process.Pid); v > 0 {
			p.peak.Store(v)
		}
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
	}
}

// maxRSS is the process's peak resident set, in bytes: its VmHWM as last
// read before it exited (within peakEvery of its end).
func (p *proc) maxRSS() int64 { return p.peak.Load() }

// sink reads a child's stdout, counts it and sums it; with lines set it
// also hands every line to a callback.
type sink struct {
	h      hash.Hash
	n      int64
	onLine func([]byte)
	// target, if set: when n first reaches it, reached is set and
	// reachedCh closed.
	target    int64
	reached   time.Time
	reachedCh chan struct{}
	rest      []byte
	wg        sync.WaitGroup
	err       error
}

func newSink(check string) *sink {
	s := &sink{reachedCh: make(chan struct{}), h: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
	if check == "sha256" {
		s.h = sha256.New()
	}
	return s
}

func (s *sink) start(r *os.File) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer r.Close()
		buf := make([]byte, 1<<20)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				s.take(buf[:n])
			}
			if err == io.EOF {
				return
			}
			if err != nil {
				s.err = err
				return
			}
		}
	}()
}

func (s *sink) take(b []byte) {
	s.h.Write(b)
	s.n += int64(len(b))
	if s.target > 0 && s.reached.IsZero() && s.n >= s.target {
		s.reached = time.Now()
		close(s.reachedCh)
	}
	if s.onLine == nil {
		return
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.rest = append(s.rest, b...)
			return
		}
		if len(s.rest) > 0 {
			s.rest = append(s.rest, b[:i+1]...)
			s.onLine(s.rest)
			s.rest = s.rest[:0]
		} else {
			s.onLine(b[:i+1])
		}
		b = b[i+1:]
	}
}

func (s *sink) wait() { s.wg.Wait() }

func (s *sink) sum() string { return fmt.Sprintf("%x", s.h.Sum(nil)) }

// fileSum sums a file the way a sink sums a stream.
func fileSum(path, check string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := newSink(check)
	if _, err := io.Copy(s.h, f); err != nil {
		return "", err
	}
	return s.sum(), nil
}

// peakRSS reads a process's peak resident set (VmHWM) from /proc, in bytes.
func peakRSS(pid int) int64 {
	kb, _ := statusKiB(pid, "VmHWM")
	return kb * 1024
}

// statusKiB reads a size field (VmRSS, VmHWM) of /proc/PID/status, in KiB.
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// resetPeakRSS starts a process's VmHWM afresh from its current RSS
// (Linux: writing 5 to /proc/PID/clear_refs).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}
