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
	sat     *exec.Cmd
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

// startSatellite runs `skypipe serve` on a free loopback port with a
// random token from a 0600 file, and waits for its ready line.
func (w *world) startSatellite() error {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	tokenFile := filepath.Join(w.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	w.authFile = filepath.Join(w.dir, "auth")
	if err := os.WriteFile(w.authFile, []byte("Authorization: Bearer "+token+"\n"), 0o600); err != nil {
		return err
	}
	store := filepath.Join(w.dir, "store")
	w.sat = exec.Command(w.skypipe, "serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--store", store, "--ready")
	w.sat.Env = append(baseEnv(w.dir), "SKYPIPE_TOKEN_FILE="+tokenFile)
	if w.cfg.profile != "" {
		w.sat.Env = append(w.sat.Env, "SKYPIPE_CPUPROFILE="+filepath.Join(w.cfg.profile, "satellite.pprof"))
	}
	// serve names its HTTP face on stderr, before it says it is ready.
	errOut, err := w.sat.StderrPipe()
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
	out, err := w.sat.StdoutPipe()
	if err != nil {
		return err
	}
	if err := w.sat.Start(); err != nil {
		return fmt.Errorf("starting the satellite: %w", err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok {
		return fmt.Errorf("the satellite did not say it was ready (%q)", line)
	}
	select {
	case w.httpURL = <-face:
	case <-time.After(10 * time.Second):
		return errors.New("the satellite did not say where its HTTP face is")
	}
	url = strings.Replace(url, "nats://", "nats://"+token+"@", 1)
	w.env = append(baseEnv(w.dir), "SKYPIPE_URL="+url)
	ep, err := provision.FromURL(url)
	if err != nil {
		return err
	}
	if w.nc, err = provision.Dial(ep); err != nil {
		return err
	}
	w.client = pipes.New(w.nc)
	return nil
}

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
	if w.sat != nil && w.sat.Process != nil {
		_ = w.sat.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = w.sat.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = w.sat.Process.Kill()
			<-done
		}
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
	_ = resetPeakRSS(w.sat.Process.Pid)
}

func (w *world) satPeak() int64 { return peakRSS(w.sat.Process.Pid) }
