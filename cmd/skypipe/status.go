package main

import (
	"context"
	"fmt"
	"os"

	"github.com/skypipe/skypipe/provision"
)

// StatusCmd shows which satellite is in use and whether it answers.
type StatusCmd struct{}

// Run prints the satellite, its source, and its round-trip time.
func (c *StatusCmd) Run(ctx context.Context, g *Globals) error {
	var ep provision.Endpoint
	if g.URL != "" {
		var err error
		if ep, err = provision.FromURL(g.URL); err != nil {
			return &usageError{msg: err.Error()}
		}
	} else {
		local, err := g.local()
		if err != nil {
			return err
		}
		if ep, err = local.Endpoint(); err != nil {
			fmt.Println("satellite: local, not running (it starts on first use)")
			return nil
		}
	}
	fmt.Printf("satellite: %s (%s)\n", provision.Redact(ep.URL), ep.Source)
	nc, err := provision.Dial(ep)
	if err != nil {
		fmt.Println("reachable: no")
		return err
	}
	defer nc.Close()
	rtt, err := nc.RTT()
	if err != nil {
		fmt.Println("reachable: no")
		return err
	}
	fmt.Printf("reachable: yes\nround-trip: %v\nserver: nats-server %s\n", rtt, nc.ConnectedServerVersion())
	if ep.PID > 0 {
		fmt.Fprintf(os.Stdout, "pid: %d\n", ep.PID)
	}
	return nil
}
