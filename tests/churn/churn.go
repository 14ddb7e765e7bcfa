// Package churn uses many pipe names once each, through the pipes library,
// the way a CI system or a deploy script uses one-off trigger names
// (skypipe build-$ID-done): for each name an item kept with nobody
// waiting, then taken by a receiver. The fault suite and the benchmark
// run it against a real satellite and look at what the names cost it.
package churn

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/pipes"
)

// Result is what a Run did.
type Result struct {
	Rounds  int           // items kept and taken
	Elapsed time.Duration // for all of them
}

// Plan says what a Run does.
type Plan struct {
	Rounds  int // items to keep and take
	Workers int // connections at once, each as a skypipe process has one
	// Name is the pipe of round i, run by worker w. No two workers may use
	// one name at once: each round takes exactly the item it kept.
	Name func(w, i int) string
}

// Run keeps and takes p.Rounds items, each connection dialled with dial.
// Each item is taken whole, or Run fails.
func Run(ctx context.Context, dial func() (*nats.Conn, error), p Plan) (Result, error) {
	n, workers := p.Rounds, p.Workers
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if first == nil {
			first = err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for w := range workers {
		nc, err := dial()
		if err != nil {
			cancel()
			wg.Wait()
			return Result{}, err
		}
		wg.Go(func() {
			defer nc.Close()
			c := pipes.New(nc)
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := round(ctx, c, p.Name(w, i), i); err != nil {
					fail(err)
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return Result{}, first
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return Result{Rounds: n, Elapsed: time.Since(start)}, nil
}

// round keeps item i in pipe name and takes an item out of it.
func round(ctx context.Context, c *pipes.Client, name string, i int) error {
	item := []byte(strconv.Itoa(i) + "\n")
	res, err := c.Send(ctx, name, bytes.NewReader(item))
	if err != nil {
		return fmt.Errorf("round %d, keeping an item in %q: %w", i, name, err)
	}
	if !res.Kept {
		return fmt.Errorf("round %d: the item in %q went live, not kept: nobody else receives there", i, name)
	}
	var out bytes.Buffer
	got, err := c.Receive(ctx, name, &out, pipes.ReceiveOptions{})
	if err != nil {
		return fmt.Errorf("round %d, taking the item of %q: %w", i, name, err)
	}
	if got.Items != 1 || !bytes.Equal(out.Bytes(), item) {
		return fmt.Errorf("round %d: took %d item(s), %q, from %q, want %q", i, got.Items, out.String(), name, item)
	}
	return nil
}
