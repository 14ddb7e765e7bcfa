package main

import (
	"os"
	"strings"
	"testing"
)

// TestExitCodesREADMEAgreesWithHelp: README.md's exit code table is the
// one --help prints, row for row.
func TestExitCodesREADMEAgreesWithHelp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- exit codes: begin -->\n", "<!-- exit codes: end -->"
	_, rest, ok := strings.Cut(string(readme), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md has no table between %q and %q", begin, end)
	}
	if want := exitCodesMarkdown(); table != want {
		t.Errorf("README.md's exit codes:\n%s\nwant (cmd/skypipe/exitcodes.go):\n%s", table, want)
	}
	seen := map[int]bool{}
	for _, e := range exitCodes {
		if seen[e.code] {
			t.Errorf("exit code %d twice", e.code)
		}
		seen[e.code] = true
	}
}
