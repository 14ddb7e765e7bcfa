package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// PipeCmd sends stdin into a pipe, or receives from it to stdout.
type PipeCmd struct {
	Name      string        `arg:"" optional:"" predictor:"pipe" help:"Pipe name: any UTF-8 text up to 255 bytes (default: the default pipe). For a pipe named like a command, say 'skypipe pipe NAME'."`
	Send      bool          `help:"Send stdin, whatever stdin and stdout are." xor:"mode"`
	Recv      bool          `help:"Receive to stdout, whatever stdin and stdout are." xor:"mode"`
	Follow    bool          `short:"f" help:"Receive: keep receiving across items instead of exiting after one; an item that breaks is reported on stderr and skipped."`
	Lines     bool          `short:"l" help:"Send every line of stdin as an item of its own: a job queue."`
	Timeout   time.Duration `help:"Receive: exit 124 when nothing arrives for this long (e.g. 30s, 5m)." placeholder:"DUR"`
	Take      bool          `help:"Receive as a taker: each item for this receiver alone (the default unless stdout is a terminal)." xor:"role"`
	Listen    bool          `help:"Receive as a listener: a copy of what is sent live, whoever takes it (the default when stdout is a terminal)." xor:"role"`
	PartialOK bool          `name:"partial-ok" help:"Receive: exit 0 when only a tail of the item came (exit 3 otherwise)."`
	Strict    bool          `help:"Follow: stop at the first item that is not whole, with its exit code."`
	ForceTTY  bool          `name:"force-tty" help:"Receive: write binary data to a terminal too (refused otherwise: stdout a terminal, and the first bytes not text)." env:"SKYPIPE_FORCE_TTY"`
}

// Help is the long help of the pipe command.
func (c *PipeCmd) Help() string {
	return `Sending or receiving:
  stdin a terminal or /dev/null          receive
  stdin a pipe or file, stdout a
    terminal or /dev/null                send
  stdin and stdout both redirected       error: say --send or --recv
  -l implies sending; -f, --timeout, --take, --listen, --partial-ok and
  --strict imply receiving.

Takers and listeners. A taker gets each item for itself alone: the oldest
item the pipe keeps that no other receiver is taking, else the next item a
sender sends, which the sender hands to exactly one of the takers waiting
(as a send on a Go channel wakes one receiver). A listener gets a copy of
what is sent live, whoever takes it, joining an item under way at its next
line (as a log tail does); with no taker waiting, listeners take what is
sent and it is not kept; a listener also takes a kept item if the pipe
keeps one and no taker waits. A receiver is a taker unless its stdout is a terminal.

A receiver without -f exits 0 at the end of one whole item, 3 if only a
tail of it came or it broke mid-way (stderr says how many bytes came), 124
on --timeout. With -f it goes on with the next item; an item that breaks
is reported on stderr, a line it left open is ended with a newline, and
-f goes on (--strict: stops with that item's exit code).

On a terminal (stderr), a receiver says it waits, a transfer longer than
a second shows its progress, and each end closes with a summary line;
--quiet says none of it. A receiver does not write binary data to a
terminal (stdout) unless --force-tty: it exits 1, and the item stays.

Examples:
  f=$(skypipe jobs) && convert "$f" ...   a worker takes one job
  skypipe -f jobs | xargs -n1 ./work      or every job it is handed
  skypipe --listen logs                   watch a log pipe an aggregator takes
  skypipe --recv build < "$job_input"     receive although stdin is a file
  ssh host 'skypipe --send logs' < f      send although stdin is a socket
  skypipe --timeout 30s deploy-done       wait at most 30s for a trigger
  ls *.jpg | skypipe -l jobs              one kept item a file name`
}

// Run sends or receives.
func (c *PipeCmd) Run(ctx context.Context, g *Globals) error {
	if err := pipes.ValidateName(c.Name); err != nil {
		return err
	}
	send, err := c.sending(kindOf(os.Stdin), kindOf(os.Stdout))
	if err != nil {
		return err
	}
	if c.Timeout < 0 {
		return &usageError{msg: "--timeout must not be negative"}
	}
	nc, ep, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	if send {
		return c.send(ctx, g, nc, ep)
	}
	return c.receive(ctx, g, nc, ep)
}

// send sends stdin, an item or (-l) an item a line, telling a terminal
// how it goes.
func (c *PipeCmd) send(ctx context.Context, g *Globals, nc *nats.Conn, ep provision.Endpoint) error {
	act := startSending(g, c.Name, stdinSize()) // a regular file: the progress line has an ETA
	in, notify := io.Reader(os.Stdin), notice
	if act != nil {
		in, notify = countingReader{f: os.Stdin, a: act}, act.notice
	}
	client := g.pipes(nc, ep, pipes.WithNotice(notify))
	if c.Lines {
		n, err := client.SendLines(ctx, c.Name, in)
		if err != nil {
			act.end()
			return err
		}
		act.sentLines(n)
		return nil
	}
	res, err := client.Send(ctx, c.Name, in)
	if err != nil {
		act.end()
		return err
	}
	act.sent(res.Kept, res.KeptFrom)
	return nil
}

// receive writes items to stdout, telling a terminal on stderr that it
// waits and how it goes; binary data goes to a terminal only if forced.
func (c *PipeCmd) receive(ctx context.Context, g *Globals, nc *nats.Conn, ep provision.Endpoint) error {
	opt := pipes.ReceiveOptions{
		Role: pipes.Take, Follow: c.Follow, Timeout: c.Timeout,
		PartialOK: c.PartialOK, Strict: c.Strict,
	}
	toTerminal := kindOf(os.Stdout) == streamTerminal
	if c.Listen || (!c.Take && toTerminal) {
		opt.Role = pipes.Listen
	}
	out := io.Writer(os.Stdout)
	var guard *ttyGuard
	if toTerminal && !c.ForceTTY {
		guard = &ttyGuard{w: out}
		out = guard
	}
	act := startReceiving(g, c.Name)
	notify := notice
	if act != nil {
		out, notify = countingWriter{w: out, a: act}, act.notice
	}
	res, err := g.pipes(nc, ep, pipes.WithNotice(notify)).Receive(ctx, c.Name, out, opt)
	if err != nil {
		act.end()
	}
	switch {
	case guard != nil && guard.refused.Load():
		// Nothing of it was written: a kept item stays in the pipe, a
		// live one's sender keeps it.
		return errBinaryTerminal
	case errors.Is(err, pipes.ErrTimeout):
		return fmt.Errorf("%w (%v)", err, c.Timeout)
	case err != nil:
		return err
	}
	act.received(res.Items, c.Follow)
	return nil
}

// sending decides the mode: forced by a flag, implied by one, else from
// what stdin and stdout are. It never guesses when both are redirected:
// in a 'while read' loop, under ssh or in a CI runner, stdin may be a
// pipe or file that is not meant for skypipe.
func (c *PipeCmd) sending(in, out streamKind) (bool, error) {
	recvFlags := c.Follow || c.Timeout != 0 || c.Take || c.Listen || c.PartialOK || c.Strict
	switch {
	case c.Send && recvFlags:
		return false, &usageError{msg: "--follow, --timeout, --take, --listen, --partial-ok and --strict are for receivers, and this is a sender (--send)", hint: "drop them, or receive with --recv"}
	case c.Recv && c.Lines:
		return false, &usageError{msg: "--lines is for senders, and this is a receiver (--recv)", hint: "give the lines on stdin: ls | skypipe -l NAME"}
	case c.Lines && recvFlags:
		return false, &usageError{msg: "--lines is for senders, and --follow, --timeout, --take, --listen, --partial-ok and --strict for receivers", hint: "send with -l NAME, receive with -f NAME"}
	case c.Send, c.Lines:
		if in == streamDir {
			return false, &usageError{msg: "stdin is a directory", hint: "send a file: skypipe NAME < FILE, or a tree: tar c DIR | skypipe NAME"}
		}
		return true, nil
	case c.Recv, recvFlags:
		return false, nil
	}
	switch {
	case in == streamTerminal || in == streamDevice || in == streamNone:
		return false, nil
	case in == streamDir:
		return false, &usageError{msg: "stdin is a directory", hint: "send a file: skypipe NAME < FILE, or a tree: tar c DIR | skypipe NAME"}
	case out.interactive():
		return true, nil
	}
	return false, &usageError{
		msg:  fmt.Sprintf("stdin is %v and stdout is %v: send or receive?", in, out),
		hint: "say which: skypipe --send NAME (stdin into the pipe) or skypipe --recv NAME (the pipe to stdout)",
	}
}
