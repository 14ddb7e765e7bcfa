package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// bench is one run: its world, its report.
type bench struct {
	cfg      config
	w        *world
	rep      *report
	inputSum string // of the live and kept input
	log      io.Writer
}

const mib = 1 << 20

// run measures every case and returns the report; it prints the table to
// out and writes cfg.out.
func run(cfg config, out io.Writer) (*report, error) {
	if cfg.profile != "" {
		if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
			return nil, err
		}
	}
	w, err := newWorld(cfg)
	if err != nil {
		return nil, err
	}
	defer w.close()
	b := &bench{cfg: cfg, w: w, rep: &report{cfg: cfg, started: time.Now(), loadStart: loadAvg()}, log: os.Stderr}
	if err := b.all(); err != nil {
		return b.rep, err
	}
	b.rep.finished = time.Now()
	b.rep.printTable(out)
	if cfg.out != "" {
		if err := b.rep.writeMarkdown(cfg.out); err != nil {
			return b.rep, err
		}
		fmt.Fprintf(out, "\nwritten to %s\n", cfg.out)
	}
	return b.rep, nil
}

func (b *bench) step(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

func (b *bench) all() error {
	cfg := b.cfg
	input := filepath.Join(b.w.dir, "input")
	if cfg.cases["live"] || cfg.cases["kept"] || cfg.cases["fanout"] || cfg.cases["http"] {
		if err := makeInput(input, cfg.size); err != nil {
			return err
		}
		var err error
		if b.inputSum, err = fileSum(input, cfg.check); err != nil {
			return err
		}
	}
	sizeName := sizeLabel(cfg.size)

	// The relay's throughput is the baseline of the live and kept cases.
	var baseMBps float64
	if cfg.cases["live"] || cfg.cases["kept"] {
		var base []transfer
		for i := range cfg.repeat {
			b.step("TCP relay %s, run %d of %d", sizeName, i+1, cfg.repeat)
			t, err := b.baseline(input, cfg.size)
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			base = append(base, t)
		}
		baseMBps = mbps(cfg.size, median(base).wall)
	}
	if cfg.cases["live"] {
		if err := b.liveCase(input, baseMBps); err != nil {
			return err
		}
	}
	if cfg.cases["kept"] {
		if err := b.keptCase(input, baseMBps); err != nil {
			return err
		}
	}
	if cfg.cases["trigger"] {
		if err := b.triggerCase(); err != nil {
			return err
		}
	}
	if cfg.cases["fanout"] {
		if err := b.fanoutCase(input); err != nil {
			return err
		}
	}
	if cfg.cases["small"] {
		if err := b.smallCase(); err != nil {
			return err
		}
	}
	if cfg.cases["names"] {
		if err := b.namesCase(); err != nil {
			return err
		}
	}
	if cfg.cases["wan"] {
		if err := b.wanCase(); err != nil {
			return err
		}
	}
	if cfg.cases["http"] {
		if _, err := exec.LookPath("curl"); err != nil && cfg.smokeRun {
			b.step("http: skipped in this smoke run: curl is not installed")
			return nil
		}
		if err := b.httpCase(input); err != nil {
			return err
		}
	}
	return nil
}

// liveCase: 1. live, against the relay, and 6. memory during it.
func (b *bench) liveCase(input string, baseMBps float64) error {
	cfg := b.cfg
	sizeName := sizeLabel(cfg.size)
	var live []transfer
	for i := range cfg.repeat {
		b.step("live %s, run %d of %d", sizeName, i+1, cfg.repeat)
		t, err := b.live("live", input, cfg.size, 1)
		if err != nil {
			return fmt.Errorf("live: %w", err)
		}
		live = append(live, t)
	}
	lt := median(live)
	c := "live " + sizeName
	b.rep.add(row{Case: c, Measure: "throughput, TCP relay (baseline)", Value: baseMBps, Unit: "MB/s"})
	b.rep.add(row{Case: c, Measure: "throughput, skypipe", Value: mbps(cfg.size, lt.wall), Unit: "MB/s", Base: baseMBps, Target: atLeastRatio(0.8)})
	b.rep.add(rssRow(c, "peak RSS, sender", lt.sendRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, receiver", lt.recvRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, satellite", lt.satRSS, 150))
	if hasSocat() {
		var st []transfer
		for range cfg.repeat {
			t, err := b.socat(input, cfg.size)
			if err != nil {
				return fmt.Errorf("socat: %w", err)
			}
			st = append(st, t)
		}
		b.rep.add(row{Case: c, Measure: "throughput, socat relay (extra)", Value: mbps(cfg.size, median(st).wall), Unit: "MB/s", Base: baseMBps})
	}
	return nil
}

// keptCase: 2. kept, store then drain, and 6. memory during them.
func (b *bench) keptCase(input string, baseMBps float64) error {
	cfg := b.cfg
	sizeName := sizeLabel(cfg.size)
	var stores, drains []transfer
	for i := range cfg.repeat {
		b.step("kept %s, run %d of %d", sizeName, i+1, cfg.repeat)
		s, d, err := b.kept(input, cfg.size)
		if err != nil {
			return fmt.Errorf("kept: %w", err)
		}
		stores, drains = append(stores, s), append(drains, d)
	}
	st, dt := median(stores), median(drains)
	c := "kept " + sizeName
	b.rep.add(row{Case: c, Measure: "store (sender to its exit)", Value: mbps(cfg.size, st.wall), Unit: "MB/s", Base: baseMBps, Target: atLeastRatio(0.6)})
	b.rep.add(row{Case: c, Measure: "drain (receiver to its exit)", Value: mbps(cfg.size, dt.wall), Unit: "MB/s", Base: baseMBps, Target: atLeastRatio(0.6)})
	b.rep.add(rssRow(c, "peak RSS, sender", st.sendRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, receiver", dt.recvRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, satellite storing", st.satRSS, 150))
	b.rep.add(rssRow(c, "peak RSS, satellite draining", dt.satRSS, 150))
	return nil
}

// triggerCase: 3. trigger latency.
func (b *bench) triggerCase() error {
	cfg := b.cfg
	b.step("trigger, %d rounds of each", cfg.rounds)
	tt, err := b.trigger(cfg.rounds)
	if err != nil {
		return fmt.Errorf("trigger: %w", err)
	}
	c := "trigger"
	b.rep.add(row{Case: c, Measure: "sender start to waiter exit, p50", Value: pct(tt.wake, 50), Unit: "ms", Target: below(10)})
	b.rep.add(row{Case: c, Measure: "sender start to waiter exit, p99", Value: pct(tt.wake, 99), Unit: "ms"})
	b.rep.add(row{Case: c, Measure: "whole `echo | skypipe t`, a waiter, p50", Value: pct(tt.fireWait, 50), Unit: "ms", Target: below(15)})
	b.rep.add(row{Case: c, Measure: "whole `echo | skypipe t`, a waiter, p99", Value: pct(tt.fireWait, 99), Unit: "ms"})
	b.rep.add(row{Case: c, Measure: "whole `echo | skypipe t`, nobody waiting, p50", Value: pct(tt.fireNone, 50), Unit: "ms", Target: below(15)})
	b.rep.add(row{Case: c, Measure: "whole `echo | skypipe t`, nobody waiting, p99", Value: pct(tt.fireNone, 99), Unit: "ms"})
	b.rep.add(row{Case: c, Measure: "whole `skypipe t` fired first, p50", Value: pct(tt.firstWait, 50), Unit: "ms"})
	return nil
}

// fanoutCase: 4. one sender, many receivers, every byte to each.
func (b *bench) fanoutCase(input string) error {
	cfg := b.cfg
	var err error
	b.step("fan-out: 1 sender, %d receivers, %s", cfg.fanout, sizeLabel(cfg.fanSize))
	fanInput := input
	if cfg.fanSize != cfg.size {
		fanInput = filepath.Join(b.w.dir, "fan-input")
		if err := makeInput(fanInput, cfg.fanSize); err != nil {
			return err
		}
	}
	saved := b.inputSum
	if b.inputSum, err = fileSum(fanInput, cfg.check); err != nil {
		return err
	}
	ft, err := b.live("fanout", fanInput, cfg.fanSize, cfg.fanout)
	b.inputSum = saved
	if err != nil {
		return fmt.Errorf("fan-out: %w", err)
	}
	c := fmt.Sprintf("fan-out 1 -> %d, %s", cfg.fanout, sizeLabel(cfg.fanSize))
	b.rep.add(row{Case: c, Measure: "wall time", Value: ft.wall.Seconds(), Unit: "s"})
	b.rep.add(row{Case: c, Measure: "aggregate throughput", Value: mbps(cfg.fanSize*int64(cfg.fanout), ft.wall), Unit: "MB/s", Target: atLeast(1000)})
	b.rep.add(rssRow(c, "peak RSS, sender", ft.sendRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, receiver (largest)", ft.recvRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, satellite", ft.satRSS, 0))
	return nil
}

// smallCase: 5. many small items, sent then drained.
func (b *bench) smallCase() error {
	cfg := b.cfg
	c := fmt.Sprintf("%d items of %d B", cfg.items, cfg.itemSize)
	b.step("%s, one process each, %d at once", c, cfg.conc)
	name, pr, err := b.smallPerProcess(cfg.items, cfg.itemSize, cfg.conc)
	if err != nil {
		return fmt.Errorf("small items, one process each: %w", err)
	}
	if err := b.drainSmall("one process each", name, cfg.items, cfg.itemSize, &pr); err != nil {
		return err
	}
	b.step("%s, one `skypipe --lines` process", c)
	name, lr, err := b.smallLines(cfg.items, cfg.itemSize)
	if err != nil {
		return fmt.Errorf("small items, --lines: %w", err)
	}
	if err := b.drainSmall("--lines", name, cfg.items, cfg.itemSize, &lr); err != nil {
		return err
	}
	rate := func(d time.Duration) float64 { return float64(cfg.items) / d.Seconds() }
	b.rep.add(row{Case: c, Measure: fmt.Sprintf("send, one process per item, %d at once", cfg.conc), Value: rate(pr.send), Unit: "items/s", Target: atLeast(2000)})
	b.rep.add(row{Case: c, Measure: "send, one `skypipe --lines` (an item a line)", Value: rate(lr.send), Unit: "items/s", Target: atLeast(2000)})
	b.rep.add(row{Case: c, Measure: "drain, one `skypipe -f` (the --lines items)", Value: rate(lr.drain), Unit: "items/s", Target: atLeast(2000)})
	b.rep.add(row{Case: c, Measure: "drain, one `skypipe -f` (the one-process items)", Value: rate(pr.drain), Unit: "items/s", Target: atLeast(2000)})
	b.rep.add(rssRow(c, "peak RSS, sender (--lines)", lr.sendRSS, 40))
	b.rep.add(rssRow(c, "peak RSS, receiver (-f)", max(lr.drainRSS, pr.drainRSS), 40))
	return nil
}

func sizeLabel(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

func rssRow(c, measure string, rss int64, limitMiB float64) row {
	r := row{Case: c, Measure: measure, Value: float64(rss) / mib, Unit: "MiB"}
	if limitMiB > 0 {
		r.Target = below(limitMiB)
	}
	return r
}
