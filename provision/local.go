package provision

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/nats-io/nats.go"
)

// startTimeout bounds how long a new local satellite may take to be ready.
const startTimeout = 15 * time.Second

// Local is the local background satellite of one user.
type Local struct {
	Paths Paths
	// Exe is the skypipe binary that runs the satellite (`skypipe serve`).
	Exe string
	// Started, if set, is told of a satellite Connect started: its
	// process id and the directory of its data (Paths.Data).
	Started func(pid int, dataDir string)
	// Reconnect is the Endpoint's: how long a lost connection is tried
	// again.
	Reconnect time.Duration
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
	return Endpoint{URL: c.URL, Token: tok, Source: "local", PID: c.PID, Reconnect: l.Reconnect}, nil
}

// repair starts a satellite under the lock, unless another process did.
func (l Local) repair(ctx context.Context) (*nats.Conn, Endpoint, error) {
	if err := l.Paths.mkdirs(); err != nil {
		return nil, Endpoint{}, err
	}
	unlock, err := lock(ctx, l.Paths.lockFile())
	if err != nil {
		return nil, Endpoint{}, err
	}
	defer unlock()
	if ep, err := l.cachedEndpoint(); err == nil {
		if nc, err := Dial(ep); err == nil {
			return nc, ep, nil
		}
		// Stale: whatever ran there is gone, hung, or is not ours.
		if ep.PID > 0 && isSatellite(ep.PID) {
			_ = terminate(ep.PID)
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
	if l.Started != nil {
		l.Started(ep.PID, l.Paths.Data)
	}
	ep.Reconnect = l.Reconnect
	nc, err := Dial(ep)
	if err != nil {
		return nil, Endpoint{}, err
	}
	return nc, ep, nil
}

// start runs `skypipe serve` detached (its own session on Unix, a detached
// process on Windows), waits for its ready line, and caches its endpoint.
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
		"--local",
		"--ready", "--log")
	cmd.Stderr = logf
	// Busy no directory but its own; never pass a token along by accident.
	cmd.Dir = l.Paths.Data
	cmd.Env = append(os.Environ(), "SKYPIPE_TOKEN=")
	detach(cmd)
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

// StopSubject is where a local satellite (serve --local) answers a client
// holding its token with its pid; a message to StopNowSubject then makes it
// shut down cleanly. Two steps, so that the answer is never lost in the
// shutdown: the client knows which satellite it stops before it does. This
// is how Stop works on every system: Windows has no SIGTERM to send a
// detached process.
const (
	StopSubject    = "_SKYPIPE.local.stop"
	StopNowSubject = "_SKYPIPE.local.stop.now"
)

// stopGrace bounds how long Stop waits for the satellite to exit on its own
// before it is killed.
const stopGrace = 10 * time.Second

// Stop stops the local satellite and waits until it is gone: it asks the
// satellite to shut down (StopSubject); a satellite that does not answer
// is sent SIGTERM on Unix. One that is still there after stopGrace is
// killed (SIGKILL; TerminateProcess on Windows).
func (l Local) Stop(ctx context.Context) (Endpoint, error) {
	ep, err := l.cachedEndpoint()
	if err != nil {
		return Endpoint{}, ErrNoLocal
	}
	defer os.Remove(l.Paths.endpointFile())
	asked := askToStop(ep)
	if !asked {
		if ep.PID <= 0 || !isSatellite(ep.PID) {
			return ep, ErrNoLocal
		}
		if err := terminate(ep.PID); err != nil {
			return ep, ErrNoLocal
		}
	}
	if ep.PID <= 0 {
		return ep, nil
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(stopGrace)
	for alive(ep.PID) {
		if time.Now().After(deadline) {
			_ = kill(ep.PID)
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

// askToStop sends the stop request; true if the satellite at ep, the one
// the cache names, took it.
func askToStop(ep Endpoint) bool {
	nc, err := Dial(ep)
	if err != nil {
		return false
	}
	defer nc.Close()
	msg, err := nc.Request(StopSubject, nil, 5*time.Second)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(msg.Data)))
	if err != nil || (ep.PID > 0 && pid != ep.PID) {
		return false
	}
	return nc.Publish(StopNowSubject, nil) == nil && nc.Flush() == nil
}

// lock takes an exclusive lock on path (flock on Unix, LockFileEx on
// Windows), waiting for it as long as ctx allows.
func lock(ctx context.Context, path string) (func(), error) {
	fl := flock.New(path, flock.SetFlag(os.O_CREATE|os.O_RDWR), flock.SetPermissions(0o600))
	ok, err := fl.TryLockContext(ctx, 10*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("locking %s: %w", path, ctx.Err())
	}
	return func() { _ = fl.Close() }, nil
}
