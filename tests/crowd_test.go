package tests

import (
	"fmt"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdWaiters runs a crowd of waiting takers against a satellite process
// `satserve SAT` started, each on a connection of its own as a machine
// has (tests/churn.Waiters, in the churn helper built without the race
// detector: a thousand skypipe processes do not fit the test machine's
// two cores, see BENCHMARKS.md):
//
//	waiters SAT TAKERS NAMES
//
// TAKERS takers wait on one name (NAMES 1) or each on its own (NAMES =
// TAKERS), counted attached by ls's census; then each name is fired
// (the one name TAKERS times). Each taker must get exactly one whole
// item, every fire exactly one taker (its own name's), nothing kept. It
// logs the times and the satellite's peak RSS.
func cmdWaiters(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waiters SAT TAKERS NAMES")
	}
	pid := readPid(ts, args[0]+".pid")
	takers, names := int(intArg(ts, args[1])), int(intArg(ts, args[2]))
	out := churn(ts, args[0], "-takers", strconv.Itoa(takers), "-names", strconv.Itoa(names))
	var got, live int
	var attach, fire float64
	if _, err := fmt.Sscanf(out, "takers %d attach %g fire %g live %d", &got, &attach, &fire, &live); err != nil || got != takers {
		ts.Fatalf("churn said %q", out)
	}
	ts.Logf("%d takers on %d name(s): all attached in %.2f s; %d fires in %.2f s, %d of them live to a waiting taker; satellite peak RSS %d MiB",
		takers, names, attach, takers, fire, live, procKiB(ts, pid, "VmHWM")>>10)
}
