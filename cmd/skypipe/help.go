package main

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kong"
)

// Flag groups of the help.
var (
	connectionGroup = &kong.Group{Key: "connection", Title: "Connection flags (every command):"}
	pipeGroup       = &kong.Group{Key: "pipe", Title: "Pipe flags (send or receive: skypipe [flags] [NAME]):"}
)

// printHelp is kong's help with two changes. The top level shows the pipe
// command's flags, since sending and receiving is what a bare 'skypipe
// NAME' does; every other help leaves the connection flags out, which the
// top level shows once, and says where they are.
func printHelp(options kong.HelpOptions, ctx *kong.Context) error {
	root := ctx.Model.Node
	node := ctx.Selected()
	if node == nil || node == root {
		return withPipeFlags(root, func() error { return kong.DefaultHelpPrinter(options, ctx) })
	}
	var names []string
	for _, f := range root.Flags {
		if f.Group != nil && f.Group.Key == connectionGroup.Key && !f.Hidden {
			f.Hidden = true
			defer func() { f.Hidden = false }()
			names = append(names, "--"+f.Name)
		}
	}
	if err := kong.DefaultHelpPrinter(options, ctx); err != nil {
		return err
	}
	if len(names) > 0 {
		fmt.Fprintf(ctx.Stdout, "\nConnection flags (%s): see 'skypipe --help'.\n", strings.Join(names, ", "))
	}
	return nil
}

// withPipeFlags runs f with the pipe command's flags shown on root, as a
// group of their own.
func withPipeFlags(root *kong.Node, f func() error) error {
	var pipe *kong.Node
	for _, c := range root.Children {
		if c.Name == "pipe" {
			pipe = c
		}
	}
	if pipe == nil {
		return f()
	}
	saved := root.Flags
	defer func() { root.Flags = saved }()
	root.Flags = append([]*kong.Flag(nil), saved...)
	for _, fl := range pipe.Flags {
		if fl.Hidden {
			continue
		}
		shown := *fl
		if shown.Group == nil {
			shown.Group = pipeGroup
		}
		root.Flags = append(root.Flags, &shown)
	}
	return f()
}
