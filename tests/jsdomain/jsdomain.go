// Package jsdomain runs, for tests, a NATS deployment whose JetStream lives
// in a domain: a hub server with JetStream in domain "hub" (by default) and
// a leaf node server without JetStream, connected to the hub over a
// leafnode connection on loopback. Both take clients with one token.
//
// A client of the leaf reaches the hub's JetStream only through the
// domain's API prefix, $JS.hub.API.> (jetstream.NewWithDomain, natscli's
// --js-domain): the hub denies the plain $JS.API.> across a leafnode
// connection, and the leaf has no JetStream of its own, so a client that
// knows no domains gets "no responders" for every JetStream call. Core
// NATS subjects cross the leafnode connection both ways.
package jsdomain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says how to run the deployment.
type Config struct {
	// Dir holds the hub's JetStream store (in Dir/hub).
	Dir string
	// Token is required from every client, of the hub and of the leaf.
	Token string
	// Domain is the hub's JetStream domain; "hub" if empty.
	Domain string
}

// Deployment is a running hub and leaf.
type Deployment struct {
	Hub, Leaf *server.Server
	token     string
	domain    string
}

// readyLimit bounds each wait of Start.
const readyLimit = 20 * time.Second

// Start runs the hub, then the leaf, and returns once a client of the leaf
// gets an answer from JetStream in the hub's domain.
func Start(cfg Config) (*Deployment, error) {
	if cfg.Token == "" || cfg.Dir == "" {
		return nil, errors.New("jsdomain: a token and a directory are required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "hub"
	}
	d := &Deployment{token: cfg.Token, domain: cfg.Domain}
	hubOpts := &server.Options{
		ServerName:      "hub",
		Host:            "127.0.0.1",
		Port:            server.RANDOM_PORT,
		Authorization:   cfg.Token,
		JetStream:       true,
		JetStreamDomain: cfg.Domain,
		StoreDir:        filepath.Join(cfg.Dir, "hub"),
		MaxPayload:      server.MAX_PAYLOAD_SIZE,
		LeafNode: server.LeafNodeOpts{
			Host:     "127.0.0.1",
			Port:     server.RANDOM_PORT,
			Username: "leaf",
			Password: cfg.Token,
		},
		NoSigs: true,
		NoLog:  true,
	}
	var err error
	if d.Hub, err = run(hubOpts); err != nil {
		return nil, fmt.Errorf("jsdomain: hub: %w", err)
	}
	// Ready for connections, the hub has written the port its leafnode
	// listener got into its options.
	leafAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(hubOpts.LeafNode.Port))
	remote := &url.URL{Scheme: "nats-leaf", User: url.UserPassword("leaf", cfg.Token), Host: leafAddr}
	d.Leaf, err = run(&server.Options{
		ServerName:    "leaf",
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: cfg.Token,
		MaxPayload:    server.MAX_PAYLOAD_SIZE,
		LeafNode: server.LeafNodeOpts{
			Remotes:           []*server.RemoteLeafOpts{{URLs: []*url.URL{remote}}},
			ReconnectInterval: 100 * time.Millisecond,
		},
		NoSigs: true,
		NoLog:  true,
	})
	if err != nil {
		d.Shutdown()
		return nil, fmt.Errorf("jsdomain: leaf: %w", err)
	}
	if err := d.waitReady(); err != nil {
		d.Shutdown()
		return nil, err
	}
	return d, nil
}

func run(opts *server.Options) (*server.Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	go s.Start()
	if !s.ReadyForConnections(readyLimit) {
		s.Shutdown()
		return nil, errors.New("not ready for connections")
	}
	return s, nil
}

// waitReady waits until the leafnode connection is up and JetStream in the
// domain answers a client of the leaf.
func (d *Deployment) waitReady() error {
	nc, err := nats.Connect(d.LeafURL(), nats.NoReconnect(), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("jsdomain: connecting to the leaf: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.NewWithDomain(nc, d.domain)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readyLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil && d.Hub.NumLeafNodes() == 1 && d.Leaf.NumLeafNodes() == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jsdomain: JetStream in domain %q did not answer through the leaf in %v (leafnode connections: hub %d, leaf %d): %v",
				d.domain, readyLimit, d.Hub.NumLeafNodes(), d.Leaf.NumLeafNodes(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Domain is the hub's JetStream domain.
func (d *Deployment) Domain() string { return d.domain }

// LeafURL is the leaf's client URL, with the token.
func (d *Deployment) LeafURL() string { return withToken(d.Leaf.ClientURL(), d.token) }

// HubURL is the hub's client URL, with the token.
func (d *Deployment) HubURL() string { return withToken(d.Hub.ClientURL(), d.token) }

func withToken(clientURL, token string) string {
	u, err := url.Parse(clientURL)
	if err != nil {
		return clientURL
	}
	u.User = url.User(token)
	return u.String()
}

// Shutdown stops the leaf, then the hub, and waits until both have.
func (d *Deployment) Shutdown() {
	for _, s := range []*server.Server{d.Leaf, d.Hub} {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}
