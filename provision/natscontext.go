package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrNoContext: no natscli context of that name.
	ErrNoContext = errors.New("no such nats context")
	// ErrBadContext: a natscli context that skypipe cannot connect as
	// (its url names no server, or mixes NATS over WebSocket with raw
	// NATS).
	ErrBadContext = errors.New("unusable nats context")
)

// natsContext is the part of a natscli context (github.com/nats-io/jsm.go,
// natscontext) that says how to connect.
type natsContext struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`
	JSDomain string `json:"jetstream_domain"`
}

// FromContext reads the natscli context NAME from
// $XDG_CONFIG_HOME/nats/context/NAME.json, as `nats --context NAME` does.
func FromContext(name string) (Endpoint, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return Endpoint{}, fmt.Errorf("%w: %q is not a context name", ErrNoContext, name)
	}
	cfg := os.Getenv("XDG_CONFIG_HOME")
	home, _ := os.UserHomeDir()
	if cfg == "" {
		cfg = filepath.Join(home, ".config")
	}
	path := filepath.Join(cfg, "nats", "context", name+".json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Endpoint{}, fmt.Errorf("%w: %s (no %s)", ErrNoContext, name, path)
	}
	if err != nil {
		return Endpoint{}, err
	}
	var c natsContext
	if err := json.Unmarshal(b, &c); err != nil {
		return Endpoint{}, fmt.Errorf("the nats context %s: %w", path, err)
	}
	expand := func(p string) string {
		if rest, ok := strings.CutPrefix(p, "~/"); ok && home != "" {
			return filepath.Join(home, rest)
		}
		return p
	}
	ep := Endpoint{
		URL:    c.URL,
		Token:  c.Token,
		User:   c.User,
		Pass:   c.Password,
		Creds:  expand(c.Creds),
		Source: "context " + name,

		JSDomain: c.JSDomain,

		NKeySeed: expand(c.NKey),
		CertFile: expand(c.Cert),
		KeyFile:  expand(c.Key),
	}
	if ep.URL == "" {
		ep.URL = "nats://127.0.0.1:4222" // natscli's default too
	}
	// Checked here, not at the dial, so that the user hears it is the
	// context to fix, not a satellite to look for.
	if _, err := memberURLs(splitURLs(ep.URL)); err != nil {
		return Endpoint{}, fmt.Errorf("%w %s: its url: %v", ErrBadContext, name, err)
	}
	if c.CA != "" {
		if ep.CAPEM, err = os.ReadFile(expand(c.CA)); err != nil {
			return Endpoint{}, fmt.Errorf("the nats context's CA: %w", err)
		}
	}
	return ep, nil
}
