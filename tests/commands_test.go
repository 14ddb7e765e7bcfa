package tests

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/internal/wire"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// waitLimit bounds every wait for a condition in a script.
const waitLimit = 30 * time.Second

// widenAfter is how long waitAttached counts with the CLI's census window
// before it widens it.
const widenAfter = 10 * time.Second

// askLimit bounds one look at a satellite by a helper that polls it: a
// cluster replicating fast on a loaded machine can take seconds to answer,
// and a look cut short only costs another.
const askLimit = 15 * time.Second

// pollEvery is how often a wait looks at its condition again.
const pollEvery = 10 * time.Millisecond

// scriptCommands are the commands scripts use beside testscript's own:
//
//	satellite              start a satellite in the test process, set SKYPIPE_URL
//	attached PIPE N [LIMIT] wait until N receivers are attached to PIPE
//	                       (for up to LIMIT, default waitLimit)
//	kept PIPE N            wait until PIPE keeps N items
//	waitsize FILE N        wait until FILE holds at least N bytes
//	waitlines FILE LINE... wait until FILE holds every LINE as a line
//	sigpid SIG PIDFILE     send SIG (KILL, INT, TERM, STOP, CONT) to the pid in PIDFILE
//	waitgone PIDFILE [LIMIT] wait until the process in PIDFILE has exited,
//	                       failing after LIMIT (a liveness bound, default 30s)
//	sumeq FILE FILE        the two files have the same SHA-256
//	linesin GLOB FILE...   every line of each FILE is in the files GLOB matches,
//	                       whole or split across two of them (an item kept
//	                       from the byte where its last receiver left)
//	oldstore PIPE LINE...  keep each LINE as an item in the old layout
//	                       (a stream per pipe), as an upgraded satellite has
//	inject PIPE CASE [kept] publish a live item (or store a kept one) whose
//	                       frames are damaged as CASE says (gap, checksum,
//	                       duplicate, garbage, oversized), as a raw NATS
//	                       client with the satellite's credentials could,
//	                       or that ends with an abort frame (abort), as a
//	                       sender that gave up or a cluster's receiver leaves
var scriptCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"satellite": cmdSatellite,
	"attached":  cmdAttached,
	"kept":      cmdKept,
	"waitsize":  cmdWaitSize,
	"waitlines": cmdWaitLines,
	"sigpid":    cmdSigPid,
	"waitgone":  cmdWaitGone,
	"sumeq":     cmdSumEq,
	"inject":    cmdInject,
	"linesin":   cmdLinesIn,

	// satellites_test.go
	"satserve":   cmdSatServe,
	"satcluster": cmdSatCluster,
	"leader":     cmdLeader,
	"pause":      cmdPause,
	"natsdial":   cmdNatsDial,
	"private":    cmdPrivate,
	"noargv":     cmdNoArgv,
	"outcome":    cmdOutcome,
	// load_test.go
	"load":    cmdLoad,
	"inorder": cmdInOrder,
	// netlink_test.go, busy_test.go, jsdomain_test.go, takenwhole_test.go, items_test.go,
	// account_test.go, tails_test.go
	"link":        cmdLink,
	"busy":        cmdBusy,
	"jsdomain":    cmdJSDomain,
	"takenwhole":  cmdTakenWhole,
	"keptbytes":   cmdKeptBytes,
	"natsaccount": cmdNatsAccount,
	"heads":       cmdHeads,
	"tails":       cmdTails,
	"takeall":     cmdTakeAll,
	// oldlayout_test.go, names_test.go, crowd_test.go
	"oldstore": cmdOldStore,
	"names":    cmdNames,
	"waiters":  cmdWaiters,
}

func cmdSatellite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: satellite")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: ts.MkAbs(".satellite"), Token: token})
	ts.Check(err)
	inProcess.Store(ts, srv)
	ts.Defer(func() { inProcess.Delete(ts); srv.Shutdown() })
	ts.Setenv("SKYPIPE_URL", strings.Replace(srv.URL(), "nats://", "nats://"+token+"@", 1))
}

// inProcess holds each script's satellite started by cmdSatellite, for the
// commands that read its statistics.
var inProcess sync.Map // *testscript.TestScript -> *embedded.Server

// client connects to the satellite a script's skypipe would use.
func client(ts *testscript.TestScript) (*pipes.Client, func()) {
	nc := conn(ts)
	return pipes.New(nc), nc.Close
}

// conn connects to the satellite a script's skypipe would use.
func conn(ts *testscript.TestScript) *nats.Conn {
	var ep provision.Endpoint
	var err error
	paths := provision.Paths{Config: ts.Getenv("XDG_CONFIG_HOME") + "/skypipe", Data: ts.Getenv("XDG_DATA_HOME") + "/skypipe"}
	if u := ts.Getenv("SKYPIPE_URL"); u != "" {
		ep, err = provision.FromURL(u)
	} else if sat, serr := provision.LoadSatellite(paths); serr == nil {
		ep = sat.Endpoint()
	} else {
		ep, err = provision.Local{Paths: paths}.Endpoint()
	}
	ts.Check(err)
	if ca := ts.Getenv("SKYPIPE_TLS_CA"); ca != "" {
		ep.CAPEM, err = os.ReadFile(ts.MkAbs(ca))
		ts.Check(err)
	}
	nc, err := provision.Dial(ep)
	ts.Check(err)
	return nc
}

// waitFor polls cond until it holds, or fails the script after waitLimit.
func waitFor(ts *testscript.TestScript, what string, cond func() (bool, string)) {
	waitWithin(ts, waitLimit, what, cond)
}

// waitWithin polls cond until it holds, or fails the script after limit.
func waitWithin(ts *testscript.TestScript, limit time.Duration, what string, cond func() (bool, string)) {
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("gave up waiting for %s (now: %s)", what, state)
		}
		time.Sleep(pollEvery)
	}
}

func intArg(ts *testscript.TestScript, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		ts.Fatalf("%q is not a number", s)
	}
	return n
}

func cmdAttached(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: attached PIPE N [LIMIT]")
	}
	limit := waitLimit
	if len(args) == 3 {
		var err error
		limit, err = time.ParseDuration(args[2])
		ts.Check(err)
	}
	waitAttached(ts, args[0], int(intArg(ts, args[1])), limit)
}

// waitAttached waits until want receivers are attached to pipe, for up to
// limit. Once fewer than want have answered for widenAfter, the census
// window widens, up to 2 s: a thousand receivers on a loaded machine do
// not all answer within the 100 ms that `skypipe ls` gives them. Not
// before: a census always lasts its whole window, and scripts whose
// receivers time out (--timeout 3s) must not wait seconds for the count.
func waitAttached(ts *testscript.TestScript, pipe string, want int, limit time.Duration) {
	nc := conn(ts)
	defer nc.Close()
	cfg := pipes.DefaultConfig()
	start := time.Now()
	waitWithin(ts, limit, fmt.Sprintf("%d receiver(s) on %q", want, pipe), func() (bool, string) {
		n, err := pipes.New(nc, pipes.WithConfig(cfg)).Attached(context.Background(), pipe)
		ts.Check(err)
		if n < want && time.Since(start) > widenAfter {
			cfg.CensusWindow = min(2*cfg.CensusWindow, 2*time.Second)
		}
		return n == want, fmt.Sprintf("%d (census window %v)", n, cfg.CensusWindow)
	})
}

func cmdKept(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: kept PIPE N")
	}
	want := int(intArg(ts, args[1]))
	c, done := client(ts)
	defer done()
	waitFor(ts, fmt.Sprintf("%d kept item(s) in %q", want, args[0]), func() (bool, string) {
		list, err := c.List(context.Background())
		ts.Check(err)
		n := 0
		for _, p := range list {
			if p.Name == args[0] {
				n = p.Items
			}
		}
		return n == want, fmt.Sprint(n)
	})
}

func cmdWaitSize(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitsize FILE N")
	}
	want := intArg(ts, args[1])
	waitFor(ts, fmt.Sprintf("%s to hold %d bytes", args[0], want), func() (bool, string) {
		fi, err := os.Stat(ts.MkAbs(args[0]))
		if err != nil {
			return false, err.Error()
		}
		return fi.Size() >= want, fmt.Sprint(fi.Size())
	})
}

func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitlines FILE LINE...")
	}
	waitFor(ts, fmt.Sprintf("%s to hold %q", args[0], args[1:]), func() (bool, string) {
		f, err := os.Open(ts.MkAbs(args[0]))
		if err != nil {
			return false, err.Error()
		}
		defer f.Close()
		have := map[string]bool{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			have[sc.Text()] = true
		}
		var missing []string
		for _, l := range args[1:] {
			if !have[l] {
				missing = append(missing, l)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %q", missing)
	})
}

var signals = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "TERM": syscall.SIGTERM,
	"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT,
}

func readPid(ts *testscript.TestScript, file string) int {
	var pid int
	waitFor(ts, "a pid in "+file, func() (bool, string) {
		b, err := os.ReadFile(ts.MkAbs(file))
		if err != nil {
			return false, err.Error()
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil, string(b)
	})
	return pid
}

func cmdSigPid(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: sigpid SIG PIDFILE")
	}
	sig, ok := signals[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %q", args[0])
	}
	ts.Check(syscall.Kill(readPid(ts, args[1]), sig))
}

func cmdWaitGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: waitgone PIDFILE [LIMIT]")
	}
	limit := waitLimit
	if len(args) == 2 {
		var err error
		limit, err = time.ParseDuration(args[1])
		ts.Check(err)
	}
	pid := readPid(ts, args[0])
	waitWithin(ts, limit, fmt.Sprintf("process %d to exit", pid), func() (bool, string) {
		err := syscall.Kill(pid, 0)
		if err == syscall.ESRCH {
			return true, ""
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return strings.Contains(string(b), ") Z"), "running"
	})
}

func cmdSumEq(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: sumeq FILE FILE")
	}
	a, b := sum(ts, args[0]), sum(ts, args[1])
	if (a == b) == neg {
		ts.Fatalf("sha256 of %s is %s, of %s is %s", args[0], a, args[1], b)
	}
}

func sum(ts *testscript.TestScript, file string) string {
	f, err := os.Open(ts.MkAbs(file))
	ts.Check(err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	ts.Check(err)
	return hex.EncodeToString(h.Sum(nil))
}

// frame builds a frame as pipes/frame.go documents it, independently of the
// code under test: version 1, flags, CRC-32C, offset, data.
func frame(flags byte, offset uint64, data string) []byte {
	b := make([]byte, 16+len(data))
	b[0], b[1] = 1, flags
	binary.BigEndian.PutUint64(b[8:16], offset)
	copy(b[16:], data)
	tab := crc32.MakeTable(crc32.Castagnoli)
	sum := crc32.Update(0, tab, b[0:4])
	sum = crc32.Update(sum, tab, b[8:16])
	sum = crc32.Update(sum, tab, b[16:])
	binary.BigEndian.PutUint32(b[4:8], sum)
	return b
}

func cmdInject(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 || (len(args) == 3 && args[2] != "kept") {
		ts.Fatalf("usage: inject PIPE gap|checksum|duplicate|garbage|oversized|abort [kept]")
	}
	const lineStart = 1 << 2
	first := frame(lineStart, 0, "good line\n")
	var bad [][]byte
	switch args[1] {
	case "gap":
		bad = [][]byte{frame(lineStart, 100, "after a gap\n")}
	case "checksum":
		f := frame(lineStart, 10, "damaged\n")
		f[len(f)-2] ^= 0x20
		bad = [][]byte{f}
	case "duplicate":
		bad = [][]byte{frame(lineStart, 0, "good line\n")}
	case "garbage":
		bad = [][]byte{[]byte("not a frame at all")}
	case "oversized":
		bad = [][]byte{frame(lineStart, 10, strings.Repeat("x", 512<<10))}
	case "abort":
		const end, abort = 1 << 0, 1 << 3
		bad = [][]byte{frame(end|abort, 10, "")}
	default:
		ts.Fatalf("unknown case %q", args[1])
	}
	nc := conn(ts)
	defer nc.Close()
	item := "injected" + args[1]
	if len(args) == 3 {
		// A kept item: a head frame, then the rest, stored as a sender would.
		s := wire.NewSubjects(args[0])
		head, rest := s.Head(item), s.Kept(item)
		subjects := []string{head}
		frames := [][]byte{frame(0, 0, ""), first}
		frames = append(frames, bad...)
		for range frames[1:] {
			subjects = append(subjects, rest)
		}
		for i, f := range frames {
			resp, err := nc.Request(subjects[i], f, 5*time.Second)
			ts.Check(err)
			if strings.Contains(string(resp.Data), `"error"`) {
				ts.Fatalf("the store refused frame %d: %s", i, resp.Data)
			}
		}
		return
	}
	subject := wire.NewSubjects(args[0]).Live(item)
	for _, f := range append([][]byte{first}, bad...) {
		ts.Check(nc.Publish(subject, f))
	}
	ts.Check(nc.Flush())
}

func cmdLinesIn(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: linesin GLOB FILE...")
	}
	outs, err := filepath.Glob(ts.MkAbs(args[0]))
	ts.Check(err)
	have := map[string]bool{}
	for _, f := range outs {
		b, err := os.ReadFile(f)
		ts.Check(err)
		for _, l := range strings.Split(string(b), "\n") {
			have[l] = true
		}
	}
	missing := 0
	for _, want := range args[1:] {
		b, err := os.ReadFile(ts.MkAbs(want))
		ts.Check(err)
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if have[l] || split(l, have) {
				continue
			}
			if missing++; missing <= 5 {
				ts.Logf("missing line %q of %s", l, want)
			}
		}
	}
	if missing > 0 {
		ts.Fatalf("%d line(s) lost", missing)
	}
}

// split tells whether line stands in have as a head and a tail.
func split(line string, have map[string]bool) bool {
	for i := 1; i < len(line); i++ {
		if have[line[:i]] && have[line[i:]] {
			return true
		}
	}
	return false
}
