package main

import (
	"context"

	"github.com/skypipe/skypipe/pipes"
)

// RmCmd drops the items a pipe keeps.
type RmCmd struct {
	Name string `arg:"" help:"Pipe whose kept items to drop (\"\" for the default pipe)."`
}

// Run drops the items and says how many, on stderr.
func (c *RmCmd) Run(ctx context.Context, g *Globals) error {
	if err := pipes.ValidateName(c.Name); err != nil {
		return err
	}
	nc, _, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	n, err := pipes.New(nc).Remove(ctx, c.Name)
	if err != nil {
		return err
	}
	printf("dropped %d kept item(s) from pipe %q", n, c.Name)
	return nil
}
