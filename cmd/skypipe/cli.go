package main

import (
	"time"

	"reflect"
	"strings"

	"github.com/alecthomas/kong"
)

const description = `Named pipes in the sky: pipe data between shells and machines by name.

Sending or receiving: stdin a terminal, /dev/null or closed receives;
stdin a pipe or file sends when stdout is a terminal or /dev/null; with
both redirected (a script, ssh, a CI runner) say --send or --recv. A
receiver exits at the end of one item, so a pipe is also a trigger.

Receivers: a taker gets each item for itself alone, kept or live (a job
queue: each job goes to exactly one worker); a listener (--listen, the
default when stdout is a terminal) gets a copy of what is sent live. With
no receiver attached a pipe keeps each item until a taker takes it. -f
follows: item after item, going on past an item that broke.

Examples:
  cat file | skypipe files         keep a file in the pipe "files"
  skypipe files > copy             take the oldest item out of it
  skypipe | gzip -9 > out.gz       receive on the default pipe
  tail -f log | skypipe logs       send lines as they come
  skypipe -f logs >> all.log       aggregate every sender, item after item
  skypipe --listen logs            watch what is sent live
  skypipe trigger; echo go         wait until ...
  echo | skypipe trigger           ... someone fires the trigger
  ls *.jpg | skypipe -l jobs       a job queue: each line an item of its own
  skypipe pipe ls < /dev/null      a pipe named like a command

On one machine skypipe starts its own satellite in the background on first
use. Between machines: 'skypipe setup ssh HOST' deploys one on a host you
can ssh into ('skypipe setup fly': to your Fly.io account), 'skypipe setup url' prints a join string, and 'skypipe setup
join' on another machine reads it; SKYPIPE_URL or --context name any other
NATS server with JetStream.`

// Globals are the flags every command takes.
type Globals struct {
	URL       string           `help:"Satellite to use, as nats://[TOKEN@]HOST:PORT or wss://[TOKEN@]HOST[:PORT], or a cluster's members separated by commas, tried in that order, at first and whenever the connection is lost (default: the one 'skypipe setup' set up, else the local one, started on demand). Prefer the environment variable: a token on the command line is visible to other users." env:"SKYPIPE_URL" group:"connection" placeholder:"URL"`
	Creds     string           `help:"NATS credentials file (JWT and seed) to present to the NATS server, e.g. an existing JetStream deployment." env:"SKYPIPE_CREDS" group:"connection" type:"path" placeholder:"FILE"`
	Context   string           `help:"Connect as the natscli context NAME says ($XDG_CONFIG_HOME/nats/context/NAME.json: URL, token, user, creds, nkey, TLS); --url and --creds override it." env:"SKYPIPE_CONTEXT" group:"connection" placeholder:"NAME"`
	TLSCA     string           `name:"tls-ca" help:"Trust only this CA certificate (PEM) for the satellite's TLS certificate." env:"SKYPIPE_TLS_CA" group:"connection" type:"path" placeholder:"FILE"`
	JSDomain  string           `name:"js-domain" help:"Use the JetStream of this domain, e.g. from a leaf node of a hub whose JetStream runs in a domain (a natscli context's jetstream_domain otherwise)." env:"SKYPIPE_JS_DOMAIN" group:"connection" placeholder:"DOMAIN"`
	Reconnect time.Duration    `help:"Send and receive: when the connection to the satellite is lost (a network cut, a satellite restarted on its store), try again for this long and resume what was under way; a peer that does not answer is given as long to come back. 0 fails at once." default:"2m" env:"SKYPIPE_RECONNECT" group:"connection" placeholder:"DUR"`
	Quiet     bool             `short:"q" help:"Say nothing of what is happening: no waiting line, progress or summary on a terminal, no note of a local satellite started. Errors still print." env:"SKYPIPE_QUIET"`
	Version   kong.VersionFlag `help:"Print the version and exit."`
	Man       manFlag          `help:"Print the man page (roff) and exit: skypipe --man > skypipe.1."`

	dialed []dialed // the connections connect made, for refused
}

// CLI is skypipe's command line.
type CLI struct {
	Globals

	Pipe   PipeCmd   `cmd:"" default:"withargs" help:"Send to or receive from a pipe (the default command)."`
	Ls     LsCmd     `cmd:"" help:"List the pipes that keep items or have receivers waiting."`
	Rm     RmCmd     `cmd:"" help:"Drop the items a pipe keeps."`
	Status StatusCmd `cmd:"" help:"Show which satellite is in use and whether it answers."`
	Serve  ServeCmd  `cmd:"" help:"Run a satellite in the foreground."`
	Stop   StopCmd   `cmd:"" help:"Stop the local background satellite."`
	Setup  SetupCmd  `cmd:"" help:"Deploy, join, check or tear down a satellite for many machines."`

	Completion CompletionCmd `cmd:"" help:"Print the shell completion script for bash, zsh or fish."`
}

// reservedHelp lists the command words: a pipe of one of these names is
// reached as 'skypipe pipe NAME'.
func reservedHelp() string {
	var words []string
	t := reflect.TypeFor[CLI]()
	for i := range t.NumField() {
		f := t.Field(i)
		if _, ok := f.Tag.Lookup("cmd"); !ok || f.Name == "Pipe" {
			continue
		}
		name := f.Tag.Get("name")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		words = append(words, name)
	}
	return "Reserved words (commands, not pipe names; 'skypipe pipe WORD' reaches a\npipe of that name): " + strings.Join(words, ", ") + "."
}
