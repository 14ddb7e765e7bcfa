package main

// The names case (issue 11): many pipe names used once each, as a CI system
// uses one-off trigger names, against a fresh satellite; its baseline is
// another fresh satellite on which one name is used as many times. What
// the names leave on the satellite: memory, open files, store, the time to
// list pipes and to start again on the store.

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/tests/churn"
)

// namesWorkers is how many connections use names at once.
const namesWorkers = 4

// ls times one `skypipe ls` process against the satellite: the next
// command a user runs.
func (s *server) ls() (time.Duration, error) {
	cmd := exec.Command(s.bin, "ls")
	cmd.Env = append(baseEnv(filepath.Dir(s.store)), "SKYPIPE_URL="+s.url)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("skypipe ls: %v: %s", err, out)
	}
	return time.Since(t0), nil
}

// namesRun is what one satellite showed.
type namesRun struct {
	rate                   float64 // rounds a second
	freshRSS, afterRSS     int64
	warmRSS                int64 // after one round a worker
	restartRSS             int64
	fds                    int
	storeBytes             int64
	ls, restart, lsRestart time.Duration
}

// churnOn uses a fresh satellite for rounds rounds, each on name(i).
func (b *bench) churnOn(what string, plan churn.Plan) (namesRun, error) {
	var r namesRun
	s, err := newServer(b.w.skypipe, filepath.Join(b.w.dir, what), false)
	if err != nil {
		return r, err
	}
	defer s.stop()
	r.freshRSS = rssOf(s.pid())
	dial := func() (*nats.Conn, error) {
		ep, err := provision.FromURL(s.url)
		if err != nil {
			return nil, err
		}
		return provision.Dial(ep)
	}
	// One round a worker first: the satellite's first use (its stream,
	// the code paths of a keep and a take) is not what names cost.
	warm := churn.Plan{Rounds: plan.Workers, Workers: plan.Workers, Name: func(w, _ int) string { return fmt.Sprintf("warm-%d", w) }}
	if _, err := churn.Run(context.Background(), dial, warm); err != nil {
		return r, fmt.Errorf("warming up: %w", err)
	}
	r.warmRSS = rssOf(s.pid())
	res, err := churn.Run(context.Background(), dial, plan)
	if err != nil {
		return r, err
	}
	r.rate = float64(res.Rounds) / res.Elapsed.Seconds()
	r.afterRSS, r.fds = rssOf(s.pid()), settledFiles(s.pid())
	r.storeBytes = dirBytes(s.store)
	if r.ls, err = s.ls(); err != nil {
		return r, err
	}
	s.stop()
	if err := s.start(); err != nil {
		return r, fmt.Errorf("starting again on the store: %w", err)
	}
	r.restart = s.ready
	if r.lsRestart, err = s.ls(); err != nil {
		return r, err
	}
	r.restartRSS = rssOf(s.pid())
	return r, nil
}

// namesCase: cfg.names distinct names against one name as often.
func (b *bench) namesCase() error {
	n := b.cfg.names
	c := fmt.Sprintf("%d names, each kept and taken once", n)
	b.step("%s, %d at once", c, namesWorkers)
	got, err := b.churnOn("names", churn.Plan{Rounds: n, Workers: namesWorkers, Name: func(_, i int) string { return fmt.Sprintf("build-%d-done", i) }})
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	b.step("baseline: one name a worker, %d rounds", n)
	base, err := b.churnOn("one-name", churn.Plan{Rounds: n, Workers: namesWorkers, Name: func(w, _ int) string { return fmt.Sprintf("build-done-%d", w) }})
	if err != nil {
		return fmt.Errorf("names, baseline: %w", err)
	}
	secs := func(d time.Duration) float64 { return d.Seconds() }
	b.rep.add(row{Case: c, Measure: "rounds a second (baseline: one name)", Value: got.rate, Unit: "rounds/s", Base: base.rate})
	b.rep.add(row{Case: c, Measure: "satellite RSS, fresh", Value: float64(got.freshRSS) / mib, Unit: "MiB", Base: float64(base.freshRSS) / mib})
	b.rep.add(row{Case: c, Measure: "satellite RSS after (baseline: one name as often)", Value: float64(got.afterRSS) / mib, Unit: "MiB", Base: float64(base.afterRSS) / mib, Target: atMostRatio(1.2)})
	b.rep.add(row{Case: c, Measure: "satellite RSS after, against its own fresh RSS", Value: float64(got.afterRSS) / float64(got.freshRSS), Unit: "x"})
	b.rep.add(row{Case: c, Measure: "satellite RSS after, against its own after its first names", Value: float64(got.afterRSS) / float64(got.warmRSS), Unit: "x"})
	b.rep.add(row{Case: c, Measure: "satellite RSS after a restart, against its fresh RSS", Value: float64(got.restartRSS) / float64(got.freshRSS), Unit: "x", Target: below(1.2)})
	b.rep.add(row{Case: c, Measure: "satellite open files after", Value: float64(got.fds), Unit: "files", Base: float64(base.fds), Target: atMostRatio(1)})
	b.rep.add(row{Case: c, Measure: "store on disk after", Value: float64(got.storeBytes) / mib, Unit: "MiB", Base: float64(base.storeBytes) / mib})
	b.rep.add(row{Case: c, Measure: "`skypipe ls` after", Value: secs(got.ls), Unit: "s", Base: secs(base.ls), Target: below(1)})
	b.rep.add(row{Case: c, Measure: "restart on the store: start to ready", Value: secs(got.restart), Unit: "s", Base: secs(base.restart), Target: below(1)})
	b.rep.add(row{Case: c, Measure: "restart: the next command (`skypipe ls`)", Value: secs(got.lsRestart), Unit: "s", Base: secs(base.lsRestart), Target: below(1)})
	return nil
}

// rssOf reads a process's VmRSS, in bytes.
func rssOf(pid int) int64 {
	kb, _ := statusKiB(pid, "VmRSS")
	return kb * 1024
}

// settledFiles counts a process's open files once the connections that
// just closed are gone: the fewest seen over a second.
func settledFiles(pid int) int {
	fewest := openFileCount(pid)
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		fewest = min(fewest, openFileCount(pid))
	}
	return fewest
}

// openFileCount counts a process's open files.
func openFileCount(pid int) int {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds)
}

// dirBytes adds up the sizes of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
