package main

import (
	"os"
	"runtime/pprof"
)

// profiled runs f, under a CPU profile written to the file that
// SKYPIPE_CPUPROFILE names, if it names one: for `go tool pprof`, and for
// the benchmark's -profile option (tests/bench).
func profiled(f func() int) int {
	path := os.Getenv("SKYPIPE_CPUPROFILE")
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		printf("warning: no CPU profile: %v", err)
		return f()
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		printf("warning: no CPU profile: %v", err)
		out.Close()
		return f()
	}
	code := f()
	pprof.StopCPUProfile()
	if err := out.Close(); err != nil {
		printf("warning: CPU profile: %v", err)
	}
	return code
}
