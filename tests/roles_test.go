package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// roleCommands check what takers and listeners got:
//
//	exactlyonce GLOB WANT [LIMIT]  wait (LIMIT, default waitLimit) until the
//	                               files matching GLOB hold every line of
//	                               WANT, then fail unless each line is there
//	                               exactly once and nothing else is
//	waitgrep FILE REGEXP           wait until a line of FILE matches REGEXP
var roleCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"exactlyonce": cmdExactlyOnce,
	"waitgrep":    cmdWaitGrep,
}

// linesOf counts the lines of the files matching glob.
func linesOf(ts *testscript.TestScript, glob string) map[string]int {
	files, err := filepath.Glob(ts.MkAbs(glob))
	ts.Check(err)
	got := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		ts.Check(err)
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if l != "" {
				got[l]++ // a line without its newline counts apart
			}
		}
	}
	return got
}

func cmdExactlyOnce(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: exactlyonce GLOB WANT [LIMIT]")
	}
	limit := waitLimit
	if len(args) == 3 {
		var err error
		limit, err = time.ParseDuration(args[2])
		ts.Check(err)
	}
	b, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	want := strings.SplitAfter(string(b), "\n")
	if want[len(want)-1] == "" {
		want = want[:len(want)-1]
	}
	var got map[string]int
	waitWithin(ts, limit, fmt.Sprintf("every line of %s in %s", args[1], args[0]), func() (bool, string) {
		got = linesOf(ts, args[0])
		missing := 0
		for _, l := range want {
			if got[l] == 0 {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d lines missing", missing, len(want))
	})
	wanted := map[string]bool{}
	for _, l := range want {
		wanted[l] = true
	}
	var bad []string
	for l, n := range got {
		switch {
		case !wanted[l]:
			bad = append(bad, fmt.Sprintf("%q is not a line of %s (%d times)", l, args[1], n))
		case n > 1:
			bad = append(bad, fmt.Sprintf("%q came %d times", l, n))
		}
	}
	sort.Strings(bad)
	for i, m := range bad {
		if i == 10 {
			ts.Logf("... and %d more", len(bad)-10)
			break
		}
		ts.Logf("%s", m)
	}
	if len(bad) > 0 {
		ts.Fatalf("%d line(s) duplicated or foreign in %s", len(bad), args[0])
	}
}

func cmdWaitGrep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitgrep FILE REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	waitFor(ts, fmt.Sprintf("a line of %s to match %q", args[0], args[1]), func() (bool, string) {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		if err != nil {
			return false, err.Error()
		}
		for _, l := range strings.Split(string(b), "\n") {
			if re.MatchString(l) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d bytes, no match", len(b))
	})
}
