package main

import (
	"testing"
	"time"
)

func TestPipeLabel(t *testing.T) {
	for name, want := range map[string]string{
		"":          "the default pipe",
		"files":     "pipe files",
		"my files":  `pipe "my files"`,
		"bell\a":    `pipe "bell\a"`,
		"caf\u00e9": "pipe caf\u00e9",
	} {
		if got := pipeLabel(name); got != want {
			t.Errorf("pipeLabel(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		120 * time.Millisecond:   "0.1s",
		3140 * time.Millisecond:  "3.1s",
		12600 * time.Millisecond: "13s",
		72 * time.Second:         "1m12s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// A transfer's summary counts from its first byte to its end.
func TestActivitySummary(t *testing.T) {
	a := &activity{pipe: "pipe files"}
	a.bytes.Store(3 << 20)
	a.first = time.Unix(100, 0)
	a.last = a.first.Add(2 * time.Second)
	if got, want := a.size()+" to "+a.pipe+a.took(), "3.0 MiB to pipe files in 2.0s (1.5 MiB/s)"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	a.last = a.first.Add(10 * time.Millisecond)
	if got := a.took(); got != "" {
		t.Errorf("a transfer of no time worth saying: %q", got)
	}
}
