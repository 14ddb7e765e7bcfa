package tests

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// helperCommands run as separate processes in scripts (exec NAME ...):
//
//	gen SIZE SEED     SIZE pseudo-random bytes, the same for the same SEED
//	slowcat RATE [AT FILE]
//	                  copy stdin to stdout at RATE bytes a second at most;
//	                  with AT and FILE, stop after AT bytes until FILE
//	                  exists (five minutes at most), so that a script can
//	                  act while a sender is surely mid-item
//	feed LINE...      print the lines, then wait until stdout's reader is gone
//	lines PREFIX N    print "PREFIX 1" ... "PREFIX N"
//	tailx FILE        print FILE's lines as they are appended, like tail -f,
//	                  and exit at a line "STOP"
//	browser ...       drive the satellite's page in headless Chromium
//	                  (browser_test.go)
var helperCommands = map[string]func() int{
	"browser": helperBrowser,
	"gen":     helperGen,
	"slowcat": helperSlowcat,
	"feed":    helperFeed,
	"lines":   helperLines,
	"tailx":   helperTailx,
	// busy_test.go
	"spin": helperSpin,
}

// dieWithParent makes a helper exit when the process that started it does,
// so a failed script leaves no helper behind.
func dieWithParent() {
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if os.Getppid() == 1 {
		os.Exit(1)
	}
}

func usageExit(msg string) int {
	fmt.Fprintln(os.Stderr, "usage:", msg)
	return 2
}

func helperGen() int {
	dieWithParent()
	if len(os.Args) != 3 {
		return usageExit("gen SIZE SEED")
	}
	size, err1 := strconv.ParseInt(os.Args[1], 10, 64)
	seed, err2 := strconv.ParseUint(os.Args[2], 10, 64)
	if err1 != nil || err2 != nil {
		return usageExit("gen SIZE SEED")
	}
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	rng := rand.NewChaCha8(key)
	buf := make([]byte, 1<<20)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	for size > 0 {
		n := int64(len(buf))
		if size < n {
			n = size
		}
		_, _ = rng.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return 1
		}
		size -= n
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

func helperSlowcat() int {
	dieWithParent()
	const usage = "slowcat RATE [AT FILE]"
	if len(os.Args) != 2 && len(os.Args) != 4 {
		return usageExit(usage)
	}
	rate, err := strconv.ParseInt(os.Args[1], 10, 64)
	if err != nil || rate <= 0 {
		return usageExit(usage)
	}
	holdAt, holdFile := int64(-1), ""
	if len(os.Args) == 4 {
		if holdAt, err = strconv.ParseInt(os.Args[2], 10, 64); err != nil || holdAt < 0 {
			return usageExit(usage)
		}
		holdFile = os.Args[3]
	}
	buf := make([]byte, 64<<10)
	// The pace starts at the first byte, not at start: a slowcat that
	// waited long for its input would otherwise run at full speed until
	// it caught up with the time it waited.
	var start time.Time
	var total int64
	for {
		want := int64(len(buf))
		if holdAt >= 0 && total < holdAt {
			want = min(want, holdAt-total)
		}
		n, err := os.Stdin.Read(buf[:want])
		if n > 0 {
			if total == 0 {
				start = time.Now()
			}
			if _, werr := os.Stdout.Write(buf[:n]); werr != nil {
				return 1
			}
			total += int64(n)
			// Throttling, not synchronisation: hold the pace to rate.
			if ahead := time.Duration(total*int64(time.Second)/rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if total == holdAt {
			if !waitFile(holdFile, 5*time.Minute) {
				fmt.Fprintf(os.Stderr, "slowcat: %s did not appear\n", holdFile)
				return 1
			}
			holdAt, total = -1, 0 // the pace starts again at the next byte
		}
		if err == io.EOF {
			return 0
		}
		if err != nil {
			return 1
		}
	}
}

// waitFile waits until the file name exists, for limit at most.
func waitFile(name string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(name); err == nil {
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a bound
	}
	return false
}

func helperFeed() int {
	dieWithParent()
	for _, l := range os.Args[1:] {
		fmt.Println(l)
	}
	// Wait until the reader of stdout is gone (POLLERR on a pipe), for five
	// minutes at most, so that no test leaves this process behind.
	fds := []unix.PollFd{{Fd: 1, Events: 0}}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 1000)
		if err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			return 0
		}
	}
	return 0
}

// readerGone tells whether the reader of stdout, a pipe, is gone.
func readerGone() bool {
	fds := []unix.PollFd{{Fd: 1, Events: 0}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0
}

func helperLines() int {
	dieWithParent()
	if len(os.Args) != 3 {
		return usageExit("lines PREFIX N")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		return usageExit("lines PREFIX N")
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "%s %d\n", os.Args[1], i)
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

func helperTailx() int {
	dieWithParent()
	if len(os.Args) != 2 {
		return usageExit("tailx FILE")
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	// Copy bytes as they are appended, partial lines too, as tail -f does;
	// hold back only a line start that may yet become "STOP\n".
	const stop = "STOP\n"
	var held []byte
	atLineStart := true
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		n, err := f.Read(buf)
		if n == 0 && (err == nil || err == io.EOF) {
			if readerGone() {
				return 0 // as tail -f would on its next write: nobody reads
			}
			time.Sleep(10 * time.Millisecond) // polling the file, as tail -f does
			continue
		}
		if err != nil && err != io.EOF {
			return 1
		}
		data := append(held, buf[:n]...)
		held = nil
		out := data
		for i := 0; i < len(data); i++ {
			lineStart := (i == 0 && atLineStart) || (i > 0 && data[i-1] == '\n')
			if !lineStart {
				continue
			}
			rest := data[i:]
			if strings.HasPrefix(string(rest), stop) {
				_, err := os.Stdout.Write(data[:i])
				if err != nil {
					return 1
				}
				return 0
			}
			if len(rest) < len(stop) && strings.HasPrefix(stop, string(rest)) {
				out, held = data[:i], append([]byte(nil), rest...)
				break
			}
		}
		if len(out) > 0 {
			if _, err := os.Stdout.Write(out); err != nil {
				return 1
			}
			atLineStart = out[len(out)-1] == '\n'
		}
	}
	return 1
}
