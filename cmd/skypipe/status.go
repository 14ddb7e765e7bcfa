package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/skypipe/skypipe/provision"
)

// StatusCmd shows which satellite is in use and whether it answers.
type StatusCmd struct {
	JSON bool `name:"json" help:"Print one JSON object instead (fields: see 'skypipe status --help')."`
}

// statusHelp documents the output of status and setup, in text and JSON.
const statusHelp = `Prints, on stdout, the satellite in use and where that choice comes from
(--url, --context, 'skypipe setup' or the local one), whether its TLS
certificate is pinned, and its health: round trip, server version, JetStream.
Exits non-zero when it does not answer. Starts nothing.

With --json it prints one JSON object (and still exits non-zero when the
satellite does not answer):
  satellite        its URL, without credentials ("" for a local one not running)
  source           where the choice comes from: "local", "url" (--url or
                   SKYPIPE_URL), "context" (--context), or "ssh", "fly",
                   "join" ('skypipe setup')
  context          the natscli context's name, with source "context"
  running          false only for a local satellite not started yet
  reachable        whether it answered
  also_at          its other transport (a wss:// URL), if it offers one
  http_face        the URL of its HTTP face, if it has one
  connected_to     the URL connected to, when it offers two
  tls              "none", "pinned" (skypipe's own CA), "system" (system
                   CAs) or "public" (a TLS proxy in front, public CA)
  rtt_ms           round trip in milliseconds
  server_version   the NATS server's version
  jetstream        whether JetStream answers
  pid              the local satellite's process id
  error            why it did not answer, if it did not

Examples:
  skypipe status
  skypipe status --json | jq -e .reachable
  SKYPIPE_URL=nats://TOKEN@host:4222 skypipe status`

// Help is the long help of status.
func (c *StatusCmd) Help() string { return statusHelp }

// Run prints the satellite and its health.
func (c *StatusCmd) Run(ctx context.Context, g *Globals) error {
	return describe(ctx, g, c.JSON)
}

// status is what describe found out; its JSON is the documented form.
type status struct {
	Satellite     string  `json:"satellite"`
	Source        string  `json:"source"`
	Context       string  `json:"context,omitempty"`
	Running       bool    `json:"running"`
	Reachable     bool    `json:"reachable"`
	TLS           string  `json:"tls,omitempty"`
	RTTMillis     float64 `json:"rtt_ms,omitempty"`
	ServerVersion string  `json:"server_version,omitempty"`
	JetStream     bool    `json:"jetstream"`
	Alt           string  `json:"also_at,omitempty"`
	Web           string  `json:"http_face,omitempty"`
	ConnectedTo   string  `json:"connected_to,omitempty"`
	PID           int     `json:"pid,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// describe prints the satellite in use and its health, without starting
// one: as text, or as one JSON object.
func describe(ctx context.Context, g *Globals, asJSON bool) error {
	st, err := probe(ctx, g)
	if st == nil {
		return err
	}
	if err != nil {
		st.Error = err.Error()
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(st); werr != nil {
			return werr
		}
		return err
	}
	if !st.Running {
		fmt.Println("satellite: local, not running (it starts on first use)")
		return nil
	}
	source := st.Source
	switch source {
	case "url":
		source = "--url"
	case "context":
		source = "context " + st.Context
	}
	fmt.Printf("satellite: %s (%s)\n", st.Satellite, source)
	if st.Alt != "" {
		fmt.Printf("also at: %s\n", st.Alt)
	}
	if st.Web != "" {
		fmt.Printf("http face: %s\n", st.Web)
	}
	if st.ConnectedTo != "" {
		fmt.Printf("connected to: %s\n", st.ConnectedTo)
	}
	if st.TLS != "" {
		fmt.Printf("tls: %s\n", map[string]string{"none": "no", "pinned": "yes, CA pinned", "system": "yes, system CAs", "public": "yes, public CA (a TLS proxy in front)"}[st.TLS])
	}
	if !st.Reachable {
		fmt.Println("reachable: no")
		return err
	}
	fmt.Printf("reachable: yes\nround-trip: %v\nserver: nats-server %s\n",
		time.Duration(st.RTTMillis*float64(time.Millisecond)).Round(time.Microsecond), st.ServerVersion)
	if !st.JetStream {
		fmt.Println("jetstream: off")
		return err
	}
	fmt.Println("jetstream: on")
	if st.PID > 0 {
		fmt.Printf("pid: %d\n", st.PID)
	}
	return err
}

// probe finds the satellite in use and asks it how it is. A nil status
// means the question could not be asked (a bad flag, an unreadable cache).
func probe(ctx context.Context, g *Globals) (*status, error) {
	ep, remote, err := g.remote()
	if err != nil {
		return nil, err
	}
	if !remote {
		local, err := g.local()
		if err != nil {
			return nil, err
		}
		if ep, err = local.Endpoint(); err != nil {
			return &status{Source: "local"}, nil
		}
	}
	st := &status{Satellite: provision.Redact(ep.URL), Source: ep.Source, Running: true, PID: ep.PID,
		Alt: provision.Redact(ep.Alt), Web: ep.Web}
	switch {
	case ep.Source == "--url":
		st.Source = "url"
	case strings.HasPrefix(ep.Source, "context "):
		st.Source, st.Context = "context", strings.TrimPrefix(ep.Source, "context ")
	}
	nc, err := provision.Dial(ep)
	if err != nil {
		return st, err
	}
	defer nc.Close()
	if ep.Alt != "" {
		st.ConnectedTo = nc.ConnectedUrlRedacted()
	}
	_, secure := provision.TLSState(nc)
	switch {
	case !secure:
		st.TLS = "none"
	case ep.WSPublicCA && strings.HasPrefix(nc.ConnectedUrl(), "wss://"):
		st.TLS = "public"
	case ep.Pinned():
		st.TLS = "pinned"
	default:
		st.TLS = "system"
	}
	rtt, err := nc.RTT()
	if err != nil {
		return st, err
	}
	st.Reachable = true
	st.RTTMillis = float64(rtt) / float64(time.Millisecond)
	st.ServerVersion = nc.ConnectedServerVersion()
	js, err := jetstream.New(nc)
	if err != nil {
		return st, err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		return st, fmt.Errorf("the satellite answers but JetStream is not available: %w", err)
	}
	st.JetStream = true
	return st, nil
}
