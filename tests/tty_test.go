package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/rogpeppe/go-internal/testscript"
)

// ttyCommands run shell commands on a pseudo-terminal, as a person at a
// terminal would, and look at what the terminal shows:
//
//	tty start NAME 'SHELL COMMAND'  run sh -c COMMAND with stdin, stdout and
//	                               stderr on a terminal of its own (80x24)
//	tty wait NAME REGEXP           wait until the screen matches REGEXP
//	tty exit NAME CODE             wait until the command exits with CODE
//	tty screen NAME                print the screen so far to stdout, for
//	                               stdout and ! stdout to look at
//
// The screen is everything written to the terminal, escape sequences
// taken out and every carriage return a line break (empty lines dropped),
// so that each redraw of a line is a line of its own: a line once drawn
// and then cleared (overwritten with spaces) is still there to see. The process group of each command is killed when
// the script ends.
var ttyCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"tty": cmdTTY,
}

// ttySession is one command on a terminal.
type ttySession struct {
	cmd    *exec.Cmd
	master *os.File
	mu     sync.Mutex
	raw    bytes.Buffer
	read   chan struct{} // closed when the terminal's output ends
	exited chan struct{} // closed when the command exits
	err    error         // its exit status, once exited is closed
}

var ttySessions sync.Map // *testscript.TestScript -> map[string]*ttySession

func sessions(ts *testscript.TestScript) map[string]*ttySession {
	if m, ok := ttySessions.Load(ts); ok {
		return m.(map[string]*ttySession)
	}
	m := map[string]*ttySession{}
	ttySessions.Store(ts, m)
	ts.Defer(func() {
		for _, s := range m {
			s.close()
		}
		ttySessions.Delete(ts)
	})
	return m
}

func cmdTTY(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: tty start|wait|exit|screen NAME ...")
	}
	verb, name := args[0], args[1]
	all := sessions(ts)
	if verb == "start" {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: tty start NAME 'SHELL COMMAND'")
		}
		if all[name] != nil {
			ts.Fatalf("tty %s is already started", name)
		}
		all[name] = startTTY(ts, args[2])
		return
	}
	s := all[name]
	if s == nil {
		ts.Fatalf("no tty %s", name)
	}
	switch verb {
	case "wait":
		if len(args) != 3 {
			ts.Fatalf("usage: tty wait NAME REGEXP")
		}
		re, err := regexp.Compile("(?m)" + args[2])
		ts.Check(err)
		if neg {
			ts.Fatalf("! tty wait: assert with tty screen and ! stdout")
		}
		waitFor(ts, fmt.Sprintf("the terminal of %s to show %q", name, args[2]), func() (bool, string) {
			screen := s.screen()
			return re.MatchString(screen), "\n" + screen
		})
	case "exit":
		if neg || len(args) != 3 {
			ts.Fatalf("usage: tty exit NAME CODE")
		}
		want := int(intArg(ts, args[2]))
		select {
		case <-s.exited:
		case <-time.After(waitLimit):
			ts.Fatalf("tty %s did not exit in %v; its terminal shows:\n%s", name, waitLimit, s.screen())
		}
		// What it wrote last is on its way through the terminal.
		select {
		case <-s.read:
		case <-time.After(waitLimit):
			ts.Fatalf("the terminal of %s did not close in %v", name, waitLimit)
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(s.err, &ee) {
			code = ee.ExitCode()
		} else if s.err != nil {
			ts.Fatalf("tty %s: %v", name, s.err)
		}
		if code != want {
			ts.Fatalf("tty %s exited %d, want %d; its terminal shows:\n%s", name, code, want, s.screen())
		}
	case "screen":
		if neg || len(args) != 2 {
			ts.Fatalf("usage: tty screen NAME")
		}
		fmt.Fprint(ts.Stdout(), s.screen())
	default:
		ts.Fatalf("unknown tty verb %q", verb)
	}
}

// ttyEnv is the environment of a command on a terminal: the script's.
func ttyEnv(ts *testscript.TestScript) []string {
	env := []string{"TERM=xterm", "LANG=C.UTF-8"}
	for _, k := range []string{"PATH", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "SKYPIPE_URL", "TMPDIR", "WORK", "GORACE"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	return env
}

func startTTY(ts *testscript.TestScript, script string) *ttySession {
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = ttyEnv(ts)
	cmd.Dir = ts.MkAbs(".")
	// pty.Start makes the command a session leader with the terminal as
	// its controlling terminal; its process group is its own.
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	ts.Check(err)
	s := &ttySession{cmd: cmd, master: master, read: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(s.read)
		b := make([]byte, 32<<10)
		for {
			n, err := master.Read(b)
			s.mu.Lock()
			s.raw.Write(b[:n])
			s.mu.Unlock()
			if err != nil {
				return // EIO once nothing holds the terminal open
			}
		}
	}()
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s
}

// close kills what is left of the command and waits for its goroutines.
func (s *ttySession) close() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	_ = s.master.Close()
	<-s.read
}

// escapes are the terminal's escape sequences: CSI, OSC, and two-byte ones.
var escapes = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]`)

// screen is what the terminal showed, as lines.
func (s *ttySession) screen() string {
	s.mu.Lock()
	raw := s.raw.String()
	s.mu.Unlock()
	text := escapes.ReplaceAllString(raw, "")
	lines := strings.FieldsFunc(text, func(r rune) bool { return r == '\r' || r == '\n' })
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}
