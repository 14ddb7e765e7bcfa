package provision

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// buildSkypipe builds the skypipe binary for the local satellite to run.
func buildSkypipe(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/skypipe")
	}
	exe := filepath.Join(t.TempDir(), "skypipe")
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	if out, err := exec.Command("go", "build", "-o", exe, "../cmd/skypipe").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

func testLocal(t *testing.T, exe string) Local {
	dir := t.TempDir()
	l := Local{Paths: Paths{Config: filepath.Join(dir, "config"), Data: filepath.Join(dir, "data")}, Exe: exe}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = l.Stop(ctx)
	})
	return l
}

// TestLocalSatelliteStartsOnceAndStopsCleanly: concurrent first calls start
// one detached satellite; Stop asks it to shut down (the way that works on
// Windows too), waits until the process is gone and forgets it.
func TestLocalSatelliteStartsOnceAndStopsCleanly(t *testing.T) {
	l := testLocal(t, buildSkypipe(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	pids := make([]int, 3)
	errs := make([]error, 3)
	for i := range pids {
		wg.Go(func() {
			nc, ep, err := l.Connect(ctx)
			if err == nil {
				nc.Close()
			}
			pids[i], errs[i] = ep.PID, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Connect %d: %v", i, err)
		}
		if pids[i] != pids[0] || pids[i] <= 0 {
			t.Fatalf("concurrent first calls reached satellites %v, want one", pids)
		}
	}
	pid := pids[0]
	if !alive(pid) || !isSatellite(pid) {
		t.Fatalf("pid %d: alive %v, a satellite %v", pid, alive(pid), isSatellite(pid))
	}

	ep, err := l.Stop(ctx)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if ep.PID != pid {
		t.Errorf("stopped pid %d, started %d", ep.PID, pid)
	}
	if alive(pid) {
		t.Errorf("satellite %d still runs after Stop returned", pid)
	}
	if _, err := os.Stat(l.Paths.endpointFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoint cache left behind: %v", err)
	}
	if _, err := l.Stop(ctx); !errors.Is(err, ErrNoLocal) {
		t.Errorf("second Stop: %v, want ErrNoLocal", err)
	}
	// The store stays for the next satellite.
	if _, err := os.Stat(l.Paths.StoreDir()); err != nil {
		t.Errorf("store: %v", err)
	}
	nc, ep2, err := l.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect after Stop: %v", err)
	}
	nc.Close()
	if ep2.PID == pid || ep2.PID <= 0 {
		t.Errorf("after Stop, Connect reached pid %d (stopped: %d)", ep2.PID, pid)
	}
}

// TestLocalSatelliteLockHonoursContext: a start that waits for another
// process's lock gives up when its context ends.
func TestLocalSatelliteLockHonoursContext(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "local.lock")
	unlock, err := lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock: %v, want the context's deadline", err)
	}
}
