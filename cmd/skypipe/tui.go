package main

// The output contract, in one place: data goes to stdout and nothing else
// does; diagnostics go to stderr as "skypipe: error: ...", "skypipe: hint:
// ..." or "skypipe: ...", lowercase, with no final period. What a command
// is doing (a receiver waiting, progress, a summary, a satellite started)
// is told only to a person: when stderr is a terminal and not --quiet
// (terminalStatus; progress.go draws it). Binary data is not written to a
// terminal unless --force-tty says so (ttyguard.go).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/provision/fly"
)

// Exit codes.
const (
	exitFailure     = 1
	exitUsage       = 2
	exitNotWhole    = 3   // a receiver wrote out only part of an item: a tail, or up to a break
	exitTimeout     = 124 // as timeout(1)
	exitInterrupted = 130 // 128 + SIGINT, as shells report it
	exitTerminated  = 143 // 128 + SIGTERM
)

// usageError is misuse caught before any work: exit 2, with a hint.
type usageError struct {
	msg, hint string
}

func (e *usageError) Error() string { return e.msg }

func printf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "skypipe: "+format+"\n", args...)
}

func errorf(format string, args ...any) { printf("error: "+format, args...) }
func hintf(format string, args ...any)  { printf("hint: "+format, args...) }

// notice reports something a user should know that is not an error.
func notice(msg string) { printf("%s", msg) }

// terminalStatus tells whether to say what is happening: stderr is a
// terminal, and --quiet is not set.
func terminalStatus(g *Globals) bool {
	return !g.Quiet && kindOf(os.Stderr) == streamTerminal
}

// usage reports a command line kong could not parse.
func usage(err error) int {
	errorf("%s", strings.TrimSuffix(err.Error(), "."))
	hintf("run 'skypipe --help' for usage")
	return exitUsage
}

// fail reports an error from a command and returns the exit code.
func fail(err error) int {
	var (
		ue *usageError
		re *resetError
	)
	if errors.As(err, &ue) {
		errorf("%s", ue.msg)
		if ue.hint != "" {
			hintf("%s", ue.hint)
		}
		return exitUsage
	}
	if errors.Is(err, context.Canceled) {
		errorf("interrupted")
	} else {
		errorf("%s", err)
	}
	switch {
	case errors.Is(err, pipes.ErrInvalidName):
		hintf("a pipe name is UTF-8 text of at most %d bytes, without control characters", pipes.MaxNameLen)
		return exitUsage
	case errors.Is(err, pipes.ErrTimeout):
		return exitTimeout
	case errors.Is(err, errBinaryTerminal):
		hintf("redirect it (skypipe NAME > FILE, skypipe NAME | less), or write it anyway with --force-tty; the item stays in the pipe")
	case notWhole(err):
		return exitNotWhole
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, pipes.ErrOutput):
		hintf("a kept item that was not written out whole stays in the pipe")
	case errors.Is(err, provision.ErrNarrowToken):
		hintf("use it with curl or the browser page at the satellite's https:// address; skypipe here needs the satellite's own token ('skypipe setup join')")
	case errors.Is(err, provision.ErrAuth):
		hintf("check the token in SKYPIPE_URL (nats://TOKEN@host:port), or join again: 'skypipe setup url' where the satellite was deployed, 'skypipe setup join' here")
	case errors.Is(err, provision.ErrCertificate):
		hintf("where the satellite was deployed, run 'skypipe setup ssh HOST' again (a fresh certificate, same CA); elsewhere run 'skypipe setup join' with a fresh join string")
	case errors.Is(err, provision.ErrUnreachable):
		hintf("check the address and that the port is open; 'skypipe setup --reset' or unsetting SKYPIPE_URL goes back to the local satellite")
	case errors.Is(err, provision.ErrSSH):
		hintf("check that 'ssh -o BatchMode=yes HOST true' works: the host's name and port, your key (ssh-agent or ~/.ssh/config), its host key in known_hosts; more ssh options go in SKYPIPE_SSH")
	case errors.Is(err, provision.ErrArch):
		hintf("build skypipe for the host, e.g. GOOS=linux GOARCH=arm64 go build -o skypipe-arm64 ./cmd/skypipe, and pass it with --binary")
	case errors.Is(err, provision.ErrPortInUse):
		hintf("another program listens on that port there: choose another with --port")
	case errors.Is(err, embedded.ErrAddrInUse):
		hintf("another program listens there: choose another port with --listen")
	case errors.As(err, &re):
		hintf("to forget the satellite without tearing it down, remove %s", re.file)
	case errors.Is(err, pipes.ErrNoItem):
		hintf("a sender's or receiver's error names the item it failed on: 'item ID: ...'")
	case errors.Is(err, pipes.ErrNoRoomForStream):
		hintf("skypipe needs one stream in the account for all its pipes: whoever runs that NATS raises its max_streams, or frees one")
	case errors.Is(err, pipes.ErrAccountLimit):
		hintf("'skypipe rm NAME' drops a pipe's kept items ('skypipe ls' shows what is kept); the account's limits are raised by whoever runs that NATS")
	case errors.Is(err, pipes.ErrPipeFull):
		hintf("drain kept items ('skypipe ls' shows them), drop them with 'skypipe rm NAME', or give the satellite a larger --max-store")
	case errors.Is(err, pipes.ErrInputChanged):
		hintf("the item was not kept; a file that is being written goes whole as a copy (cp), or piped in (cat FILE | skypipe NAME): then what was read is what is kept")
	case errors.Is(err, pipes.ErrNotStored):
		hintf("the item was not kept; send it again once 'skypipe status' says the satellite answers")
	case errors.Is(err, fly.ErrNoToken), errors.Is(err, fly.ErrBadToken):
		hintf("create a token with 'fly tokens create org' and put it in FLY_API_TOKEN (never on the command line)")
	case errors.Is(err, fly.ErrNameTaken):
		hintf("app names are global on Fly.io: choose another with --app")
	case errors.Is(err, fly.ErrAmbiguous):
		hintf("name the one to use with --app")
	case errors.Is(err, fly.ErrNoJoin):
		hintf("run 'skypipe setup url' on the machine that deployed it, and 'skypipe setup join' here")
	case errors.Is(err, fly.ErrWrongBinary):
		hintf("pass a static linux/amd64 build: CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o skypipe-linux ./cmd/skypipe, then --binary skypipe-linux")
	case errors.Is(err, fly.ErrUnavailable):
		hintf("try again in a moment; https://status.flyio.net tells whether Fly.io has trouble")
	case errors.Is(err, pipes.ErrDisconnected):
		hintf("'skypipe status' tells whether the satellite answers")
	}
	return exitFailure
}

// notWhole tells whether err says a receiver wrote out an item only in
// part: a tail of it, or up to where it broke.
func notWhole(err error) bool {
	var ie *pipes.ItemError
	if !errors.As(err, &ie) {
		return false
	}
	for _, e := range []error{pipes.ErrPartial, pipes.ErrSenderVanished, pipes.ErrSenderAborted, pipes.ErrCorrupt, pipes.ErrClaimLost} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
