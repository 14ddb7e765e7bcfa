package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/provision"
)

// ServeCmd runs a satellite in the foreground.
type ServeCmd struct {
	Listen    string `help:"Address to listen on." default:"127.0.0.1:4222" env:"SKYPIPE_LISTEN"`
	Store     string `help:"Directory of the JetStream store." default:"./skypipe-store" env:"SKYPIPE_STORE" type:"path"`
	TokenFile string `help:"File holding the token clients must present (mode 0600). The SKYPIPE_TOKEN variable works too; a token is never taken from the command line." env:"SKYPIPE_TOKEN_FILE" type:"path"`
	Ready     bool   `help:"Print 'ready URL' on stdout once clients can connect, then close stdout (for supervisors)."`
	Log       bool   `help:"Log the server's activity to stderr."`

	// TLS: required off loopback (see serve_tls.go).
	TLSCert string `help:"Server certificate (PEM) for TLS; required off loopback ('skypipe setup' writes one)." env:"SKYPIPE_TLS_CERT" type:"path" placeholder:"FILE"`
	TLSKey  string `help:"Private key (PEM, mode 0600) of --tls-cert." env:"SKYPIPE_TLS_KEY" type:"path" placeholder:"FILE"`
}

// Help is the long help of serve.
func (c *ServeCmd) Help() string {
	return `Runs the satellite: a NATS server with JetStream that keeps items on disk.
Off loopback it refuses to run without both a token and TLS: 'skypipe setup
ssh HOST' does all of this for you, with a certificate authority of its own.

Examples:
  skypipe serve --store /var/lib/skypipe
  SKYPIPE_TOKEN_FILE=/etc/skypipe/token skypipe serve --listen 0.0.0.0:4222 \
      --tls-cert /etc/skypipe/cert.pem --tls-key /etc/skypipe/key.pem`
}

// Run serves until interrupted.
func (c *ServeCmd) Run(ctx context.Context) error {
	token := os.Getenv("SKYPIPE_TOKEN")
	if c.TokenFile != "" {
		t, err := provision.ReadToken(c.TokenFile)
		if err != nil {
			return fmt.Errorf("reading the token: %w", err)
		}
		token = t
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--listen %q: %v", c.Listen, err), hint: "give HOST:PORT, e.g. 127.0.0.1:4222"}
	}
	tlsConfig, err := c.tls()
	if err != nil {
		return err
	}
	if err := refusePlaintext(c.Listen, host, token != "", tlsConfig != nil); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Store, 0o700); err != nil {
		return err
	}
	srv, err := embedded.Start(embedded.Config{Listen: c.Listen, StoreDir: c.Store, Token: token, TLS: tlsConfig, Log: c.Log})
	if err != nil {
		return err
	}
	if c.Ready {
		fmt.Printf("ready %s\n", srv.URL())
		os.Stdout.Close()
	} else {
		printf("satellite listening on %s, store %s", srv.URL(), c.Store)
	}
	go func() {
		<-ctx.Done()
		srv.Shutdown()
	}()
	srv.Wait()
	return nil
}
