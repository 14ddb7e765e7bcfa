package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/skypipe/skypipe/pipes"
)

// LsCmd lists the pipes that keep items.
type LsCmd struct{}

// Run lists the pipes, on stdout: this listing is the command's data.
func (c *LsCmd) Run(ctx context.Context, g *Globals) error {
	nc, ep, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	list, err := g.pipes(nc, ep).List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPE\tITEMS\tBYTES\tRECEIVERS")
	for _, p := range list {
		name := strconv.Quote(p.Name)
		if p.Name == pipes.DefaultName {
			name = "(default)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", name, p.Items, p.Bytes, p.Receivers)
	}
	return tw.Flush()
}
