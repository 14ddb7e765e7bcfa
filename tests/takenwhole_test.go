package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// takenwhole RECEIVER PIPE WANT GOT
//
//	checks how a receiver cut off by a fault (a stalled or lost link) ended,
//	whichever way it went, from RECEIVER.rc and RECEIVER.err (its exit code
//	and stderr). If it exited 0, it must have written WANT whole to GOT. If
//	not, it must have said why (skypipe: error: ...), and the kept item
//	must still be whole in PIPE: a new receiver takes it, whole, and the
//	pipe is then empty. A fault on the reader's side never costs the item.

func cmdTakenWhole(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: takenwhole RECEIVER PIPE WANT GOT")
	}
	name, pipe, want, got := args[0], args[1], args[2], args[3]
	b, err := os.ReadFile(ts.MkAbs(name + ".rc"))
	ts.Check(err)
	rc, err := strconv.Atoi(strings.TrimSpace(string(b)))
	ts.Check(err)
	stderr, _ := os.ReadFile(ts.MkAbs(name + ".err"))
	ts.Logf("receiver: exit %d %q", rc, stderr)
	if rc == 0 {
		cmdSumEq(ts, false, []string{want, got})
		return
	}
	if !bytes.Contains(stderr, []byte("skypipe: error: ")) {
		ts.Fatalf("the receiver failed without saying why")
	}
	// The item must be still there, whole, for the next receiver.
	again := got + ".again"
	out, err := os.Create(ts.MkAbs(again))
	ts.Check(err)
	defer out.Close()
	cmd := exec.Command(filepath.Join(binDir, "skypipe"), "--recv", "--timeout", "30s", pipe)
	cmd.Env, cmd.Stdout = scriptEnv(ts), out
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		ts.Fatalf("the receiver failed, and the next one did not get the item whole: %v: %s", err, errb.String())
	}
	cmdSumEq(ts, false, []string{want, again})
	cmdKept(ts, false, []string{pipe, "0"})
}
