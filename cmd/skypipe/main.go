// Command skypipe: named pipes in the sky. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"unicode/utf8"

	"github.com/alecthomas/kong"
	"github.com/skypipe/skypipe/pipes"
)

// version is set at build time with -ldflags "-X main.version=..."; without
// it, versionString falls back on what the Go toolchain recorded.
var version = "dev"

func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return version + " (" + s.Value[:12] + ")"
		}
	}
	return version
}

func main() {
	os.Exit(profiled(func() int { return run(os.Args[1:]) }))
}

func run(args []string) int {
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("skypipe"),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Help(printHelp),
		kong.ExplicitGroups([]kong.Group{*pipeGroup, *connectionGroup}),
		kong.Vars{"version": versionString()},
	)
	if err != nil {
		return fail(err)
	}
	// Set after kong.New, which would scan it for ${vars} on every run.
	parser.Model.Help = description + "\n\n" + reservedHelp() + "\n\n" + exitCodesHelp()
	if completeLine(parser) {
		return 0
	}
	// kong would turn invalid UTF-8 into U+FFFD: another pipe's name.
	for _, a := range args {
		if !utf8.ValidString(a) {
			return fail(fmt.Errorf("%w: argument %q is not valid UTF-8", pipes.ErrInvalidName, a))
		}
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		return usage(err)
	}
	if err := refuseStdin(kctx.Command()); err != nil {
		return fail(err)
	}
	ctx, stop := signalContext(context.Background())
	defer stop()
	// A write to a closed stdout then fails with EPIPE instead of killing
	// the process, so a receiver can give its kept item back to the pipe.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	kctx.BindTo(ctx, (*context.Context)(nil))
	if err := kctx.Run(&cli.Globals); err != nil {
		// Cut short by a signal: say which, and exit 128 + its number.
		var sig *signalled
		if errors.Is(err, context.Canceled) && errors.As(context.Cause(ctx), &sig) {
			errorf("%s", sig)
			return sig.code()
		}
		if refused := cli.Globals.refused(); refused != nil {
			err = refused
		}
		return fail(err)
	}
	return 0
}
