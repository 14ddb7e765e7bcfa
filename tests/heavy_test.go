package tests

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestHeavy runs heavy/: scripts at a scale that does not fit CI's time or
// its machine (a thousand senders on one pipe, a thousand waiters), whose
// figures BENCHMARKS.md quotes; the fault suite runs the same scripts at
// 300. They run only when asked, best without the race detector, which
// would slow the library clients in the test process many times:
//
//	SKYPIPE_TEST_HEAVY=1 go test ./tests -run TestHeavy -v -timeout 30m
func TestHeavy(t *testing.T) {
	if os.Getenv("SKYPIPE_TEST_HEAVY") != "1" {
		t.Skip("heavy scripts run with SKYPIPE_TEST_HEAVY=1")
	}
	testscript.Run(t, params("heavy"))
}
