package main

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/provision"
)

// connect reaches the satellite: --url / SKYPIPE_URL if set, else the
// local one, started on first use.
func (g *Globals) connect(ctx context.Context) (*nats.Conn, provision.Endpoint, error) {
	if g.URL != "" {
		ep, err := provision.FromURL(g.URL)
		if err != nil {
			return nil, ep, &usageError{msg: err.Error(), hint: "SKYPIPE_URL looks like nats://TOKEN@127.0.0.1:4222"}
		}
		nc, err := provision.Dial(ep)
		return nc, ep, err
	}
	local, err := g.local()
	if err != nil {
		return nil, provision.Endpoint{}, err
	}
	return local.Connect(ctx)
}

func (g *Globals) local() (provision.Local, error) {
	paths, err := provision.DefaultPaths()
	if err != nil {
		return provision.Local{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return provision.Local{}, fmt.Errorf("finding the skypipe binary: %w", err)
	}
	return provision.Local{Paths: paths, Exe: exe}, nil
}
