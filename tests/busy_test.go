package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// A loaded machine, for scripts whose fault shows only when the CPUs are
// busy:
//
//	busy N   start N processes that each keep a CPU busy until the script
//	         ends (they are killed then, or when the test process dies, and
//	         give up by themselves after 30 minutes)
//
// and the helper they run:
//
//	spin     burn a CPU

// scriptCondition answers the conditions scripts may use beside
// testscript's own:
//
//	[env:NAME]  NAME is set, not empty, in the test's environment; e.g.
//	            [!env:SKYPIPE_TEST_BUSY] skip, for a script that loads the
//	            machine and runs only when asked for
func scriptCondition(cond string) (bool, error) {
	if name, ok := strings.CutPrefix(cond, "env:"); ok && name != "" {
		return os.Getenv(name) != "", nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// spinLimit is how long a spin helper burns at most.
const spinLimit = 30 * time.Minute

func cmdBusy(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: busy N")
	}
	n := int(intArg(ts, args[0]))
	spin := ""
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		if fi, err := os.Stat(filepath.Join(dir, "spin")); err == nil && !fi.IsDir() {
			spin = filepath.Join(dir, "spin")
			break
		}
	}
	if spin == "" {
		ts.Fatalf("no spin helper on the script's PATH")
	}
	for range n {
		cmd := exec.Command(spin)
		cmd.Env = scriptEnv(ts)
		ts.Check(cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		ts.Defer(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	ts.Logf("%d busy loop(s) running", n)
}

func helperSpin() int {
	dieWithParent()
	deadline := time.Now().Add(spinLimit)
	x := uint64(1)
	for time.Now().Before(deadline) {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if x == 0 { // keeps the loop from being optimised away
		return 1
	}
	return 0
}
