// Command bench measures skypipe on this machine against a plain TCP relay
// run in the same invocation, for every case of issue 4: live and kept
// 1 GiB, trigger latency, fan-out to 20 receivers, 10,000 small items, and
// peak memory; and the HTTP face (issue 13): 1 GiB through curl PUT and
// curl GET against piping-server (npm), also run in the same invocation;
// and many pipe names used once each (issue 11: "names") against one name
// used as often, each on a fresh satellite of its own; and the same over an
// emulated WAN (issue 12: "wan", 20 and 200 ms of round trip through
// tests/link, against the TCP relay through the same links). It builds skypipe (CGO_ENABLED=0), starts a real satellite
// (`skypipe serve` with a private token), runs each case with real
// processes, checks every byte that comes out, prints a table and writes
// it to BENCHMARKS.md.
//
//	go run ./tests/bench                     the full run (a few minutes)
//	go run ./tests/bench -smoke -out ''      a few MiB, a few rounds: seconds
//
// With -profile DIR every skypipe process, the satellite too, writes a CPU
// profile there (SKYPIPE_CPUPROFILE), for go tool pprof.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skypipe/skypipe/tests/link"
)

// config is what a run measures.
type config struct {
	size     int64  // bytes of the live and kept cases
	fanSize  int64  // bytes of the fan-out case
	fanout   int    // receivers of the fan-out case
	rounds   int    // trigger rounds
	items    int    // small items
	itemSize int    // bytes of a small item
	conc     int    // processes at once when sending one item per process
	names    int    // distinct pipe names of the names case
	repeat   int    // runs of each throughput case; the median counts
	check    string // crc32c or sha256
	out      string // BENCHMARKS.md to write, or ""
	profile  string // directory for CPU profiles, or ""
	command  string // how the run was started, for the report
	cases    map[string]bool
	// The wan case (issue 12): round trips of the emulated link, MiB moved
	// at each (the last size serves the RTTs after it), trigger rounds,
	// receivers of its fan-out.
	wanRTTs   []time.Duration
	wanSizes  []int64
	wanRounds int
	wanFanout int
	// wanRate is each connection's line rate across the link, each way, in
	// bytes a second (tests/link SetRate); 0: no limit.
	wanRate int64
	// wanWindow is each connection's TCP send window across the link, each
	// way, in bytes (tests/link SetWindow); 0: none.
	wanWindow int64
	// wanHandshake: new connections across the link pay for TCP's
	// handshake (tests/link SetHandshake).
	wanHandshake bool
	smokeRun     bool // a smoke run: a baseline that cannot be had is left out
}

// allCases are the cases a run measures, by the names -cases takes.
var allCases = []string{"live", "kept", "trigger", "fanout", "small", "http", "names", "wan"}

func defaults() config {
	c := config{
		size: 1 << 30, fanSize: 256 << 20, fanout: 20, rounds: 200,
		items: 10000, itemSize: 1024, conc: 8, names: 100000, repeat: 3, check: "crc32c",
		out: "BENCHMARKS.md", cases: map[string]bool{},
		wanRTTs: []time.Duration{20 * time.Millisecond, 200 * time.Millisecond}, wanSizes: []int64{64 << 20, 32 << 20},
		wanRounds: 11, wanFanout: 4,
	}
	for _, name := range allCases {
		c.cases[name] = true
	}
	return c
}

// smoke shrinks a config to a run of seconds that still takes every path.
func smoke(c config) config {
	c.size, c.fanSize, c.rounds, c.items, c.names, c.repeat = 4<<20, 1<<20, 5, 200, 200, 1
	c.wanRTTs, c.wanSizes, c.wanRounds = []time.Duration{20 * time.Millisecond}, []int64{1 << 20}, 3
	c.smokeRun = true
	return c
}

func main() {
	if ok, err := runHelper(); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench helper:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	rep, err := run(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: error:", err)
		os.Exit(1)
	}
	if failed := rep.failedChecks(); len(failed) > 0 {
		fmt.Fprintln(os.Stderr, "bench: error: checks failed:\n  "+strings.Join(failed, "\n  "))
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	cfg := defaults()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	size := fs.Int64("size", cfg.size>>20, "MiB moved in the live and kept cases")
	fanSize := fs.Int64("fan-size", cfg.fanSize>>20, "MiB sent to each receiver in the fan-out case")
	fs.IntVar(&cfg.fanout, "fanout", cfg.fanout, "receivers in the fan-out case")
	fs.IntVar(&cfg.rounds, "rounds", cfg.rounds, "trigger rounds")
	fs.IntVar(&cfg.items, "items", cfg.items, "small items")
	fs.IntVar(&cfg.itemSize, "item-size", cfg.itemSize, "bytes of a small item")
	fs.IntVar(&cfg.conc, "conc", cfg.conc, "processes at once when each small item has its own")
	fs.IntVar(&cfg.names, "names", cfg.names, "distinct pipe names in the names case (and rounds of its one-name baseline)")
	fs.IntVar(&cfg.repeat, "repeat", cfg.repeat, "runs of each throughput case (the median counts)")
	fs.StringVar(&cfg.check, "check", cfg.check, "how receivers' output is checked: crc32c or sha256 (with the byte count)")
	fs.StringVar(&cfg.out, "out", cfg.out, "file to write the report to ('' for none)")
	fs.StringVar(&cfg.profile, "profile", "", "directory for CPU profiles of every skypipe process")
	wanRTTs := fs.String("wan-rtts", "20ms,200ms", "round trips of the wan case's emulated link")
	wanSizes := fs.String("wan-size", "64,32", "MiB moved in the wan case, at each of -wan-rtts (the last for the rest)")
	fs.IntVar(&cfg.wanRounds, "wan-rounds", cfg.wanRounds, "trigger rounds of the wan case, at each RTT")
	fs.IntVar(&cfg.wanFanout, "wan-fanout", cfg.wanFanout, "receivers of the wan case's fan-out (each gets -wan-size over this)")
	wanRate := fs.String("wan-rate", "off", "line rate of each connection across the wan case's links, each way, as tc writes it (100mbit, 1gbit), or off")
	fs.Int64Var(&cfg.wanWindow, "wan-window", 0, "KiB each connection across the wan case's links may have in flight, each way, as TCP's send buffer bounds it (4096: Linux's tcp_wmem default), or 0 for no bound")
	fs.BoolVar(&cfg.wanHandshake, "wan-handshake", false, "new connections across the wan case's links pay for TCP's handshake (a round trip), as on a real path")
	isSmoke := fs.Bool("smoke", false, "tiny sizes: a run of seconds, for CI")
	cases := fs.String("cases", strings.Join(allCases, ","), "the cases to run, of "+strings.Join(allCases, ","))
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.size, cfg.fanSize = *size<<20, *fanSize<<20
	cfg.wanRTTs, cfg.wanSizes = nil, nil
	for _, r := range strings.Split(*wanRTTs, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(r))
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("-wan-rtts: %q is not a positive duration", r)
		}
		cfg.wanRTTs = append(cfg.wanRTTs, d)
	}
	for _, m := range strings.Split(*wanSizes, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(m), 10, 64)
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("-wan-size: %q is not a positive number of MiB", m)
		}
		cfg.wanSizes = append(cfg.wanSizes, n<<20)
	}
	var err error
	if cfg.wanRate, err = link.ParseRate(*wanRate); err != nil {
		return cfg, fmt.Errorf("-wan-rate: %w", err)
	}
	if cfg.wanWindow < 0 {
		return cfg, fmt.Errorf("-wan-window %d: want KiB, or 0", cfg.wanWindow)
	}
	cfg.wanWindow <<= 10
	cfg.cases = map[string]bool{}
	for _, c := range strings.Split(*cases, ",") {
		if !slices.Contains(allCases, c) {
			return cfg, fmt.Errorf("-cases: no case %q (cases: %s)", c, strings.Join(allCases, ","))
		}
		cfg.cases[c] = true
	}
	if *isSmoke {
		cfg = smoke(cfg)
	}
	switch {
	case cfg.check != "crc32c" && cfg.check != "sha256":
		return cfg, fmt.Errorf("-check %q: crc32c or sha256", cfg.check)
	case cfg.size <= 0 || cfg.fanSize <= 0 || cfg.fanout <= 0 || cfg.rounds <= 0 || cfg.repeat <= 0 || cfg.conc <= 0:
		return cfg, errors.New("sizes, counts and rounds must be positive")
	case cfg.wanRounds <= 0 || cfg.wanFanout <= 0:
		return cfg, errors.New("-wan-rounds and -wan-fanout must be positive")
	case cfg.names <= 0:
		return cfg, errors.New("-names must be positive")
	case cfg.items <= 0 || cfg.itemSize < 16:
		return cfg, errors.New("-items must be positive and -item-size at least 16")
	}
	cfg.command = "go run ./tests/bench"
	if len(args) > 0 {
		cfg.command += " " + strings.Join(args, " ")
	}
	return cfg, nil
}

// errorsOf joins the errors that are not nil.
func errorsOf(errs ...error) error { return errors.Join(errs...) }
