package tests

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestFaults runs the fault suite in faults/: real satellites and real
// skypipe processes, killed, paused and fed hostile input, each script one
// row of RELIABILITY.md. Run it alone with `go test ./tests -run TestFaults`.
func TestFaults(t *testing.T) {
	testscript.Run(t, params("faults"))
}
