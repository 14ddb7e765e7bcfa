package main

import (
	"context"
	"errors"

	"github.com/skypipe/skypipe/provision"
)

// StopCmd stops the local background satellite.
type StopCmd struct{}

// Run stops it; kept items stay on disk for the next one.
func (c *StopCmd) Run(ctx context.Context, g *Globals) error {
	local, err := g.local()
	if err != nil {
		return err
	}
	ep, err := local.Stop(ctx)
	if errors.Is(err, provision.ErrNoLocal) {
		printf("no local satellite is running")
		return nil
	}
	if err != nil {
		return err
	}
	printf("stopped the local satellite (pid %d); kept items stay on disk", ep.PID)
	return nil
}
