package main

// The wan case (issue 12): skypipe across an emulated wide-area link
// (tests/link, 20 ms and 200 ms of round trip), side by side with the TCP
// relay across the same emulated links.
//
// The satellite of this case is a TLS one, as `skypipe setup` deploys it
// (its own CA, pinned by the clients through SKYPIPE_TLS_CA, and a token):
// a client's connection costs what it costs across the internet, TLS
// included. Every skypipe process connects through one link proxy in front
// of the satellite, so a byte from a sender to a receiver crosses the link
// twice: up (sender -> satellite, RTT/2) and down (satellite -> receiver,
// RTT/2). The relay gets a link of the same RTT in front of each of its two
// ports: its sender's bytes go up one link (RTT/2) and down the other to its
// receiver (RTT/2), the same path length. The emulator delays bytes, not
// packets: TCP's own handshake happens on loopback, undelayed (see
// tests/link).

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/tests/link"
)

// wanSat is the wan case's satellite: TLS with a CA of its own, a token,
// and a connection of the benchmark's own that does not cross any link.
type wanSat struct {
	srv     *server
	dir     string
	addr    string // the satellite's own host:port
	token   string
	caFile  string
	nc      *nats.Conn
	clients map[time.Duration]*pipes.Client // by the RTT of the receivers' link
	seq     int
}

func (b *bench) startWanSat() (*wanSat, error) {
	dir := filepath.Join(b.w.dir, "wan")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := provision.NewAuthority()
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return nil, err
	}
	s := &wanSat{dir: dir, caFile: filepath.Join(dir, "ca.pem")}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path string
		data []byte
	}{{s.caFile, ca.CertPEM}, {cert, certPEM}, {key, keyPEM}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, err
		}
	}
	if s.srv, err = newServerArgs(b.w.skypipe, filepath.Join(dir, "sat"), false, []string{"--tls-cert", cert, "--tls-key", key}); err != nil {
		return nil, err
	}
	u, err := url.Parse(s.srv.url)
	if err != nil || u.Host == "" {
		s.close()
		return nil, fmt.Errorf("the TLS satellite said it was ready at %q", s.srv.url)
	}
	s.addr = u.Host
	tok, err := os.ReadFile(s.srv.tokenFile)
	if err != nil {
		s.close()
		return nil, err
	}
	s.token = strings.TrimSpace(string(tok))
	if s.nc, err = provision.Dial(provision.Endpoint{URL: "tls://" + s.addr, Token: s.token, CAPEM: ca.CertPEM}); err != nil {
		s.close()
		return nil, fmt.Errorf("connecting to the TLS satellite: %w", err)
	}
	s.clients = map[time.Duration]*pipes.Client{}
	return s, nil
}

func (s *wanSat) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.srv != nil {
		s.srv.stop()
	}
}

// env is the environment of a skypipe process that reaches the satellite
// at addr (a link proxy, or the satellite itself).
func (s *wanSat) env(base []string, addr string) []string {
	return append(slices.Clone(base), "SKYPIPE_URL=tls://"+s.token+"@"+addr, "SKYPIPE_TLS_CA="+s.caFile)
}

func (s *wanSat) pipeName(what string) string {
	s.seq++
	return fmt.Sprintf("wan-%s-%d", what, s.seq)
}

// attached waits until n receivers, across a link of rtt, are attached to
// pipe name.
func (s *wanSat) attached(name string, n int, rtt time.Duration) error {
	// A census counts the receivers that answer within its window (100 ms
	// by default): those across the link answer a round trip later.
	c := s.clients[rtt]
	if c == nil {
		pc := pipes.DefaultConfig()
		pc.CensusWindow += 2 * rtt
		c = pipes.New(s.nc, pipes.WithConfig(pc))
		s.clients[rtt] = c
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := c.Attached(context.Background(), name)
		if err != nil {
			return err
		}
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d receivers attached to %q, not %d, after 30s", got, name, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet waits until nothing crossed the link for a round trip: the
// receivers attached before have finished what they do on starting, so
// that a measure that begins now does not wait behind it. Without a link
// there is nothing to wait for.
func quiet(p *link.Proxy, rtt time.Duration) error {
	if p == nil {
		return nil
	}
	window := max(rtt, 20*time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	last := p.Stats()
	for {
		time.Sleep(window)
		now := p.Stats()
		if now.Up == last.Up && now.Down == last.Down {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the link was never quiet for %v in 30s", window)
		}
		last = now
	}
}

// stopProcs kills what is still running of ps (a case that failed half-way)
// and waits for them.
func stopProcs(ps ...*proc) {
	for _, p := range ps {
		if p == nil {
			continue
		}
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// verifySum is verify against another input than the shared one.
func (b *bench) verifySum(what string, s *sink, size int64, sum string) {
	saved := b.inputSum
	b.inputSum = sum
	b.verify(what, s, size)
	b.inputSum = saved
}

// wanInput is one input file of the wan case and its sum.
type wanInput struct {
	path string
	size int64
	sum  string
}

func (b *bench) wanInputOf(name string, size int64) (wanInput, error) {
	in := wanInput{path: filepath.Join(b.w.dir, name), size: size}
	if err := makeInput(in.path, size); err != nil {
		return in, err
	}
	var err error
	in.sum, err = fileSum(in.path, b.cfg.check)
	return in, err
}

// wanLiveRun is one live move across the link: the wall time, from the
// sender's start to the last receiver's exit, and the peak RSS of the
// sender and of the largest receiver.
type wanLiveRun struct {
	wall             time.Duration
	sendRSS, recvRSS int64
}

// wanLive moves an input from a sender to n receivers attached first
// (listeners when n > 1), every process through the link p.
func (b *bench) wanLive(sat *wanSat, p *link.Proxy, rtt time.Duration, what string, in wanInput, n int) (run wanLiveRun, err error) {
	env := sat.env(b.w.env, p.Addr())
	name := sat.pipeName(what)
	sinks := make([]*sink, n)
	recvs := make([]*proc, n)
	defer func() { stopProcs(recvs...) }()
	for i := range n {
		sinks[i] = newSink(b.cfg.check)
		args := []string{"--recv", name}
		if n > 1 {
			args = append(args, "--listen")
		}
		r, err := startProc(env, nil, sinks[i], b.w.skypipe, args...)
		if err != nil {
			return run, err
		}
		recvs[i] = r
	}
	if err := errorsOf(sat.attached(name, n, rtt), quiet(p, rtt)); err != nil {
		return run, err
	}
	f, err := os.Open(in.path)
	if err != nil {
		return run, err
	}
	defer f.Close()
	send, err := startProc(env, f, nil, b.w.skypipe, "--send", name)
	if err != nil {
		return run, err
	}
	errs := []error{send.waitTimeout(caseTimeout)}
	run = wanLiveRun{wall: send.elapsed(), sendRSS: send.maxRSS()}
	for i, r := range recvs {
		errs = append(errs, r.waitTimeout(caseTimeout))
		run.wall = max(run.wall, r.end.Sub(send.start))
		run.recvRSS = max(run.recvRSS, r.maxRSS())
		b.verifySum(fmt.Sprintf("wan %v %s: receiver %d of %d got every byte", rtt, what, i+1, n), sinks[i], in.size, in.sum)
	}
	return run, errorsOf(errs...)
}

// wanKeptRun is one store and drain of a kept item across the link: the
// wall times, and the peak RSS of the sender and of the receiver.
type wanKeptRun struct {
	store, drain      time.Duration
	sendRSS, drainRSS int64
}

// wanKept stores an input with nobody attached, then drains it, both
// processes through the link.
func (b *bench) wanKept(sat *wanSat, p *link.Proxy, rtt time.Duration, in wanInput) (run wanKeptRun, err error) {
	env := sat.env(b.w.env, p.Addr())
	name := sat.pipeName("kept")
	f, err := os.Open(in.path)
	if err != nil {
		return run, err
	}
	defer f.Close()
	send, err := startProc(env, f, nil, b.w.skypipe, "--send", name)
	if err != nil {
		return run, err
	}
	if err := send.waitTimeout(caseTimeout); err != nil {
		return run, err
	}
	s := newSink(b.cfg.check)
	recv, err := startProc(env, nil, s, b.w.skypipe, "--recv", name)
	if err != nil {
		return run, err
	}
	if err := recv.waitTimeout(caseTimeout); err != nil {
		return run, err
	}
	b.verifySum(fmt.Sprintf("wan %v kept: the drained item is the stored one", rtt), s, in.size, in.sum)
	return wanKeptRun{send.elapsed(), recv.elapsed(), send.maxRSS(), recv.maxRSS()}, nil
}

// relayRun is one move through the TCP relay with a link of rtt in front
// of each of its ports: the receiver connects first (and, with waiting,
// the benchmark waits until its connection reached the relay), then the
// sender. It returns the sender's wall time, and the time from the
// sender's start to the receiver's exit.
func (b *bench) relayRun(in wanInput, rtt time.Duration, waiting bool) (send, wake time.Duration, err error) {
	relay := exec.Command(b.w.self)
	relay.Env = append(os.Environ(), helperEnv+"=relay")
	relay.Stderr = os.Stderr
	out, err := relay.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := relay.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = relay.Process.Kill(); _ = relay.Wait() }()
	addrs, err := readLine(out)
	if err != nil {
		return 0, 0, fmt.Errorf("relay: %w", err)
	}
	inAddr, outAddr, ok := strings.Cut(addrs, " ")
	if !ok {
		return 0, 0, fmt.Errorf("relay said %q", addrs)
	}
	up, err := link.Start(inAddr, link.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer up.Close()
	down, err := link.Start(outAddr, link.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer down.Close()
	up.SetRTT(rtt)
	down.SetRTT(rtt)
	up.SetRate(b.cfg.wanRate)
	down.SetRate(b.cfg.wanRate)
	up.SetWindow(b.cfg.wanWindow)
	down.SetWindow(b.cfg.wanWindow)
	up.SetHandshake(b.cfg.wanHandshake)
	down.SetHandshake(b.cfg.wanHandshake)
	helperEnvOf := func(h string) []string { return append(os.Environ(), helperEnv+"="+h) }
	s := newSink(b.cfg.check)
	recv, err := startProc(helperEnvOf("tcprecv"), nil, s, b.w.self, down.Addr())
	if err != nil {
		return 0, 0, err
	}
	defer stopProcs(recv)
	if waiting {
		deadline := time.Now().Add(30 * time.Second)
		for down.Stats().Conns == 0 {
			if time.Now().After(deadline) {
				return 0, 0, errors.New("the relay's receiver did not connect in 30s")
			}
			time.Sleep(time.Millisecond)
		}
	}
	f, err := os.Open(in.path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sender, err := startProc(helperEnvOf("tcpsend"), f, nil, b.w.self, up.Addr())
	if err != nil {
		return 0, 0, err
	}
	if err := errorsOf(sender.waitTimeout(caseTimeout), recv.waitTimeout(caseTimeout)); err != nil {
		return 0, 0, err
	}
	b.verifySum(fmt.Sprintf("wan %v relay: receiver got every byte", rtt), s, in.size, in.sum)
	return sender.elapsed(), recv.end.Sub(sender.start), nil
}

// wanTrig are the trigger timings of one link (or of none).
type wanTrig struct {
	fireWait []time.Duration // whole `echo | skypipe --send t`, a receiver waiting
	wake     []time.Duration // its start to the waiter's exit
	fireNone []time.Duration // whole `echo | skypipe --send t`, nobody waiting
	take     []time.Duration // whole `skypipe --recv t` of a trigger fired first
	start    []time.Duration // whole `skypipe --version`: starting a process
}

// wanTriggers fires rounds triggers at a waiting receiver, then fires
// rounds with nobody waiting, each taken at once by a `skypipe --recv`;
// every process reaches the satellite at addr (through p, if not nil).
func (b *bench) wanTriggers(sat *wanSat, p *link.Proxy, rtt time.Duration, newline wanInput, rounds int) (wanTrig, error) {
	var tt wanTrig
	addr := sat.addr
	if p != nil {
		addr = p.Addr()
	}
	env := sat.env(b.w.env, addr)
	fire := func(name string) (*proc, error) {
		f, err := os.Open(newline.path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return startProc(env, f, nil, b.w.skypipe, "--send", name)
	}
	where := fmt.Sprintf("wan %v", rtt)
	if p == nil {
		where = "wan, no link"
	}
	for range rounds {
		ver, err := startProc(env, nil, nil, b.w.skypipe, "--version")
		if err != nil {
			return tt, err
		}
		if err := ver.waitTimeout(time.Minute); err != nil {
			return tt, err
		}
		tt.start = append(tt.start, ver.elapsed())
	}
	waited := sat.pipeName("trigger")
	for range rounds {
		s := newSink(b.cfg.check)
		waiter, err := startProc(env, nil, s, b.w.skypipe, "--recv", waited)
		if err != nil {
			return tt, err
		}
		if err := errorsOf(sat.attached(waited, 1, rtt), quiet(p, rtt)); err != nil {
			stopProcs(waiter)
			return tt, err
		}
		sender, err := fire(waited)
		if err != nil {
			stopProcs(waiter)
			return tt, err
		}
		if err := errorsOf(sender.waitTimeout(time.Minute), waiter.waitTimeout(time.Minute)); err != nil {
			return tt, err
		}
		b.verifySum(where+" trigger: the waiter got the newline", s, 1, newline.sum)
		tt.wake = append(tt.wake, waiter.end.Sub(sender.start))
		tt.fireWait = append(tt.fireWait, sender.elapsed())
	}
	first := sat.pipeName("trigger-first")
	for range rounds {
		sender, err := fire(first)
		if err != nil {
			return tt, err
		}
		if err := sender.waitTimeout(time.Minute); err != nil {
			return tt, err
		}
		tt.fireNone = append(tt.fireNone, sender.elapsed())
		s := newSink(b.cfg.check)
		taker, err := startProc(env, nil, s, b.w.skypipe, "--recv", first)
		if err != nil {
			return tt, err
		}
		if err := taker.waitTimeout(time.Minute); err != nil {
			return tt, err
		}
		b.verifySum(where+" trigger fired first: the taker got the newline", s, 1, newline.sum)
		tt.take = append(tt.take, taker.elapsed())
	}
	for _, l := range []*[]time.Duration{&tt.fireWait, &tt.wake, &tt.fireNone, &tt.take, &tt.start} {
		slices.Sort(*l)
	}
	return tt, nil
}

// relayTriggers: rounds of a relay "trigger": a receiver connected through
// the links, then a sender that connects and sends one newline.
func (b *bench) relayTriggers(rtt time.Duration, newline wanInput, rounds int) (wake []time.Duration, err error) {
	for range rounds {
		_, w, err := b.relayRun(newline, rtt, true)
		if err != nil {
			return nil, err
		}
		wake = append(wake, w)
	}
	slices.Sort(wake)
	return wake, nil
}

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// inRTTs is a target on a time counted in round trips of the link.
func inRTTs(n float64, rtt time.Duration) *target {
	return &target{fmt.Sprintf("<= %g RTT", n), func(v, _ float64) bool { return v <= n*ms(rtt) }}
}

// spread is the range of rounds' times, for the report.
func spread(sorted []time.Duration) string {
	return fmt.Sprintf("%.1f-%.1f ms", ms(sorted[0]), ms(sorted[len(sorted)-1]))
}

// wanCase: issue 12's rows, for each RTT of -wan-rtts.
func (b *bench) wanCase() error {
	cfg := b.cfg
	sat, err := b.startWanSat()
	if err != nil {
		return fmt.Errorf("wan: %w", err)
	}
	defer sat.close()
	newline := wanInput{path: filepath.Join(b.w.dir, "wan-newline"), size: 1}
	if err := os.WriteFile(newline.path, []byte("\n"), 0o600); err != nil {
		return err
	}
	if newline.sum, err = fileSum(newline.path, cfg.check); err != nil {
		return err
	}
	add := func(r row) { r.Section = "wan"; b.rep.add(r) }

	// The same commands on loopback, no link: what a process costs here.
	b.step("wan: triggers on loopback, no link, %d rounds", cfg.wanRounds)
	lo, err := b.wanTriggers(sat, nil, 0, newline, cfg.wanRounds)
	if err != nil {
		return fmt.Errorf("wan, no link: %w", err)
	}
	c := "no link (loopback)"
	add(row{Case: c, Measure: "`skypipe --version` (starting a process)", Value: ms(medianOf(lo.start)), Unit: "ms", Spread: spread(lo.start)})
	add(row{Case: c, Measure: "trigger, a waiter: whole `echo | skypipe --send t`", Value: ms(medianOf(lo.fireWait)), Unit: "ms", Spread: spread(lo.fireWait)})
	add(row{Case: c, Measure: "trigger, a waiter: sender start to waiter exit", Value: ms(medianOf(lo.wake)), Unit: "ms", Spread: spread(lo.wake)})
	add(row{Case: c, Measure: "kept trigger: whole `echo | skypipe --send t`, nobody waiting", Value: ms(medianOf(lo.fireNone)), Unit: "ms", Spread: spread(lo.fireNone)})
	add(row{Case: c, Measure: "kept trigger: whole `skypipe --recv t` taking it", Value: ms(medianOf(lo.take)), Unit: "ms", Spread: spread(lo.take)})

	for i, rtt := range cfg.wanRTTs {
		size := cfg.wanSizes[min(i, len(cfg.wanSizes)-1)]
		if err := b.wanAt(sat, rtt, size, newline, add); err != nil {
			return fmt.Errorf("wan %v: %w", rtt, err)
		}
	}
	return nil
}

// linkLabel names in a case the links' line rate (bytes a second), as tc
// writes it, TCP window and handshake; nothing for none.
func linkLabel(cfg config) string {
	rate, window := cfg.wanRate, cfg.wanWindow
	var s string
	if cfg.wanHandshake {
		s += ", TCP handshakes"
	}
	if rate > 0 {
		s += fmt.Sprintf(", lines of %gmbit", float64(rate)*8/1e6)
	}
	switch {
	case window >= 1<<20 && window%(1<<20) == 0:
		s += fmt.Sprintf(", TCP windows of %d MiB", window>>20)
	case window > 0:
		s += fmt.Sprintf(", TCP windows of %d KiB", window>>10)
	}
	return s
}

// wanAt measures every row of one RTT.
func (b *bench) wanAt(sat *wanSat, rtt time.Duration, size int64, newline wanInput, add func(row)) error {
	cfg := b.cfg
	in, err := b.wanInputOf(fmt.Sprintf("wan-input-%d", size), size)
	if err != nil {
		return err
	}
	fanSize := max(size/int64(cfg.wanFanout), 1<<20)
	fan, err := b.wanInputOf(fmt.Sprintf("wan-fan-%d", fanSize), fanSize)
	if err != nil {
		return err
	}
	p, err := link.Start(sat.addr, link.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	p.SetRTT(rtt)
	p.SetRate(cfg.wanRate)
	p.SetWindow(cfg.wanWindow)
	p.SetHandshake(cfg.wanHandshake)

	var relay, live, stores, drains []time.Duration
	var sendRSS, drainRSS, liveSendRSS, liveRecvRSS int64
	for i := range cfg.repeat {
		b.step("wan %v: TCP relay, live, kept %s, run %d of %d", rtt, sizeLabel(size), i+1, cfg.repeat)
		_, r, err := b.relayRun(in, rtt, false)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		relay = append(relay, r)
		l, err := b.wanLive(sat, p, rtt, "live", in, 1)
		if err != nil {
			return fmt.Errorf("live: %w", err)
		}
		live = append(live, l.wall)
		liveSendRSS, liveRecvRSS = max(liveSendRSS, l.sendRSS), max(liveRecvRSS, l.recvRSS)
		k, err := b.wanKept(sat, p, rtt, in)
		if err != nil {
			return fmt.Errorf("kept: %w", err)
		}
		stores, drains = append(stores, k.store), append(drains, k.drain)
		sendRSS, drainRSS = max(sendRSS, k.sendRSS), max(drainRSS, k.drainRSS)
	}
	b.step("wan %v: fan-out 1 -> %d, %s", rtt, cfg.wanFanout, sizeLabel(fanSize))
	fw, err := b.wanLive(sat, p, rtt, "fanout", fan, cfg.wanFanout)
	if err != nil {
		return fmt.Errorf("fan-out: %w", err)
	}
	b.step("wan %v: triggers, %d rounds of each", rtt, cfg.wanRounds)
	tt, err := b.wanTriggers(sat, p, rtt, newline, cfg.wanRounds)
	if err != nil {
		return fmt.Errorf("triggers: %w", err)
	}
	rw, err := b.relayTriggers(rtt, newline, cfg.wanRounds)
	if err != nil {
		return fmt.Errorf("relay triggers: %w", err)
	}

	base := mbps(size, medianOf(relay))
	sz := sizeLabel(size) + linkLabel(cfg)
	add(row{Case: "live " + sz, RTT: rtt, Measure: "throughput, TCP relay through the same links (baseline)", Value: base, Unit: "MB/s"})
	add(row{Case: "live " + sz, RTT: rtt, Measure: "throughput, skypipe", Value: mbps(size, medianOf(live)), Unit: "MB/s", Base: base})
	r := rssRow("live "+sz, "peak RSS, sender (the most of the runs)", liveSendRSS, 40)
	r.RTT = rtt
	add(r)
	r = rssRow("live "+sz, "peak RSS, receiver (the most of the runs)", liveRecvRSS, 40)
	r.RTT = rtt
	add(r)
	add(row{Case: "kept " + sz, RTT: rtt, Measure: "store: sender's wall time, nobody attached", Value: medianOf(stores).Seconds(), Unit: "s"})
	add(row{Case: "kept " + sz, RTT: rtt, Measure: "store: throughput", Value: mbps(size, medianOf(stores)), Unit: "MB/s", Base: base})
	add(row{Case: "kept " + sz, RTT: rtt, Measure: "drain: receiver's wall time", Value: medianOf(drains).Seconds(), Unit: "s"})
	add(row{Case: "kept " + sz, RTT: rtt, Measure: "drain: throughput", Value: mbps(size, medianOf(drains)), Unit: "MB/s", Base: base})
	r = rssRow("kept "+sz, "store: peak RSS, sender (the most of the runs)", sendRSS, 40)
	r.RTT = rtt
	add(r)
	r = rssRow("kept "+sz, "drain: peak RSS, receiver (the most of the runs)", drainRSS, 40)
	r.RTT = rtt
	add(r)
	fc := fmt.Sprintf("fan-out 1 -> %d, %s%s", cfg.wanFanout, sizeLabel(fanSize), linkLabel(cfg))
	add(row{Case: fc, RTT: rtt, Measure: "wall time", Value: fw.wall.Seconds(), Unit: "s"})
	add(row{Case: fc, RTT: rtt, Measure: "aggregate throughput", Value: mbps(fanSize*int64(cfg.wanFanout), fw.wall), Unit: "MB/s"})
	add(row{Case: "trigger" + linkLabel(cfg), RTT: rtt, Measure: "TCP relay: sender start to receiver exit, connect + 1 byte (baseline)", Value: ms(medianOf(rw)), Unit: "ms", Spread: spread(rw)})
	add(row{Case: "trigger" + linkLabel(cfg), RTT: rtt, Measure: "a waiter: whole `echo | skypipe --send t`", Value: ms(medianOf(tt.fireWait)), Unit: "ms", Spread: spread(tt.fireWait), Target: inRTTs(4, rtt)})
	add(row{Case: "trigger" + linkLabel(cfg), RTT: rtt, Measure: "a waiter: sender start to waiter exit", Value: ms(medianOf(tt.wake)), Unit: "ms", Base: ms(medianOf(rw)), Spread: spread(tt.wake), Target: inRTTs(4, rtt)})
	add(row{Case: "kept trigger" + linkLabel(cfg), RTT: rtt, Measure: "whole `echo | skypipe --send t`, nobody waiting (sending a kept item)", Value: ms(medianOf(tt.fireNone)), Unit: "ms", Spread: spread(tt.fireNone), Target: inRTTs(4, rtt)})
	add(row{Case: "kept trigger" + linkLabel(cfg), RTT: rtt, Measure: "whole `skypipe --recv t` taking it", Value: ms(medianOf(tt.take)), Unit: "ms", Spread: spread(tt.take), Target: inRTTs(5, rtt)})
	add(row{Case: "process", RTT: rtt, Measure: "`skypipe --version` (starting a process; no link crossed)", Value: ms(medianOf(tt.start)), Unit: "ms", Spread: spread(tt.start)})
	return nil
}
