package main

import (
	"context"

	"github.com/skypipe/skypipe/pipes"
)

// RmCmd drops the items a pipe keeps, or one of them.
type RmCmd struct {
	Name string `arg:"" predictor:"pipe" help:"Pipe whose kept items to drop (\"\" for the default pipe)."`
	Item string `help:"Drop only the kept item of this id (as a sender's or receiver's error names it), e.g. a broken one, and leave the others." placeholder:"ID"`
}

// Run drops the items and says how many, on stderr; a pipe that keeps
// none is not an error (a script may clear a queue that is empty), but it
// is said.
func (c *RmCmd) Run(ctx context.Context, g *Globals) error {
	if err := pipes.ValidateName(c.Name); err != nil {
		return err
	}
	nc, ep, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	client := g.pipes(nc, ep)
	if c.Item != "" {
		if err := client.RemoveItem(ctx, c.Name, c.Item); err != nil {
			return err
		}
		printf("dropped kept item %s from pipe %q", c.Item, c.Name)
		return nil
	}
	n, err := client.Remove(ctx, c.Name)
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
