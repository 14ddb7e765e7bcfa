package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/skypipe/skypipe/pipes"
)

// LsCmd lists the pipes that keep items or have receivers waiting.
type LsCmd struct {
	JSON bool          `name:"json" help:"Print a JSON array instead, one object a pipe (fields: see 'skypipe ls --help')."`
	Wait time.Duration `name:"wait" default:"100ms" env:"SKYPIPE_LS_WAIT" placeholder:"DUR" help:"How long receivers get to answer, beyond this machine's own round trip to the satellite: raise it when receivers are farther from the satellite than this machine is (a receiver 300 ms away needs 300ms or more)."`
}

// Help is the long help of ls.
func (c *LsCmd) Help() string {
	return `Lists, on stdout, the pipes that keep items or have receivers attached
(a pipe that has neither is only a name and is not listed): how many items,
the bytes they hold (their data, as far as it is stored), how many receivers
are attached now (those that answer within --wait of the satellite
passing the question on: 100 ms by default, beyond this machine's own
round trip to the satellite), and what the items are:
  WHOLE    kept from the first byte to the end: a receiver gets all of it
  PARTIAL  kept from a later byte on, because live receivers got its start
           and left mid-item: a receiver gets only a tail and exits 3
           unless --partial-ok
  BROKEN   its last stored frame is an abort mark (its sender gave up
           while a receiver read it, or a cluster lost part of it) or is
           damaged: a receiver writes what is there and exits 3
  SENDING  no end yet: its sender is still writing it
They add up to ITEMS; an item both partial and broken counts as broken, a
partial one still being sent as partial. 'skypipe rm PIPE --item ID' drops
one item; the ids of partial and broken items are in the --json output.

With --json it prints a JSON array, one object a pipe, by name:
  name           the pipe's name ("" for the default pipe)
  default        true for the default pipe
  items          kept items
  bytes          bytes of their data stored
  receivers      receivers attached now
  whole          whole items
  partial        partial items
  broken         broken items
  sending        items still being sent
  partial_items  ids of the partial items, oldest first
  broken_items   ids of the broken items, oldest first

Examples:
  skypipe ls
  skypipe ls --wait 1s      # receivers on another continent count too
  skypipe ls --json | jq -r '.[] | select(.items > 0) | .name'
  skypipe ls --json | jq -r '.[] | select(.name == "jobs") | .broken_items[]'`
}

// lsEntry is one pipe in the documented JSON form.
type lsEntry struct {
	Name      string `json:"name"`
	Default   bool   `json:"default"`
	Items     int    `json:"items"`
	Bytes     uint64 `json:"bytes"`
	Receivers int    `json:"receivers"`
	Whole     int    `json:"whole"`
	Partial   int    `json:"partial"`
	Broken    int    `json:"broken"`
	Sending   int    `json:"sending"`
	// Never null: a script can iterate them.
	PartialItems []string `json:"partial_items"`
	BrokenItems  []string `json:"broken_items"`
}

// Run lists the pipes, on stdout: this listing is the command's data.
func (c *LsCmd) Run(ctx context.Context, g *Globals) error {
	if c.Wait <= 0 {
		return &usageError{msg: fmt.Sprintf("--wait %v: receivers need some time to answer", c.Wait), hint: "the default is 100ms; across continents 1s"}
	}
	nc, ep, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := g.config()
	cfg.CensusWindow = c.Wait
	client := g.pipes(nc, ep, pipes.WithConfig(cfg))
	list, err := client.List(ctx)
	if err != nil {
		return err
	}
	if old, err := client.OldPipes(ctx); err == nil && len(old) > 0 {
		printf("%d pipe(s) keep items stored by an older skypipe, which receivers do not read (e.g. %q)", len(old), old[0])
		hintf("'skypipe setup migrate' moves them, once nothing sends to them")
	}
	if c.JSON {
		out := make([]lsEntry, 0, len(list))
		for _, p := range list {
			out = append(out, lsEntry{
				Name: p.Name, Default: p.Name == pipes.DefaultName,
				Items: p.Items, Bytes: p.Bytes, Receivers: p.Receivers,
				Whole: p.Whole, Partial: p.Partial, Broken: p.Broken, Sending: p.Sending,
				PartialItems: nonNil(p.PartialItems), BrokenItems: nonNil(p.BrokenItems),
			})
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PIPE\tITEMS\tBYTES\tRECEIVERS\tWHOLE\tPARTIAL\tBROKEN\tSENDING")
	for _, p := range list {
		name := strconv.Quote(p.Name)
		if p.Name == pipes.DefaultName {
			name = "(default)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", name, p.Items, p.Bytes, p.Receivers, p.Whole, p.Partial, p.Broken, p.Sending)
	}
	return tw.Flush()
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}
