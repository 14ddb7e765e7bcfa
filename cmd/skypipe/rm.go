package main

import (
	"context"

	"github.com/skypipe/skypipe/pipes"
)

// RmCmd drops the items a pipe keeps.
type RmCmd struct {
	Name string `arg:"" predictor:"pipe" help:"Pipe whose kept items to drop (\"\" for the default pipe)."`
}

// Run drops the items and says how many, on stderr; a pipe that keeps
// none is not an error (a script may clear a queue that is empty), but it
// is said.
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
	switch n {
	case 0:
		printf("pipe %q keeps no items: nothing to drop", c.Name)
	case 1:
		printf("dropped 1 kept item from pipe %q", c.Name)
	default:
		printf("dropped %d kept items from pipe %q", n, c.Name)
	}
	return nil
}
