package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"
	"github.com/rogpeppe/go-internal/testscript"
)

// completeCommands drive real shells through skypipe's completion scripts:
//
//	complete SHELL LINE   load 'skypipe completion SHELL' into SHELL and
//	                      complete LINE as TAB would; stdout is the
//	                      candidates, one a line. bash runs interactively on
//	                      a pseudo-terminal (readline's insert-completions
//	                      puts every candidate on the line); fish answers
//	                      'complete -C'; zsh runs the _skypipe function with
//	                      the words of LINE, compadd recording the candidates.
var completeCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"complete": cmdComplete,
}

func cmdComplete(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: complete SHELL LINE")
	}
	shell, line := args[0], args[1]
	script := ts.MkAbs("skypipe-completion." + shell)
	gen := exec.Command(filepath.Join(binDir, "skypipe"), "completion", shell)
	gen.Env = shellEnv(ts)
	out, err := gen.Output()
	ts.Check(err)
	ts.Check(os.WriteFile(script, out, 0o644))
	var candidates []string
	switch shell {
	case "bash":
		candidates = completeBash(ts, script, line)
	case "fish":
		out := shellOutput(ts, "fish", "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, script, line)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" {
				candidates = append(candidates, strings.SplitN(l, "\t", 2)[0])
			}
		}
	case "zsh":
		out := shellOutput(ts, "zsh", "-f", "-c", `
compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@" }
compdef() { }
source $1
words=(${(z)2}); [[ $2 == *' ' ]] && words+=('')
CURRENT=${#words}
_skypipe`, "zsh", script, line)
		candidates = strings.Fields(out)
	default:
		ts.Fatalf("complete: no shell %q", shell)
	}
	ts.Logf("%s completes %q: %q", shell, line, candidates)
	stdout := ts.Stdout() // set even when there is no candidate
	for _, c := range candidates {
		fmt.Fprintln(stdout, c)
	}
}

// shellEnv is the script's environment, for a process started here.
func shellEnv(ts *testscript.TestScript) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "SKYPIPE_URL", "TMPDIR"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	return env
}

func shellOutput(ts *testscript.TestScript, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = shellEnv(ts)
	cmd.Dir = ts.MkAbs(".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		ts.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	return string(out)
}

// lineMark is what the bash session prints of its line: <LINE>.
var lineMark = regexp.MustCompile(`\n<([^<>\r\n]*)>\r?\n`)

// completeBash types line into an interactive bash on a pseudo-terminal,
// then insert-completions (bound to C-y) and a key (C-t) that prints the
// line; the candidates are the words it added.
func completeBash(ts *testscript.TestScript, script, line string) []string {
	cmd := exec.Command("bash", "--norc", "--noprofile", "-i")
	cmd.Env = append(shellEnv(ts), "TERM=dumb", "PS1=$ ", "INPUTRC=/dev/null", "HISTFILE=/dev/null")
	cmd.Dir = ts.MkAbs(".")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 300})
	ts.Check(err)
	var (
		mu   sync.Mutex
		buf  bytes.Buffer
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := tty.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		tty.Close()
		<-done
	}()
	send := func(s string) {
		_, err := tty.Write([]byte(s))
		ts.Check(err)
	}
	send("source '" + script + "'\n")
	send(`bind '"\C-y": insert-completions'` + "\n")
	send(`bind -x '"\C-t": printf "\n<%s>\n" "$READLINE_LINE"'` + "\n")
	send(line + "\x19\x14")
	deadline := time.Now().Add(waitLimit)
	for {
		mu.Lock()
		m := lineMark.FindStringSubmatch(buf.String())
		out := buf.String()
		mu.Unlock()
		if m != nil {
			added := strings.TrimPrefix(m[1], line)
			if added == m[1] {
				// A unique candidate replaces the word being completed.
				added = m[1][strings.LastIndexByte(line, ' ')+1:]
			} else if i := strings.LastIndexByte(line, ' '); !strings.HasSuffix(line, " ") {
				added = line[i+1:] + added
			}
			return strings.Fields(added)
		}
		if time.Now().After(deadline) {
			ts.Fatalf("bash printed no line in %v; the terminal shows:\n%s", waitLimit, out)
		}
		time.Sleep(pollEvery)
	}
}
