package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the baseline's helpers, as the
// benchmark binary does.
func TestMain(m *testing.M) {
	if ok, err := runHelper(); ok {
		if err != nil {
			os.Stderr.WriteString("bench helper: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole benchmark at tiny sizes: every case produces its
// rows with figures, every receiver's bytes match the input, and the report
// file holds the table. It asserts no timing: figures are for the full run.
func TestSmoke(t *testing.T) {
	cfg := smoke(defaults())
	cfg.out = filepath.Join(t.TempDir(), "BENCHMARKS.md")
	cfg.command = "go test ./tests/bench"
	rep, err := run(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.failedChecks() {
		t.Errorf("check failed: %s", f)
	}
	if len(rep.checks) < cfg.fanout+4 {
		t.Errorf("%d byte-exact checks, want at least one per receiver of every case", len(rep.checks))
	}
	want := []string{
		"throughput, TCP relay (baseline)", "throughput, skypipe",
		"store (sender to its exit)", "drain (receiver to its exit)",
		"sender start to waiter exit, p50", "whole `echo | skypipe t`, a waiter, p50",
		"whole `echo | skypipe t`, nobody waiting, p50", "aggregate throughput",
		"send, one process per item, 8 at once", "send, one `skypipe --lines` (an item a line)",
		"drain, one `skypipe -f` (the --lines items)", "peak RSS, sender", "peak RSS, receiver", "peak RSS, satellite",
		// The wan case.
		"throughput, TCP relay through the same links (baseline)", "store: throughput", "drain: throughput",
		"TCP relay: sender start to receiver exit, connect + 1 byte (baseline)",
		"a waiter: whole `echo | skypipe --send t`", "a waiter: sender start to waiter exit",
		"whole `echo | skypipe --send t`, nobody waiting (sending a kept item)", "whole `skypipe --recv t` taking it",
	}
	have := map[string]row{}
	for _, r := range rep.rows {
		have[r.Measure] = r
		if r.Value <= 0 {
			t.Errorf("%s / %s: %v %s, want a positive figure", r.Case, r.Measure, r.Value, r.Unit)
		}
		if r.Target != nil && strings.Contains(r.Target.text, "baseline") && r.Base <= 0 {
			t.Errorf("%s / %s: a target against a baseline, without the baseline", r.Case, r.Measure)
		}
	}
	if _, err := exec.LookPath("curl"); err == nil {
		want = append(want, "live throughput, skypipe HTTP face", "kept: store (PUT to its answer)", "kept: drain (GET to its end)")
	} else {
		t.Log("curl is not installed: the http case was skipped")
	}
	for _, m := range want {
		if _, ok := have[m]; !ok {
			t.Errorf("no row %q", m)
		}
	}
	md, err := os.ReadFile(cfg.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{beginMark, endMark, "| CPU |", "| Go |", "throughput, skypipe", "`go test ./tests/bench`",
		wanHeading, wanBeginMark, wanEndMark, "| 20ms | trigger | a waiter: sender start to waiter exit |"} {
		if !strings.Contains(string(md), s) {
			t.Errorf("the report lacks %q", s)
		}
	}
}

// TestMarkdownKeepsNotes: a new run replaces the generated part of the
// report and keeps what was written around it.
func TestMarkdownKeepsNotes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	old := "# Benchmarks\n\nnotes before\n\n" + beginMark + "\nold table\n" + endMark + "\n\n## Profiles\nnotes after\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := &report{cfg: defaults()}
	rep.add(row{Case: "c", Measure: "m", Value: 1, Unit: "ms"})
	if err := rep.writeMarkdown(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, s := range []string{"notes before", "notes after", "| c | m | 1.00 ms |"} {
		if !strings.Contains(got, s) {
			t.Errorf("report lacks %q:\n%s", s, got)
		}
	}
	if strings.Contains(got, "old table") || strings.Count(got, beginMark) != 1 {
		t.Errorf("the old generated part survived:\n%s", got)
	}
}

// TestMarkdownWanSection: a run of the wan case alone writes its own
// table, under its own heading, and leaves the main table; a later one
// replaces it.
func TestMarkdownWanSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	old := "# Benchmarks\n\n" + beginMark + "\nold table\n" + endMark + "\n\n## Notes\nnotes after\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{1, 2} {
		rep := &report{cfg: defaults()}
		rep.add(row{Section: "wan", RTT: 20 * time.Millisecond, Case: "trigger", Measure: "m", Value: 70 * v, Unit: "ms", Target: inRTTs(4, 20*time.Millisecond)})
		if err := rep.writeMarkdown(path); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, s := range []string{"old table", "notes after", wanHeading + wanBeginMark, "| 20ms | trigger | m | 140 ms | 7.0 |  |  | <= 4 RTT | **no** |"} {
		if !strings.Contains(got, s) {
			t.Errorf("report lacks %q:\n%s", s, got)
		}
	}
	if strings.Contains(got, "70.0 ms") || strings.Count(got, wanBeginMark) != 1 || strings.Count(got, wanHeading) != 1 {
		t.Errorf("the old wan table survived, or came twice:\n%s", got)
	}
}

// TestWanLinkFlags: -wan-rate takes a line rate as tc writes it,
// -wan-window a TCP window in KiB, -wan-handshake TCP's handshake, and the
// wan case's rows then name them.
func TestWanLinkFlags(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		rate   int64
		window int64
		label  string
		bad    bool
	}{
		{args: []string{"-wan-rate", "off"}, label: ""},
		{args: []string{"-wan-rate", "100mbit"}, rate: 12_500_000, label: ", lines of 100mbit"},
		{args: []string{"-wan-rate", "1gbit"}, rate: 125_000_000, label: ", lines of 1000mbit"},
		{args: []string{"-wan-window", "4096"}, window: 4 << 20, label: ", TCP windows of 4 MiB"},
		{args: []string{"-wan-window", "512", "-wan-rate", "1gbit"}, rate: 125_000_000, window: 512 << 10, label: ", lines of 1000mbit, TCP windows of 512 KiB"},
		{args: []string{"-wan-handshake", "-wan-window", "4096"}, window: 4 << 20, label: ", TCP handshakes, TCP windows of 4 MiB"},
		{args: []string{"-wan-rate", "fast"}, bad: true},
		{args: []string{"-wan-window", "-1"}, bad: true},
	} {
		cfg, err := parseFlags(tc.args)
		if tc.bad {
			if err == nil {
				t.Errorf("%v: no error", tc.args)
			}
			continue
		}
		got := linkLabel(cfg)
		if err != nil || cfg.wanRate != tc.rate || cfg.wanWindow != tc.window || got != tc.label {
			t.Errorf("%v: rate %d, window %d, %q, %v; want %d, %d, %q", tc.args, cfg.wanRate, cfg.wanWindow, got, err, tc.rate, tc.window, tc.label)
		}
	}
}
