package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/provision"
)

// StatusCmd shows which satellite is in use and whether it answers.
type StatusCmd struct{}

// Help is the long help of status.
func (c *StatusCmd) Help() string {
	return `Prints, on stdout, the satellite in use and where that choice comes from
(--url, --context, 'skypipe setup' or the local one), whether its TLS
certificate is pinned, and its health: round trip, server version, JetStream.
Exits non-zero when it does not answer. Starts nothing.

Examples:
  skypipe status
  SKYPIPE_URL=nats://TOKEN@host:4222 skypipe status`
}

// Run prints the satellite and its health.
func (c *StatusCmd) Run(ctx context.Context, g *Globals) error {
	return describe(ctx, g)
}

// describe prints the satellite in use and its health, without starting
// one.
func describe(ctx context.Context, g *Globals) error {
	ep, remote, err := g.remote()
	if err != nil {
		return err
	}
	if !remote {
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
	if ep.Alt != "" {
		fmt.Printf("also at: %s\n", provision.Redact(ep.Alt))
	}
	if ep.Web != "" {
		fmt.Printf("http face: %s\n", ep.Web)
	}
	nc, err := provision.Dial(ep)
	if err != nil {
		fmt.Println("reachable: no")
		return err
	}
	defer nc.Close()
	if ep.Alt != "" {
		fmt.Printf("connected to: %s\n", nc.ConnectedUrlRedacted())
	}
	_, plain := nc.TLSConnectionState()
	switch {
	case plain != nil:
		fmt.Println("tls: no")
	case ep.WSPublicCA && strings.HasPrefix(nc.ConnectedUrl(), "wss://"):
		fmt.Println("tls: yes, public CA (a TLS proxy in front)")
	case ep.Pinned():
		fmt.Println("tls: yes, CA pinned")
	default:
		fmt.Println("tls: yes, system CAs")
	}
	rtt, err := nc.RTT()
	if err != nil {
		fmt.Println("reachable: no")
		return err
	}
	fmt.Printf("reachable: yes\nround-trip: %v\nserver: nats-server %s\n", rtt, nc.ConnectedServerVersion())
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		fmt.Printf("jetstream: off (%v)\n", err)
		return fmt.Errorf("the satellite answers but JetStream is not available: %w", err)
	}
	fmt.Println("jetstream: on")
	if ep.PID > 0 {
		fmt.Printf("pid: %d\n", ep.PID)
	}
	return nil
}
