package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	for _, s := range []string{beginMark, endMark, "| CPU |", "| Go |", "throughput, skypipe", "`go test ./tests/bench`"} {
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
