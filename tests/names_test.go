package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/internal/wire"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// cmdNames uses many pipe names once each, as a CI system does with one-off
// trigger names, against a satellite process `satserve SAT` started:
//
//	names SAT N WORKERS
//
// For each of N distinct names it keeps an item with nobody waiting, then
// takes it, through WORKERS connections at once (tests/churn, run as a
// process built without the race detector). Then it
// checks what the names left on the satellite: one stream (skypipe's)
// and nothing in it, nothing listed, and its open files where they were
// after the first name. It logs the satellite's RSS and open files before
// and after; how they compare with a satellite that used one name as
// often is measured by `go run ./tests/bench` (the "names" case).
func cmdNames(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: names SAT N WORKERS")
	}
	pid := readPid(ts, args[0]+".pid")
	n, workers := int(intArg(ts, args[1])), int(intArg(ts, args[2]))
	ep, err := provision.FromURL(ts.Getenv(args[0] + "_URL"))
	ts.Check(err)
	ctx := context.Background()

	freshRSS := procKiB(ts, pid, "VmRSS")
	// The first name makes skypipe's one stream, with its files.
	runChurn(ts, args[0], 1, 1, "first")
	fdsBefore := openFiles(ts, pid)
	elapsed := runChurn(ts, args[0], n, workers, "build-%d-done")
	rssAfter := procKiB(ts, pid, "VmRSS")
	// The workers' connections close as the satellite gets to it.
	var fdsAfter int
	waitFor(ts, "the satellite's open files to be as many as after the first name", func() (bool, string) {
		fdsAfter = openFiles(ts, pid)
		return fdsAfter <= fdsBefore, fmt.Sprintf("%d, were %d", fdsAfter, fdsBefore)
	})
	ts.Logf("%d names kept and taken in %.1f s (%.0f a second, %d at once); satellite: RSS %d MiB fresh, %d MiB after; open files %d after the first name, %d after all",
		n, elapsed, float64(n)/elapsed, workers, freshRSS>>10, rssAfter>>10, fdsBefore, fdsAfter)

	nc, err := provision.Dial(ep)
	ts.Check(err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	ts.Check(err)
	lctx, cancel := context.WithTimeout(ctx, askLimit)
	defer cancel()
	var streams []string
	names := js.StreamNames(lctx)
	for s := range names.Name() {
		streams = append(streams, s)
	}
	ts.Check(names.Err())
	// Besides the store, the decisions of offers with data: records in
	// memory that expire, whatever names they were of.
	slices.Sort(streams)
	if want := []string{wire.Stream, wire.DecisionStream}; !slices.Equal(streams, want) {
		ts.Fatalf("the satellite holds streams %q, want only %q", streams, want)
	}
	if dec, err := js.Stream(lctx, wire.DecisionStream); err != nil || dec.CachedInfo().Config.Storage != jetstream.MemoryStorage || dec.CachedInfo().Config.MaxAge <= 0 {
		ts.Fatalf("%s is not records in memory that expire (%v)", wire.DecisionStream, err)
	}
	st, err := js.Stream(lctx, wire.Stream)
	ts.Check(err)
	if msgs := st.CachedInfo().State.Msgs; msgs != 0 {
		ts.Fatalf("%s holds %d frames after every item was taken", wire.Stream, msgs)
	}
	list, err := pipes.New(nc).List(lctx)
	ts.Check(err)
	if len(list) != 0 {
		ts.Fatalf("ls lists %d pipes after every item was taken", len(list))
	}
}

// runChurn runs the churn helper against satellite sat for rounds rounds
// and returns the seconds they took.
func runChurn(ts *testscript.TestScript, sat string, rounds, workers int, name string) float64 {
	out := churn(ts, sat, "-rounds", strconv.Itoa(rounds), "-workers", strconv.Itoa(workers), "-name", name)
	var got int
	var secs float64
	if _, err := fmt.Sscanf(out, "rounds %d elapsed %g", &got, &secs); err != nil || got != rounds {
		ts.Fatalf("churn said %q", out)
	}
	return secs
}

// openFiles counts the open files of process pid.
func openFiles(ts *testscript.TestScript, pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	ts.Check(err)
	return len(fds)
}

// churn runs the churn helper (tests/churn/cmd/churn, built without the
// race detector) with args against satellite sat and returns its stdout.
func churn(ts *testscript.TestScript, sat string, args ...string) string {
	cmd := exec.Command(churnBin, args...)
	cmd.Env = append(os.Environ(), "SKYPIPE_URL="+ts.Getenv(sat+"_URL"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		ts.Fatalf("churn %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
