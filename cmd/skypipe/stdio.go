package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
)

// streamKind is what a standard stream is connected to.
type streamKind uint8

const (
	streamNone     streamKind = iota // closed, or cannot be told
	streamTerminal                   // a terminal
	streamDevice                     // another character device: /dev/null, as under cron
	streamPipe                       // a pipe or FIFO
	streamFile                       // a regular file
	streamDir                        // a directory
	streamSocket                     // a socket (ssh, some CI runners)
)

var streamNames = [...]string{"closed", "a terminal", "a device", "a pipe", "a file", "a directory", "a socket"}

func (k streamKind) String() string { return streamNames[k] }

// kindOf tells what f is connected to.
func kindOf(f *os.File) streamKind {
	if isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()) {
		return streamTerminal
	}
	fi, err := f.Stat()
	if err != nil {
		return streamNone
	}
	switch m := fi.Mode(); {
	case m&os.ModeCharDevice != 0:
		return streamDevice
	case m&os.ModeNamedPipe != 0:
		return streamPipe
	case m&os.ModeSocket != 0:
		return streamSocket
	case m.IsDir():
		return streamDir
	case m.IsRegular():
		return streamFile
	}
	return streamNone
}

// interactive: a person sees the stream (a terminal), or nobody reads it
// at all (/dev/null): either way it is no destination for a pipe's data.
func (k streamKind) interactive() bool { return k == streamTerminal || k == streamDevice }

// readsStdin are the commands that read stdin; every other command word is
// reserved, and a pipe of that name is 'skypipe pipe NAME'.
var readsStdin = map[string]bool{"pipe": true, "pipe <name>": true, "setup join": true}

// refuseStdin stops a command that reads no stdin from running when stdin
// carries data: 'echo important | skypipe status' meant a pipe named
// status, and the data would be lost.
func refuseStdin(command string) error {
	if readsStdin[command] || !stdinCarriesData() {
		return nil
	}
	word := strings.Fields(command)[0]
	return &usageError{
		msg:  fmt.Sprintf("stdin carries data, but 'skypipe %s' reads none: %q is a command", command, word),
		hint: fmt.Sprintf("to send into a pipe named %q: ... | skypipe pipe %s", word, word),
	}
}
