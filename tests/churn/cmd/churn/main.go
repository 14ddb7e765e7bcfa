// Command churn runs tests/churn against the satellite SKYPIPE_URL names:
// rounds of an item kept on a pipe name, then taken. The fault suite runs
// it built without the race detector, which would slow a hundred thousand
// rounds tenfold and find nothing the other tests do not.
//
//	SKYPIPE_URL=nats://TOKEN@HOST:PORT churn -rounds 100000 -workers 8 -name 'build-%d-done'
//
// It prints one line, "rounds N elapsed SECONDS", and exits 1 on the first
// round that fails. With -takers N (and -names 1 or N) it runs a crowd of
// waiting takers instead (churn.Waiters) and prints "takers N attach
// SECONDS fire SECONDS live FIRES".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/tests/churn"
)

func main() {
	rounds := flag.Int("rounds", 1000, "items to keep and take")
	workers := flag.Int("workers", 8, "connections at once")
	takers := flag.Int("takers", 0, "instead: this many takers wait, each on a connection of its own, then each is fired once (see -names)")
	names := flag.Int("names", 1, "with -takers: the takers wait on 1 name, or each on its own (the same number as -takers)")
	name := flag.String("name", "churn-%d", "the pipe of round i: a format with %d; or a name each worker uses for all its rounds, with -WORKER appended")
	flag.Parse()
	if *takers > 0 {
		if err := crowd(churn.Crowd{Takers: *takers, Names: *names}); err != nil {
			fmt.Fprintln(os.Stderr, "churn:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*rounds, *workers, *name); err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}

func run(rounds, workers int, name string) error {
	ep, err := provision.FromURL(os.Getenv("SKYPIPE_URL"))
	if err != nil {
		return err
	}
	plan := churn.Plan{Rounds: rounds, Workers: workers, Name: func(w, _ int) string { return fmt.Sprintf("%s-%d", name, w) }}
	if strings.Contains(name, "%d") {
		plan.Name = func(_, i int) string { return fmt.Sprintf(name, i) }
	}
	res, err := churn.Run(context.Background(), func() (*nats.Conn, error) { return provision.Dial(ep) }, plan)
	if err != nil {
		return err
	}
	fmt.Printf("rounds %d elapsed %.3f\n", res.Rounds, res.Elapsed.Seconds())
	return nil
}

func crowd(c churn.Crowd) error {
	ep, err := provision.FromURL(os.Getenv("SKYPIPE_URL"))
	if err != nil {
		return err
	}
	res, err := churn.Waiters(context.Background(), func() (*nats.Conn, error) { return provision.Dial(ep) }, c)
	if err != nil {
		return err
	}
	fmt.Printf("takers %d attach %.3f fire %.3f live %d\n", c.Takers, res.Attach.Seconds(), res.Fire.Seconds(), res.Live)
	return nil
}
