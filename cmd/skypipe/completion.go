package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"
	"github.com/posener/complete"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// CompletionCmd prints a shell's completion script.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Help is the long help of completion.
func (c *CompletionCmd) Help() string {
	return `Prints the script that makes a shell complete skypipe's commands, flags
and the names of the pipes that keep items (asked of the satellite in use, if
one runs; completing never starts one). The script asks skypipe itself, so
skypipe must be on PATH. The deb and rpm packages and Homebrew install the
scripts already.

  bash   source <(skypipe completion bash)            in ~/.bashrc, or save it
         as ~/.local/share/bash-completion/completions/skypipe
  zsh    skypipe completion zsh > "${fpath[1]}/_skypipe"   then start a new shell
         (compinit must run in ~/.zshrc)
  fish   skypipe completion fish > ~/.config/fish/completions/skypipe.fish`
}

// Run prints the script.
func (c *CompletionCmd) Run() error {
	_, err := io.WriteString(os.Stdout, completionScripts[c.Shell])
	return err
}

// completionScripts hand the line being completed to skypipe (COMP_LINE
// and COMP_POINT, as bash's complete -C does), which answers one candidate
// a line (completeLine), files included where a flag takes a file; no
// shell falls back on file names, which are never pipe names.
var completionScripts = map[string]string{
	"bash": `# bash completion for skypipe: skypipe itself completes the line.
# source <(skypipe completion bash), or save as
# /usr/share/bash-completion/completions/skypipe
complete -C skypipe skypipe
`,
	"zsh": `#compdef skypipe
# zsh completion for skypipe: skypipe itself completes the line.
# Save as _skypipe in a directory of $fpath, or: source <(skypipe completion zsh)
_skypipe() {
  local line="${(j: :)words[1,CURRENT]}"
  local -a candidates
  candidates=("${(@f)$(COMP_LINE="$line" COMP_POINT=${#line} command skypipe 2>/dev/null)}")
  candidates=(${candidates:#})
  (( ${#candidates} )) && compadd -- "${candidates[@]}"
}
if [[ "$funcstack[1]" == _skypipe ]]; then
  _skypipe "$@"
else
  compdef _skypipe skypipe
fi
`,
	"fish": `# fish completion for skypipe: skypipe itself completes the line.
# Save as ~/.config/fish/completions/skypipe.fish
function __skypipe_complete
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    set -lx COMP_POINT (string length -- "$COMP_LINE")
    command skypipe 2>/dev/null
end
complete -c skypipe -f -a '(__skypipe_complete)'
`,
}

// completeLine answers a shell's completion request, if this run is one
// (COMP_LINE is set): it prints the candidates and returns true.
func completeLine(parser *kong.Kong) bool {
	if os.Getenv("COMP_LINE") == "" {
		return false
	}
	cmd, err := kongcompletion.Command(parser, kongcompletion.WithPredictor("pipe", complete.PredictFunc(predictPipes)))
	if err != nil {
		return true // no candidates rather than an error in the middle of a line
	}
	// 'skypipe NAME' is the pipe command: its flags and pipe names are
	// candidates at the top level too, beside the commands.
	if pipe, ok := cmd.Sub["pipe"]; ok {
		cmd.Flags = complete.Flags{}
		for name, p := range pipe.GlobalFlags {
			cmd.Flags[name] = p
		}
		cmd.Args = pipe.Args
	}
	c := complete.New(parser.Model.Name, cmd)
	c.Out = os.Stdout
	return c.Complete()
}

// shellSafeName is a pipe name offered as a completion: one the shell
// takes as it is, without quoting.
var shellSafeName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._/@:+,=%-]+$`) })

// predictPipes offers the names of the pipes that keep items, asked of the
// satellite in use (the environment's or the cached one) if it answers;
// it never starts a local satellite.
func predictPipes(complete.Args) []string {
	g := Globals{
		URL: os.Getenv("SKYPIPE_URL"), Creds: os.Getenv("SKYPIPE_CREDS"),
		Context: os.Getenv("SKYPIPE_CONTEXT"), TLSCA: os.Getenv("SKYPIPE_TLS_CA"),
		JSDomain: os.Getenv("SKYPIPE_JS_DOMAIN"),
	}
	ep, remote, err := g.remote()
	if err != nil {
		return nil
	}
	if !remote {
		local, err := g.local()
		if err != nil {
			return nil
		}
		if ep, err = local.Endpoint(); err != nil {
			return nil // not running: nothing kept that can be listed
		}
	}
	nc, err := provision.Dial(ep)
	if err != nil {
		return nil
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list, err := g.pipes(nc, ep).List(ctx)
	if err != nil {
		return nil
	}
	var names []string
	for _, p := range list {
		if p.Name != pipes.DefaultName && shellSafeName().MatchString(p.Name) {
			names = append(names, p.Name)
		}
	}
	return names
}
