package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/internal/wire"
)

// Kept items seen from the satellite's side:
//
//	keptbytes PIPE N   wait until PIPE keeps at least N bytes (framing
//	                   included), e.g. part of an item still being stored
//	heads PIPE VAR     set VAR to the ids of the items PIPE keeps, oldest
//	                   first, separated by spaces (read from the items'
//	                   head frames in the pipe's stream, as a NATS client
//	                   with the satellite's credentials can)
//	takeall PIPE TRIES SENDER ITEM GOOD...
//	                   run receivers of PIPE one after another, each with a
//	                   bound (--timeout 20s for nothing to arrive, killed
//	                   after 2 minutes in all), until every GOOD file has
//	                   come out whole, in any order, at most TRIES of them.
//	                   ITEM is what the process SENDER (SENDER.rc) sent: if
//	                   it succeeded, ITEM must come out whole as well; if
//	                   not, no receiver may take it for whole. A receiver
//	                   that fails must say why (skypipe: error: ...); one that exits
//	                   0 must have written one of the files, whole. Outputs
//	                   are left in take1.out, take1.err, ...

func cmdKeptBytes(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: keptbytes PIPE N")
	}
	want := uint64(intArg(ts, args[1]))
	c, done := client(ts)
	defer done()
	waitFor(ts, fmt.Sprintf("%q to keep %d bytes", args[0], want), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), askLimit)
		defer cancel()
		list, err := c.List(ctx)
		if err != nil {
			return false, err.Error() // a cluster electing a leader answers later
		}
		for _, p := range list {
			if p.Name == args[0] {
				return p.Bytes >= want, fmt.Sprint(p.Bytes)
			}
		}
		return false, "nothing kept"
	})
}

func cmdHeads(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: heads PIPE VAR")
	}
	nc := conn(ts)
	defer nc.Close()
	js, err := jetstream.New(nc)
	ts.Check(err)
	headAll := wire.NewSubjects(args[0]).HeadAll()
	var ids []string
	waitFor(ts, "the heads of pipe "+args[0], func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), askLimit)
		defer cancel()
		ids = ids[:0]
		st, err := js.Stream(ctx, wire.NewSubjects(args[0]).Stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		for seq := uint64(1); ; {
			m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(headAll))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return true, ""
			}
			if err != nil {
				return false, err.Error()
			}
			ids = append(ids, m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
			seq = m.Sequence + 1
		}
	})
	ts.Logf("pipe %s keeps %d item(s): %q", args[0], len(ids), ids)
	ts.Setenv(args[1], strings.Join(ids, " "))
}

// takeBound is how long one receiver of takeall may run in all.
const takeBound = 2 * time.Minute

func cmdTakeAll(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 5 {
		ts.Fatalf("usage: takeall PIPE TRIES SENDER ITEM GOOD...")
	}
	pipe, tries, sender, item := args[0], int(intArg(ts, args[1])), args[2], args[3]
	b, err := os.ReadFile(ts.MkAbs(sender + ".rc"))
	ts.Check(err)
	senderOK := strings.TrimSpace(string(b)) == "0"
	want := map[string]string{} // sum -> file still to come out
	for _, f := range args[4:] {
		want[sum(ts, f)] = f
	}
	itemSum := sum(ts, item)
	if senderOK {
		want[itemSum] = item
	}
	for i := 1; len(want) > 0; i++ {
		if i > tries {
			var left []string
			for _, f := range want {
				left = append(left, f)
			}
			ts.Fatalf("after %d receivers, %q never came out", tries, left)
		}
		out := fmt.Sprintf("take%d.out", i)
		f, err := os.Create(ts.MkAbs(out))
		ts.Check(err)
		ctx, cancel := context.WithTimeout(context.Background(), takeBound)
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "skypipe"), "--recv", "--timeout", "20s", pipe)
		var stderr bytes.Buffer
		cmd.Env, cmd.Stdout, cmd.Stderr = scriptEnv(ts), f, &stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGKILL) }
		start := time.Now()
		err = cmd.Run()
		hung := ctx.Err() != nil
		cancel()
		f.Close()
		ts.Check(os.WriteFile(ts.MkAbs(fmt.Sprintf("take%d.err", i)), stderr.Bytes(), 0o600))
		got := sum(ts, out)
		rc := cmd.ProcessState.ExitCode()
		ts.Logf("receiver %d: exit %d after %v, sha256 %.12s, %q", i, rc, time.Since(start).Round(time.Millisecond), got, stderr.String())
		switch {
		case hung:
			ts.Fatalf("receiver %d ran past its bound of %v: a wait without a bound", i, takeBound)
		case err == nil && got == itemSum && !senderOK:
			ts.Fatalf("receiver %d took the item whose sender failed for whole", i)
		case err == nil && want[got] == "":
			ts.Fatalf("receiver %d exited 0 with %s, which is none of the items still due", i, out)
		case err == nil:
			delete(want, got)
		case rc == 124:
			// Nothing arrived in time: the items still due are hidden, or
			// the cluster was not ready; it counts as a try.
		case !strings.Contains(stderr.String(), "skypipe: error: "):
			ts.Fatalf("receiver %d failed (%v) without saying why", i, err)
		}
	}
}
