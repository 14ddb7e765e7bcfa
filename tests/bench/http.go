package main

// The HTTP face (issue 13): 1 GiB through curl PUT and curl GET, against
// piping-server (npm) run in the same invocation, the same way.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// pipingVersion is the piping-server the baseline runs.
const pipingVersion = "1.12.9"

// pipingServer finds piping-server: on PATH, or installed before in the
// user's cache, or installed there now with npm (the registry's ordinary
// client). The error says what is missing.
func pipingServer(log func(string, ...any)) (string, error) {
	if p, err := exec.LookPath("piping-server"); err == nil {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "skypipe-bench", "piping-server-"+pipingVersion)
	bin := filepath.Join(dir, "node_modules", ".bin", "piping-server")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", errors.New("piping-server is not installed and there is no npm to install it (apt-get install npm)")
	}
	log("installing piping-server@%s with npm into %s", pipingVersion, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "piping-server@"+pipingVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install piping-server@%s: %v\n%s", pipingVersion, err, out)
	}
	return bin, nil
}

// httpCase: 1 GiB live through the HTTP face (a curl GET waiting, then a
// curl PUT), against the same through piping-server; then kept (PUT with
// nobody waiting, GET after).
func (b *bench) httpCase(input string) error {
	cfg := b.cfg
	if _, err := exec.LookPath("curl"); err != nil {
		return errors.New("the http case needs curl (apt-get install curl)")
	}
	sizeName := sizeLabel(cfg.size)
	piping, err := pipingServer(b.step)
	switch {
	case err != nil && !cfg.smokeRun:
		return fmt.Errorf("the http case's baseline: %w", err)
	case err != nil:
		b.step("http: no piping-server baseline in this smoke run: %v", err)
		piping = ""
	}
	// Each round runs the baseline and skypipe one after the other, so
	// that both meet the same load on a shared machine.
	var base, live, stores, drains []transfer
	for i := range cfg.repeat {
		if piping != "" {
			b.step("piping-server %s, run %d of %d", sizeName, i+1, cfg.repeat)
			t, err := b.pipingServer(piping, input, cfg.size)
			if err != nil {
				return fmt.Errorf("piping-server: %w", err)
			}
			base = append(base, t)
		}
		b.step("HTTP face %s live and kept, run %d of %d", sizeName, i+1, cfg.repeat)
		t, err := b.httpLive(input, cfg.size)
		if err != nil {
			return fmt.Errorf("http live: %w", err)
		}
		live = append(live, t)
		s, d, err := b.httpKept(input, cfg.size)
		if err != nil {
			return fmt.Errorf("http kept: %w", err)
		}
		stores, drains = append(stores, s), append(drains, d)
	}
	var baseMBps float64
	if len(base) > 0 {
		baseMBps = mbps(cfg.size, median(base).wall)
	}
	lt, st, dt := median(live), median(stores), median(drains)
	c := "http " + sizeName + " (curl PUT, curl GET)"
	if baseMBps > 0 {
		b.rep.add(row{Case: c, Measure: "live throughput, piping-server " + pipingVersion + " (baseline)", Value: baseMBps, Unit: "MB/s"})
	}
	r := row{Case: c, Measure: "live throughput, skypipe HTTP face", Value: mbps(cfg.size, lt.wall), Unit: "MB/s", Base: baseMBps}
	if baseMBps > 0 {
		r.Target = atLeastRatio(0.8)
	}
	b.rep.add(r)
	b.rep.add(rssRow(c, "peak RSS, satellite (live)", lt.satRSS, 150))
	b.rep.add(row{Case: c, Measure: "kept: store (PUT to its answer)", Value: mbps(cfg.size, st.wall), Unit: "MB/s", Base: baseMBps})
	b.rep.add(row{Case: c, Measure: "kept: drain (GET to its end)", Value: mbps(cfg.size, dt.wall), Unit: "MB/s", Base: baseMBps})
	b.rep.add(rssRow(c, "peak RSS, satellite (kept)", max(st.satRSS, dt.satRSS), 150))
	return nil
}

// curl runs curl quietly, failing on an HTTP error, with the face's token
// read from a file (never on its command line).
func (b *bench) curl(out *sink, stdin *os.File, args ...string) (*proc, error) {
	args = append([]string{"-sS", "-f", "-H", "@" + b.w.authFile}, args...)
	return startProc(os.Environ(), stdinOf(stdin), out, "curl", args...)
}

// httpLive moves the input from a curl PUT to a curl GET that waits first.
func (b *bench) httpLive(input string, size int64) (transfer, error) {
	name := b.w.pipeName("http-live")
	s := newSink(b.cfg.check)
	recv, err := b.curl(s, nil, b.w.httpURL+"/p/"+name)
	if err != nil {
		return transfer{}, err
	}
	if err := b.w.attached(name, 1); err != nil {
		return transfer{}, err
	}
	b.w.resetSatPeak()
	send, err := b.curl(nil, nil, "-o", os.DevNull, "-T", input, b.w.httpURL+"/p/"+name)
	if err != nil {
		return transfer{}, err
	}
	if err := errorsOf(send.waitTimeout(caseTimeout), recv.waitTimeout(caseTimeout)); err != nil {
		return transfer{}, err
	}
	b.verify("http live: curl GET got every byte", s, size)
	return transfer{wall: later(recv.end, send.end).Sub(send.start), satRSS: b.w.satPeak()}, nil
}

// httpKept stores the input with a curl PUT, then drains it with a curl GET.
func (b *bench) httpKept(input string, size int64) (store, drain transfer, err error) {
	name := b.w.pipeName("http-kept")
	b.w.resetSatPeak()
	send, err := b.curl(nil, nil, "-o", os.DevNull, "-T", input, b.w.httpURL+"/p/"+name)
	if err != nil {
		return store, drain, err
	}
	if err := send.waitTimeout(caseTimeout); err != nil {
		return store, drain, err
	}
	store = transfer{wall: send.elapsed(), satRSS: b.w.satPeak()}
	b.w.resetSatPeak()
	s := newSink(b.cfg.check)
	recv, err := b.curl(s, nil, b.w.httpURL+"/p/"+name)
	if err != nil {
		return store, drain, err
	}
	if err := recv.waitTimeout(caseTimeout); err != nil {
		return store, drain, err
	}
	drain = transfer{wall: recv.elapsed(), satRSS: b.w.satPeak()}
	b.verify("http kept: curl GET drained the stored item", s, size)
	return store, drain, nil
}

// pipingServer moves the input through piping-server the same way: a curl
// GET first, then a curl PUT (piping-server passes the body through once
// both are there).
func (b *bench) pipingServer(bin, input string, size int64) (transfer, error) {
	port, err := freePort()
	if err != nil {
		return transfer{}, err
	}
	srv, err := startProc(os.Environ(), nil, nil, bin, "--host", "127.0.0.1", "--http-port", strconv.Itoa(port))
	if err != nil {
		return transfer{}, err
	}
	defer func() { _ = srv.cmd.Process.Kill(); <-srv.done }()
	if err := waitListening(port, 30*time.Second); err != nil {
		return transfer{}, fmt.Errorf("piping-server did not listen: %w", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/bench", port)
	s := newSink(b.cfg.check)
	recv, err := startProc(os.Environ(), nil, s, "curl", "-sS", "-f", url)
	if err != nil {
		return transfer{}, err
	}
	send, err := startProc(os.Environ(), nil, nil, "curl", "-sS", "-f", "-o", os.DevNull, "-T", input, url)
	if err != nil {
		return transfer{}, err
	}
	if err := errorsOf(send.waitTimeout(caseTimeout), recv.waitTimeout(caseTimeout)); err != nil {
		return transfer{}, err
	}
	b.verify("piping-server: curl GET got every byte", s, size)
	return transfer{wall: later(recv.end, send.end).Sub(send.start)}, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
