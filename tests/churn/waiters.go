package churn

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/pipes"
)

// Crowd says what a Waiters run does: Takers receivers wait, each on a
// connection of its own as a machine has, on one pipe name (Names 1) or
// each on its own (Names == Takers); then one sender fires each name:
// Takers times the one name, once each of the many.
type Crowd struct {
	Takers int
	Names  int // 1 or Takers
}

// CrowdResult is what a Waiters run did.
type CrowdResult struct {
	Attach time.Duration // until ls counted every taker
	Fire   time.Duration // from the first fire until every taker returned
	Live   int           // fires that went live to a waiting taker (the rest were kept, then taken)
}

// Waiters starts the crowd, fires, and checks that each taker got exactly
// one whole item, every fire reached exactly one taker (on its own name,
// the taker of that name), and nothing is left kept.
func Waiters(ctx context.Context, dial func() (*nats.Conn, error), c Crowd) (CrowdResult, error) {
	var res CrowdResult
	if c.Takers <= 0 || (c.Names != 1 && c.Names != c.Takers) {
		return res, fmt.Errorf("a crowd of %d takers on %d names: names must be 1 or the takers", c.Takers, c.Names)
	}
	name := func(i int) string {
		if c.Names == 1 {
			return "fire"
		}
		return fmt.Sprintf("fire-%d", i)
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		outs = make([]bytes.Buffer, c.Takers)
		errs []error
	)
	defer func() { cancel(); wg.Wait() }()
	t0 := time.Now()
	for i := range c.Takers {
		nc, err := dial()
		if err != nil {
			return res, fmt.Errorf("connecting taker %d: %w", i, err)
		}
		wg.Go(func() {
			defer nc.Close()
			got, err := pipes.New(nc).Receive(ctx, name(i), &outs[i], pipes.ReceiveOptions{})
			if err == nil && got.Items != 1 {
				err = fmt.Errorf("took %d items", got.Items)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("taker %d on %q: %w", i, name(i), err))
				mu.Unlock()
			}
		})
	}
	nc, err := dial()
	if err != nil {
		return res, err
	}
	defer nc.Close()
	sender := pipes.New(nc)
	// Every taker attached, counted by one census of every pipe (ls).
	for {
		list, err := sender.List(ctx)
		if err != nil {
			return res, fmt.Errorf("counting the takers: %w", err)
		}
		attached := 0
		for _, p := range list {
			attached += p.Receivers
		}
		if attached == c.Takers {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("%d of %d takers attached: %w", attached, c.Takers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.Attach = time.Since(t0)
	t1 := time.Now()
	want := make([]string, c.Takers)
	for i := range c.Takers {
		want[i] = fmt.Sprintf("fire %d\n", i)
		sent, err := sender.Send(ctx, name(i), strings.NewReader(want[i]))
		if err != nil {
			return res, fmt.Errorf("fire %d: %w", i, err)
		}
		if !sent.Kept {
			res.Live++
		}
	}
	wg.Wait()
	res.Fire = time.Since(t1)
	if len(errs) > 0 {
		return res, fmt.Errorf("%d of %d takers failed, e.g. %w", len(errs), c.Takers, errs[0])
	}
	got := make([]string, c.Takers)
	for i := range outs {
		got[i] = outs[i].String()
		if c.Names > 1 && got[i] != want[i] {
			return res, fmt.Errorf("the taker of %q got %q, want %q", name(i), got[i], want[i])
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	for i := range got {
		if got[i] != want[i] {
			return res, fmt.Errorf("the takers of %q got %q, not each fire once (e.g. %q)", name(0), got, want[i])
		}
	}
	list, err := sender.List(ctx)
	if err != nil {
		return res, err
	}
	for _, p := range list {
		if p.Items > 0 {
			return res, fmt.Errorf("pipe %q still keeps %d items", p.Name, p.Items)
		}
	}
	return res, nil
}
