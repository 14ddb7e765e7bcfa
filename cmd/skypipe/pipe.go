package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/skypipe/skypipe/pipes"
)

// PipeCmd sends stdin into a pipe, or receives from it to stdout.
type PipeCmd struct {
	Name    string        `arg:"" optional:"" predictor:"pipe" help:"Pipe name: any UTF-8 text up to 255 bytes (default: the default pipe). For a pipe named like a command, say 'skypipe pipe NAME'."`
	Send    bool          `help:"Send, whatever stdin is." xor:"mode"`
	Recv    bool          `help:"Receive, whatever stdin is." xor:"mode"`
	Follow  bool          `short:"f" help:"Keep receiving across items, kept and live, instead of exiting after one."`
	Lines   bool          `short:"l" help:"Send every line of stdin as an item of its own, e.g. one job a line for a queue of receivers."`
	Timeout time.Duration `help:"Receive: exit 124 when nothing arrives for this long (e.g. 30s, 5m)." placeholder:"DUR"`
}

// Help is the long help of the pipe command.
func (c *PipeCmd) Help() string {
	return `Without --send or --recv, skypipe sends when stdin is a pipe, file or socket,
and receives when it is a terminal or a character device such as /dev/null.

A receiver takes the oldest item the pipe keeps that no other receiver is
taking, else waits for the next one; it writes it to stdout and exits 0 at
its end. With --follow it goes on with the next item.

Examples:
  skypipe --recv build < "$job_input"    receive although stdin is a file
  ssh host 'skypipe --send logs' < f     send although stdin is a tty
  skypipe --timeout 30s deploy-done      wait at most 30s for a trigger

With --lines (-l) a sender sends each line of stdin (its '\n' included) as
an item of its own, as if one sender ran per line, in one process: a queue
of jobs that receivers take one at a time.

  ls *.jpg | skypipe -l jobs             one kept item a file name
  f=$(skypipe jobs) && convert "$f" ...  a worker takes one job
  skypipe -f jobs | xargs -n1 ./work     or takes them all, line by line`
}

// Run sends or receives.
func (c *PipeCmd) Run(ctx context.Context, g *Globals) error {
	if err := pipes.ValidateName(c.Name); err != nil {
		return err
	}
	send, err := c.sending()
	if err != nil {
		return err
	}
	if send && (c.Follow || c.Timeout != 0) {
		return &usageError{msg: "--follow and --timeout are for receivers, and stdin makes this a sender", hint: "add --recv to receive"}
	}
	if !send && c.Lines {
		return &usageError{msg: "--lines is for senders, and this is a receiver", hint: "give the lines on stdin: ls | skypipe -l NAME"}
	}
	if c.Timeout < 0 {
		return &usageError{msg: "--timeout must not be negative"}
	}
	nc, ep, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	client := g.pipes(nc, ep, pipes.WithNotice(notice))
	if send && c.Lines {
		_, err := client.SendLines(ctx, c.Name, os.Stdin)
		return err
	}
	if send {
		_, err := client.Send(ctx, c.Name, os.Stdin)
		return err
	}
	_, err = client.Receive(ctx, c.Name, os.Stdout, pipes.ReceiveOptions{Follow: c.Follow, Timeout: c.Timeout})
	if errors.Is(err, pipes.ErrTimeout) {
		return fmt.Errorf("%w (%v)", err, c.Timeout)
	}
	return err
}

// sending decides the mode: forced by a flag, else from what stdin is.
func (c *PipeCmd) sending() (bool, error) {
	switch {
	case c.Send:
		return true, nil
	case c.Recv:
		return false, nil
	}
	fi, err := os.Stdin.Stat()
	if err != nil {
		return false, nil // no stdin at all: receive
	}
	switch m := fi.Mode(); {
	case m&os.ModeCharDevice != 0:
		return false, nil
	case m.IsDir():
		return false, &usageError{msg: "stdin is a directory", hint: "send a file: skypipe NAME < FILE"}
	default: // pipe, socket, regular file
		return true, nil
	}
}
