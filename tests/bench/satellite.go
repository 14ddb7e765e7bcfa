package main

// The world a benchmark runs in: a skypipe binary built for it, a real
// satellite (`skypipe serve`) with a private token, and a connection of
// its own to watch pipes.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// world is what the cases share.
type world struct {
	cfg     config
	dir     string // temporary: binary, store, token, inputs
	skypipe string // the binary under test
	self    string // this binary, for the baseline's helpers
	env     []string
	sat     *server
	nc      *nats.Conn
	client  *pipes.Client
	seq     int // for fresh pipe names
	profile int // numbers the profiles of skypipe processes
	// The satellite's HTTP face, and a file holding the header with its
	// token, for curl -H @FILE.
	httpURL  string
	authFile string
}

// moduleRoot is the directory of the skypipe module, from the go tool.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the skypipe module")
	}
	return filepath.Dir(mod), nil
}

// build builds skypipe as users build it: CGO_ENABLED=0 go build.
func build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "skypipe")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/skypipe")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building skypipe: %v\n%s", err, out)
	}
	return bin, nil
}

func newWorld(cfg config) (*world, error) {
	dir, err := os.MkdirTemp("", "skypipe-bench-")
	if err != nil {
		return nil, err
	}
	w := &world{cfg: cfg, dir: dir}
	if w.self, err = os.Executable(); err != nil {
		w.close()
		return nil, err
	}
	if w.skypipe, err = build(dir); err != nil {
		w.close()
		return nil, err
	}
	if err := w.startSatellite(); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// startSatellite starts the satellite the cases share, with an HTTP face,
// and connects to it.
func (w *world) startSatellite() error {
	var extra []string
	if w.cfg.profile != "" {
		extra = append(extra, "SKYPIPE_CPUPROFILE="+filepath.Join(w.cfg.profile, "satellite.pprof"))
	}
	sat, err := newServer(w.skypipe, filepath.Join(w.dir, "shared"), true, extra...)
	if err != nil {
		return err
	}
	w.sat, w.httpURL, w.authFile = sat, sat.httpURL, sat.authFile
	w.env = append(baseEnv(w.dir), "SKYPIPE_URL="+sat.url)
	ep, err := provision.FromURL(sat.url)
	if err != nil {
		return err
	}
	if w.nc, err = provision.Dial(ep); err != nil {
		return err
	}
	w.client = pipes.New(w.nc)
	return nil
}

// server is one `skypipe serve` on a free loopback port, with a store and a
// random token (in a 0600 file) of its own in dir.
type server struct {
	bin, dir, store, tokenFile string
	authFile                   string   // "Authorization: Bearer TOKEN", for curl -H @FILE
	http                       bool     // serve the HTTP face too
	args                       []string // more arguments of serve
	env                        []string
	cmd                        *exec.Cmd
	url                        string // with the token
	httpURL                    string
	ready                      time.Duration // from exec to the ready line
}

func newServer(bin, dir string, http bool, env ...string) (*server, error) {
	return newServerArgs(bin, dir, http, nil, env...)
}

// newServerArgs is newServer with more arguments of serve (--tls-cert ...).
func newServerArgs(bin, dir string, http bool, args []string, env ...string) (*server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	s := &server{bin: bin, dir: dir, http: http, args: args, store: filepath.Join(dir, "store"),
		tokenFile: filepath.Join(dir, "token"), authFile: filepath.Join(dir, "auth")}
	if err := os.WriteFile(s.tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.authFile, []byte("Authorization: Bearer "+token+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.env = append(append(baseEnv(dir), "SKYPIPE_TOKEN_FILE="+s.tokenFile), env...)
	if err := s.start(); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// start runs the satellite and waits until it says it is ready (and, with
// the HTTP face, where that is).
func (s *server) start() error {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--store", s.store, "--ready"}
	if s.http {
		args = append(args, "--http", "127.0.0.1:0")
	}
	args = append(args, s.args...)
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Env = s.env
	// serve names its HTTP face on stderr, before it says it is ready.
	errOut, err := s.cmd.StderrPipe()
	if err != nil {
		return err
	}
	face := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errOut)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "skypipe: HTTP face on "); ok {
				face <- strings.Fields(u)[0]
			}
			fmt.Fprintln(os.Stderr, sc.Text())
		}
	}()
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting the satellite: %w", err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	s.ready = time.Since(t0)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok {
		return fmt.Errorf("the satellite did not say it was ready (%q)", line)
	}
	if s.http {
		select {
		case s.httpURL = <-face:
		case <-time.After(10 * time.Second):
			return errors.New("the satellite did not say where its HTTP face is")
		}
	}
	token, err := os.ReadFile(s.tokenFile)
	if err != nil {
		return err
	}
	s.url = strings.Replace(url, "nats://", "nats://"+strings.TrimSpace(string(token))+"@", 1)
	return nil
}

// stop stops the satellite the way 'skypipe stop' does (SIGTERM) and waits.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// baseEnv is the environment of every child: this one's, with skypipe's
// own variables cleared and its local satellite kept inside dir.
func baseEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SKYPIPE_") || strings.HasPrefix(kv, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
}

func (w *world) close() {
	if w.nc != nil {
		w.nc.Close()
	}
	if w.sat != nil {
		w.sat.stop()
	}
	_ = os.RemoveAll(w.dir)
}

// pipeName returns a pipe name no earlier case used.
func (w *world) pipeName(what string) string {
	w.seq++
	return fmt.Sprintf("bench-%s-%d", what, w.seq)
}

// skypipeEnv is the environment of one skypipe process: with -profile, it
// writes a CPU profile named after the case.
func (w *world) skypipeEnv(role string) []string {
	if w.cfg.profile == "" {
		return w.env
	}
	w.profile++
	file := filepath.Join(w.cfg.profile, fmt.Sprintf("%s-%d.pprof", role, w.profile))
	return append(append([]string(nil), w.env...), "SKYPIPE_CPUPROFILE="+file)
}

// run starts skypipe with args.
func (w *world) run(role string, stdin *os.File, out *sink, args ...string) (*proc, error) {
	var in = stdinOf(stdin)
	return startProc(w.skypipeEnv(role), in, out, w.skypipe, args...)
}

// attached waits until n receivers are attached to pipe name.
func (w *world) attached(name string, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := w.client.Attached(context.Background(), name)
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

// resetSatPeak starts the satellite's peak RSS afresh.
func (w *world) resetSatPeak() {
	_ = resetPeakRSS(w.sat.pid())
}

func (w *world) satPeak() int64 { return peakRSS(w.sat.pid()) }
