package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// connect reaches the satellite: --url / SKYPIPE_URL or --context if set,
// else the remote one 'skypipe setup' cached, else the local one, started
// on first use.
func (g *Globals) connect(ctx context.Context) (*nats.Conn, provision.Endpoint, error) {
	ep, remote, err := g.remote()
	if err != nil {
		return nil, ep, err
	}
	if g.Reconnect < 0 {
		return nil, ep, &usageError{msg: fmt.Sprintf("--reconnect %v: a duration cannot be negative", g.Reconnect), hint: "--reconnect 2m tries for two minutes; 0 fails at once"}
	}
	if remote {
		ep.Reconnect = g.Reconnect
		// A satellite that took these credentials before is not waited
		// for to take them again: a round trip less (Endpoint.Accepted).
		paths, perr := provision.DefaultPaths()
		if perr == nil {
			ep.Accepted = paths.Accepted(ep)
		}
		nc, err := provision.Dial(ep)
		if err == nil {
			g.dialed = append(g.dialed, dialed{nc: nc, ep: ep})
			if perr == nil && !ep.Accepted {
				_ = paths.RememberAccepted(ep) // best effort: the next command waits
			}
		}
		return nc, ep, err
	}
	local, err := g.local()
	if err != nil {
		return nil, provision.Endpoint{}, err
	}
	return local.Connect(ctx)
}

// dialed is a connection Globals.connect made, and to what.
type dialed struct {
	nc *nats.Conn
	ep provision.Endpoint
}

// refused is the satellite's refusal of the credentials, where it came
// only after the connection was made (provision.Refused): a command on it
// fails with whatever its first step met, a lost connection, when what
// happened is this. The satellite is then no longer taken to accept
// them, and the next command waits for its answer.
func (g *Globals) refused() error {
	for _, d := range g.dialed {
		if err := provision.Refused(d.nc); err != nil {
			if paths, perr := provision.DefaultPaths(); perr == nil {
				_ = paths.ForgetAccepted(d.ep)
			}
			return err
		}
	}
	return nil
}

// pipes returns the pipes of the satellite nc reaches, in the JetStream
// domain --js-domain or the endpoint names.
func (g *Globals) pipes(nc *nats.Conn, ep provision.Endpoint, opts ...pipes.Option) *pipes.Client {
	domain := ep.JSDomain
	if g.JSDomain != "" {
		domain = g.JSDomain
	}
	if domain != "" {
		opts = append(opts, pipes.WithJetStreamDomain(domain))
	}
	if g.Reconnect > 0 {
		opts = append([]pipes.Option{pipes.WithConfig(g.config())}, opts...)
	}
	return pipes.New(nc, opts...)
}

// config is the pipes' configuration the global flags make: the default,
// with --reconnect (a receiver waits as long for a sender whose connection
// is being re-established). A command that tunes more starts from it.
func (g *Globals) config() pipes.Config {
	cfg := pipes.DefaultConfig()
	if g.Reconnect > 0 {
		cfg.Reconnect = g.Reconnect
	}
	return cfg
}

// remote is the satellite the flags, the environment or the setup cache
// name; false means the local one.
func (g *Globals) remote() (provision.Endpoint, bool, error) {
	var ep provision.Endpoint
	named := false
	if g.Context != "" {
		var err error
		if ep, err = provision.FromContext(g.Context); err != nil {
			hint := "'nats context ls' lists the contexts; a context is a JSON file in ~/.config/nats/context"
			if errors.Is(err, provision.ErrBadContext) {
				hint = "fix its url with 'nats context edit " + g.Context + "': one server, or a cluster's members comma-separated, all nats:// and tls:// or all wss://"
			}
			return ep, false, &usageError{msg: err.Error(), hint: hint}
		}
		named = true
	}
	if g.URL != "" {
		u, err := provision.FromURL(g.URL)
		if err != nil {
			return ep, false, &usageError{msg: err.Error(), hint: "SKYPIPE_URL looks like nats://TOKEN@127.0.0.1:4222"}
		}
		ep.URL, ep.Source = u.URL, u.Source
		if u.Token != "" {
			ep.Token = u.Token
		}
		named = true
	}
	if !named {
		paths, err := provision.DefaultPaths()
		if err != nil {
			return ep, false, err
		}
		sat, err := provision.LoadSatellite(paths)
		if errors.Is(err, provision.ErrNoSatellite) {
			if g.Creds != "" || g.TLSCA != "" {
				return ep, false, &usageError{msg: "--creds and --tls-ca are for a remote satellite or NATS server", hint: "name it with SKYPIPE_URL or --context"}
			}
			return ep, false, nil
		}
		if err != nil {
			return ep, false, fmt.Errorf("the satellite set up before: %w", err)
		}
		ep = sat.Endpoint()
	}
	if g.Creds != "" {
		if _, err := os.Stat(g.Creds); err != nil {
			return ep, false, &usageError{msg: fmt.Sprintf("--creds: %v", err)}
		}
		ep.Creds = g.Creds
	}
	if g.TLSCA != "" {
		ca, err := os.ReadFile(g.TLSCA)
		if err != nil {
			return ep, false, &usageError{msg: fmt.Sprintf("--tls-ca: %v", err)}
		}
		ep.CAPEM = ca
	}
	return ep, true, nil
}

func (g *Globals) local() (provision.Local, error) {
	paths, err := provision.DefaultPaths()
	if err != nil {
		return provision.Local{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return provision.Local{}, fmt.Errorf("finding the skypipe binary: %w", err)
	}
	local := provision.Local{Paths: paths, Exe: exe, Reconnect: g.Reconnect}
	if terminalStatus(g) {
		local.Started = satelliteStarted
	}
	return local, nil
}
