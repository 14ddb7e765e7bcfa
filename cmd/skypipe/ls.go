package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/skypipe/skypipe/pipes"
)

// LsCmd lists the pipes that keep items.
type LsCmd struct {
	JSON bool `name:"json" help:"Print a JSON array instead, one object a pipe (fields: see 'skypipe ls --help')."`
}

// Help is the long help of ls.
func (c *LsCmd) Help() string {
	return `Lists, on stdout, the pipes that keep items: how many, the bytes the
satellite stores for them (framing included), and how many receivers are
attached now.

With --json it prints a JSON array, one object a pipe, by name:
  name       the pipe's name ("" for the default pipe)
  default    true for the default pipe
  items      kept items
  bytes      bytes stored for them, framing included
  receivers  receivers attached now

Examples:
  skypipe ls
  skypipe ls --json | jq -r '.[] | select(.items > 0) | .name'`
}

// lsEntry is one pipe in the documented JSON form.
type lsEntry struct {
	Name      string `json:"name"`
	Default   bool   `json:"default"`
	Items     int    `json:"items"`
	Bytes     uint64 `json:"bytes"`
	Receivers int    `json:"receivers"`
}

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
	if c.JSON {
		out := make([]lsEntry, 0, len(list))
		for _, p := range list {
			out = append(out, lsEntry{Name: p.Name, Default: p.Name == pipes.DefaultName, Items: p.Items, Bytes: p.Bytes, Receivers: p.Receivers})
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
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
