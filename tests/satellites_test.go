package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/internal/wire"
	"github.com/skypipe/skypipe/provision"
)

// Satellites as processes of their own, for scripts that kill, pause and
// restart them (the `satellite` command runs one inside the test instead):
//
//	satserve NAME [FLAG...]  run `skypipe serve` as process NAME: store in
//	                         $WORK/NAME, log in NAME.log, pid in NAME.pid;
//	                         on the address NAME had if it ran before. Sets
//	                         NAME_URL, NAME_PORT and SAT_TOKEN, with --http
//	                         NAME_HTTP and NAME_HTTP_PORT, and points
//	                         SKYPIPE_URL at it.
//	satcluster N             run satellites n1..nN as one JetStream cluster
//	                         on loopback; SKYPIPE_URL points at n1. Waits
//	                         until the cluster can create streams.
//	leader PIPE              set LEADER to the member leading PIPE's store,
//	                         FOLLOWER to another member, FOLLOWER_URL to its URL
//	pause PIDFILE DURATION   stop the process (SIGSTOP) for DURATION, then
//	                         let it go on (SIGCONT)

// satToken is the token of a script's satellite processes, made once.
func satToken(ts *testscript.TestScript) (token, file string) {
	file = ts.MkAbs(".sattoken")
	if b, err := os.ReadFile(file); err == nil {
		return string(b), file
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	ts.Check(os.WriteFile(file, []byte(token), 0o600))
	return token, file
}

// freeAddr finds a loopback address nobody listens on.
func freeAddr(ts *testscript.TestScript) string {
	// Outside the kernel's ephemeral range, which every outgoing
	// connection and ":0" listener takes its port from: a port free now
	// in that range can be taken by any process's next connection before
	// the satellite binds it, and the thousands of connections of the
	// many-sender scripts running beside made that happen (a cluster
	// member "did not start").
	if low := ephemeralLow(); low > 11000 {
		for range 100 {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 10000+mrand.IntN(low-10000)))
			if err == nil {
				defer l.Close()
				return l.Addr().String()
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0 if
// it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// addrOf is the address satellite name listens on: the one it had, or a new one.
func addrOf(ts *testscript.TestScript, name, kind string) string {
	key := "SAT_" + name + "_" + kind
	if a := ts.Getenv(key); a != "" {
		return a
	}
	a := freeAddr(ts)
	ts.Setenv(key, a)
	return a
}

// startServe runs `skypipe serve` as a process and waits for its ready line.
func startServe(ts *testscript.TestScript, name string, flags []string) string {
	token, tokenFile := satToken(ts)
	args := append([]string{"serve",
		"--listen", addrOf(ts, name, "ADDR"),
		"--store", ts.MkAbs(name),
		"--token-file", tokenFile,
		"--ready", "--log"}, flags...)
	cmd := exec.Command(skypipeBin(ts), args...)
	cmd.Env = append(os.Environ(), "SKYPIPE_TOKEN=", "SKYPIPE_URL=")
	logf, err := os.OpenFile(ts.MkAbs(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	ts.Check(err)
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reaps it whenever it ends
	ts.Defer(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-exited
	})
	ts.Check(os.WriteFile(ts.MkAbs(name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600))
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		url, ok := strings.CutPrefix(l, "ready ")
		if !ok {
			ts.Fatalf("satellite %s did not start (%q); see %s.log", name, l, name)
		}
		if u, err := neturl.Parse(url); err == nil {
			ts.Setenv(name+"_PORT", u.Port())
		}
		url = strings.Replace(url, "://", "://"+token+"@", 1)
		ts.Setenv(name+"_URL", url)
		ts.Setenv("SAT_TOKEN", token)
		// serve says where its HTTP face is before it says it is ready.
		log, err := os.ReadFile(ts.MkAbs(name + ".log"))
		ts.Check(err)
		if m := httpFaceLine.FindAllSubmatch(log, -1); len(m) > 0 {
			h := string(m[len(m)-1][1])
			ts.Setenv(name+"_HTTP", h)
			if u, err := neturl.Parse(h); err == nil {
				ts.Setenv(name+"_HTTP_PORT", u.Port())
			}
		}
		return url
	case <-time.After(waitLimit):
		ts.Fatalf("satellite %s was not ready in %v", name, waitLimit)
	}
	return ""
}

// httpFaceLine is how serve tells where its HTTP face listens.
var httpFaceLine = regexp.MustCompile(`skypipe: HTTP face on (\S+) `)

func cmdSatServe(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: satserve NAME [FLAG...]")
	}
	ts.Setenv("SKYPIPE_URL", startServe(ts, args[0], args[1:]))
}

func cmdSatCluster(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: satcluster N")
	}
	n := int(intArg(ts, args[0]))
	var routes []string
	for i := 1; i <= n; i++ {
		routes = append(routes, addrOf(ts, fmt.Sprintf("n%d", i), "ROUTE"))
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%d", i)
		startServe(ts, name, []string{"--name", name, "--cluster", addrOf(ts, name, "ROUTE"), "--routes", strings.Join(routes, ",")})
	}
	ts.Setenv("SKYPIPE_URL", ts.Getenv("n1_URL"))
	nc := conn(ts)
	defer nc.Close()
	js, err := jetstream.New(nc)
	ts.Check(err)
	waitFor(ts, "the cluster's JetStream to answer", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil, fmt.Sprint(err)
	})
}

func cmdLeader(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: leader PIPE")
	}
	nc := conn(ts)
	defer nc.Close()
	js, err := jetstream.New(nc)
	ts.Check(err)
	var leader string
	var replicas int
	waitFor(ts, "a leader of pipe "+args[0]+"'s store", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := js.Stream(ctx, wire.NewSubjects(args[0]).Stream)
		if err != nil {
			return false, err.Error()
		}
		info := st.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return false, "no leader"
		}
		leader, replicas = info.Cluster.Leader, len(info.Cluster.Replicas)+1
		return true, ""
	})
	ts.Logf("pipe %s: leader %s, %d replicas", args[0], leader, replicas)
	ts.Setenv("LEADER", leader)
	ts.Setenv("REPLICAS", strconv.Itoa(replicas))
	for i := 1; ; i++ {
		name := fmt.Sprintf("n%d", i)
		if ts.Getenv(name+"_URL") == "" {
			ts.Fatalf("no member other than the leader %s", leader)
		}
		if name != leader {
			ts.Setenv("FOLLOWER", name)
			ts.Setenv("FOLLOWER_URL", ts.Getenv(name+"_URL"))
			return
		}
	}
}

func cmdPause(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: pause PIDFILE DURATION")
	}
	d, err := time.ParseDuration(args[1])
	ts.Check(err)
	pid := readPid(ts, args[0])
	ts.Check(syscall.Kill(pid, syscall.SIGSTOP))
	// The fault is the pause itself: its length is the point, not a wait
	// for something to happen.
	time.Sleep(d)
	ts.Check(syscall.Kill(pid, syscall.SIGCONT))
}

// Access:
//
//	natsdial URL          connect to URL with nats.go directly; with !, the
//	                      satellite must refuse the credentials
//	private PATH...       PATH (and all below it) is readable by its owner
//	                      only: no group or other permission bits
//	noargv SECRETFILE     no process's command line holds the secret in SECRETFILE

func cmdNatsDial(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: natsdial URL")
	}
	nc, err := nats.Connect(args[0], nats.NoReconnect(), nats.Timeout(5*time.Second))
	if nc != nil {
		nc.Close()
	}
	switch {
	case !neg && err != nil:
		ts.Fatalf("connecting: %v", err)
	case neg && err == nil:
		ts.Fatalf("the satellite let a client in with %s", provision.Redact(args[0]))
	case neg && !errors.Is(err, nats.ErrAuthorization):
		ts.Fatalf("refused, but not for its credentials: %v", err)
	}
}

func cmdPrivate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: private PATH...")
	}
	for _, root := range args {
		ts.Check(filepath.Walk(ts.MkAbs(root), func(path string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o077 != 0 {
				ts.Fatalf("%s has mode %v: others may read it", path, fi.Mode().Perm())
			}
			return nil
		}))
	}
}

func cmdNoArgv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: noargv SECRETFILE")
	}
	secret, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	secret = bytes.TrimSpace(secret)
	if len(secret) < 8 {
		ts.Fatalf("%s holds no secret worth looking for", args[0])
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	ts.Check(err)
	seen := 0
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		seen++
		if bytes.Contains(b, secret) {
			ts.Fatalf("%s shows the secret: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
	ts.Logf("looked at the command lines of %d processes", seen)
}

// cmdOutcome checks how a transfer cut by a fault ended, whichever way it
// went: "outcome SENDER RECEIVER WANT GOT" reads SENDER.rc/.err and
// RECEIVER.rc/.err (exit codes and stderr of the two processes). If the
// sender succeeded, the receiver must have got WANT whole in GOT. If it
// failed, it must have said why, and the receiver must not have taken the
// item for whole: it failed saying so, or found nothing (exit 124).
func cmdOutcome(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: outcome SENDER RECEIVER WANT GOT")
	}
	rc := func(name string) (int, string) {
		b, err := os.ReadFile(ts.MkAbs(name + ".rc"))
		ts.Check(err)
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		ts.Check(err)
		e, _ := os.ReadFile(ts.MkAbs(name + ".err"))
		return n, string(e)
	}
	src, serr := rc(args[0])
	rrc, rerr := rc(args[1])
	ts.Logf("sender: exit %d %q; receiver: exit %d %q", src, serr, rrc, rerr)
	if src == 0 {
		if rrc != 0 {
			ts.Fatalf("the sender finished, but the receiver failed")
		}
		cmdSumEq(ts, false, args[2:])
		return
	}
	if !strings.Contains(serr, "skypipe: error: ") {
		ts.Fatalf("the sender failed without saying why")
	}
	switch {
	case rrc == 0:
		ts.Fatalf("the sender failed, yet the receiver took its item for whole")
	case rrc == 124:
	case !strings.Contains(rerr, "skypipe: error: item "):
		ts.Fatalf("the receiver failed without saying which item broke")
	}
}
