package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// signalled is why a command's context ended: the signal it got.
type signalled struct{ sig os.Signal }

func (s *signalled) Error() string {
	if s.sig == syscall.SIGTERM {
		return "terminated"
	}
	return "interrupted"
}

// code is the exit code shells report for the signal: 128 + its number.
func (s *signalled) code() int {
	if s.sig == syscall.SIGTERM {
		return exitTerminated
	}
	return exitInterrupted
}

// signalContext is ctx, cancelled with a *signalled cause at the first
// SIGINT or SIGTERM. stop releases the signals.
func signalContext(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case s := <-sigs:
			cancel(&signalled{sig: s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		<-stopped
		cancel(nil)
	}
}
