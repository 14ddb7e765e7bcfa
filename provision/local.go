package provision

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// startTimeout bounds how long a new local satellite may take to be ready.
const startTimeout = 15 * time.Second

// Local is the local background satellite of one user.
type Local struct {
	Paths Paths
	// Exe is the skypipe binary that runs the satellite (`skypipe serve`).
	Exe string
}

type cached struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// Connect reaches the local satellite through the cached endpoint, and
// starts one if none answers. Two concurrent first calls start one, not two.
func (l Local) Connect(ctx context.Context) (*nats.Conn, Endpoint, error) {
	if ep, err := l.cachedEndpoint(); err == nil {
		if nc, err := Dial(ep); err == nil {
			return nc, ep, nil
		}
	}
	return l.repair(ctx)
}

// Endpoint returns the cached endpoint, without checking it.
func (l Local) Endpoint() (Endpoint, error) { return l.cachedEndpoint() }

func (l Local) cachedEndpoint() (Endpoint, error) {
	b, err := os.ReadFile(l.Paths.endpointFile())
	if err != nil {
		return Endpoint{}, err
	}
	var c cached
	if err := json.Unmarshal(b, &c); err != nil {
		return Endpoint{}, err
	}
	tok, err := ReadToken(l.Paths.tokenFile())
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{URL: c.URL, Token: tok, Source: "local", PID: c.PID}, nil
}

// repair starts a satellite under the lock, unless another process did.
func (l Local) repair(ctx context.Context) (*nats.Conn, Endpoint, error) {
	if err := l.Paths.mkdirs(); err != nil {
		return nil, Endpoint{}, err
	}
	unlock, err := lock(l.Paths.lockFile())
	if err != nil {
		return nil, Endpoint{}, err
	}
	defer unlock()
	if ep, err := l.cachedEndpoint(); err == nil {
		if nc, err := Dial(ep); err == nil {
			return nc, ep, nil
		}
		// Stale: whatever ran there is gone or is not ours.
		if ep.PID > 0 && isSatellite(ep.PID) {
			_ = syscall.Kill(ep.PID, syscall.SIGTERM)
		}
	}
	tok, err := ensureToken(l.Paths.tokenFile())
	if err != nil {
		return nil, Endpoint{}, err
	}
	ep, err := l.start(ctx, tok)
	if err != nil {
		return nil, Endpoint{}, err
	}
	nc, err := Dial(ep)
	if err != nil {
		return nil, Endpoint{}, err
	}
	return nc, ep, nil
}

// start runs `skypipe serve` detached, waits for its ready line, and caches
// its endpoint.
func (l Local) start(ctx context.Context, token string) (Endpoint, error) {
	logf, err := os.OpenFile(l.Paths.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return Endpoint{}, err
	}
	defer logf.Close()
	cmd := exec.Command(l.Exe, "serve",
		"--listen", "127.0.0.1:0",
		"--store", l.Paths.StoreDir(),
		"--token-file", l.Paths.tokenFile(),
		"--ready", "--log")
	cmd.Stderr = logf
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "SKYPIPE_TOKEN=") // never pass a token along by accident
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Endpoint{}, err
	}
	if err := cmd.Start(); err != nil {
		return Endpoint{}, fmt.Errorf("starting the local satellite: %w", err)
	}
	pid := cmd.Process.Pid
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	var url string
	select {
	case line := <-lines:
		url = strings.TrimPrefix(line, "ready ")
		if url == line || url == "" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return Endpoint{}, fmt.Errorf("the local satellite failed to start; see %s", l.Paths.LogFile())
		}
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return Endpoint{}, fmt.Errorf("the local satellite was not ready in %v; see %s", startTimeout, l.Paths.LogFile())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return Endpoint{}, ctx.Err()
	}
	_ = cmd.Process.Release()
	b, _ := json.Marshal(cached{URL: url, PID: pid})
	if err := writePrivate(l.Paths.endpointFile(), b); err != nil {
		return Endpoint{}, err
	}
	return Endpoint{URL: url, Token: token, Source: "local", PID: pid}, nil
}

// Stop stops the local satellite and waits until it is gone.
func (l Local) Stop(ctx context.Context) (Endpoint, error) {
	ep, err := l.cachedEndpoint()
	if err != nil {
		return Endpoint{}, ErrNoLocal
	}
	defer os.Remove(l.Paths.endpointFile())
	if ep.PID <= 0 || !isSatellite(ep.PID) {
		return ep, ErrNoLocal
	}
	if err := syscall.Kill(ep.PID, syscall.SIGTERM); err != nil {
		return ep, ErrNoLocal
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for alive(ep.PID) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(ep.PID, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ep, ctx.Err()
		}
	}
	return ep, nil
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	// A zombie is not alive, but only its parent can reap it.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// isSatellite tells whether pid runs `skypipe serve`, where /proc can say;
// elsewhere it trusts the cache.
func isSatellite(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		if _, statErr := os.Stat("/proc/self"); statErr == nil {
			return false
		}
		return alive(pid)
	}
	args := strings.Split(string(b), "\x00")
	return len(args) > 1 && args[1] == "serve" && alive(pid)
}

// lock takes an exclusive lock on path, waiting for it.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
