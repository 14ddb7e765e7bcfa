package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/skypipe/skypipe/embedded"
	"github.com/skypipe/skypipe/internal/wire"
	"github.com/skypipe/skypipe/pipes"
	"github.com/skypipe/skypipe/provision"
)

// ServeCmd runs a satellite in the foreground.
type ServeCmd struct {
	Listen     string   `help:"Address to listen on." default:"127.0.0.1:4222" env:"SKYPIPE_LISTEN"`
	Store      string   `help:"Directory of the JetStream store." default:"./skypipe-store" env:"SKYPIPE_STORE" type:"path"`
	TokenFile  string   `help:"File holding the token clients must present (mode 0600). The SKYPIPE_TOKEN variable works too; a token is never taken from the command line." env:"SKYPIPE_TOKEN_FILE" type:"path"`
	Ready      bool     `help:"Print 'ready URL' on stdout once clients can connect, then close stdout (for supervisors)."`
	Log        bool     `help:"Log the server's activity to stderr."`
	PrintToken bool     `hidden:"" help:"Print the token the satellite would require, then exit (how 'skypipe setup fly' reads it back from its machine)."`
	Local      bool     `hidden:"" help:"Run as the local background satellite: shut down when a client with the token asks (how 'skypipe stop' stops it on every system)."`
	MaxStore   byteSize `help:"Cap on the bytes kept on disk (e.g. 20GiB); a sender past it fails with 'pipe full'. auto: half the disk space free at start." default:"auto" env:"SKYPIPE_MAX_STORE" placeholder:"SIZE"`

	// Clustering: three or more satellites share the pipes; kept items are
	// replicated on three of them.
	Name        string   `help:"This satellite's name, unique in its cluster." env:"SKYPIPE_NAME" group:"cluster"`
	Cluster     string   `help:"HOST:PORT to listen on for the other members of a cluster." env:"SKYPIPE_CLUSTER" placeholder:"HOST:PORT" group:"cluster"`
	Routes      []string `help:"The members' cluster addresses (HOST:PORT,...); listing this one too is fine." env:"SKYPIPE_ROUTES" placeholder:"HOST:PORT" group:"cluster"`
	ClusterName string   `help:"Name of the cluster, the same on every member." default:"skypipe" env:"SKYPIPE_CLUSTER_NAME" group:"cluster"`

	// TLS: required off loopback (see serve_tls.go).
	TLSCert string `help:"Server certificate (PEM) for TLS; required off loopback ('skypipe setup' writes one)." env:"SKYPIPE_TLS_CERT" type:"path" placeholder:"FILE"`
	TLSKey  string `help:"Private key (PEM, mode 0600) of --tls-cert." env:"SKYPIPE_TLS_KEY" type:"path" placeholder:"FILE"`

	// The HTTP face: curl, the browser page, NATS over WebSocket (see
	// serve_http.go).
	HTTP        string `help:"HOST:PORT of the HTTP face: curl and browsers send and take items there, and skypipe clients reach NATS over WebSocket (wss://). 'off' for none; auto: HOST:8443 when the satellite listens off loopback with TLS, else off." default:"auto" env:"SKYPIPE_HTTP" placeholder:"HOST:PORT" group:"http"`
	HTTPProxied bool   `name:"http-proxied" help:"TLS for the HTTP face ends at a proxy in front of it (Fly.io's): serve plain HTTP on --http, even off loopback." env:"SKYPIPE_HTTP_PROXIED" group:"http"`
}

// Help is the long help of serve.
func (c *ServeCmd) Help() string {
	return `Runs the satellite: a NATS server with JetStream that keeps items on disk.
Off loopback it refuses to run without both a token and TLS: 'skypipe setup
ssh HOST' does all of this for you, with a certificate authority of its own.

Kept items are capped by --max-store; senders past the cap fail with
"pipe full" and what was kept before stays. With --cluster and --routes,
satellites form a JetStream cluster (all with the same token); with three
or more members, each pipe's kept items are replicated on three.

With TLS off loopback it also serves the HTTP face on port 8443 (--http; a
random port if --listen has port 0), and says where on stderr:
curl and browsers send and take items there, with the token (or a narrow one,
'skypipe setup token') in an Authorization header, and skypipe clients reach
NATS over WebSocket there (wss://HOST:8443) where only HTTPS gets out.

Examples:
  skypipe serve --store /var/lib/skypipe --max-store 20GiB
  SKYPIPE_TOKEN_FILE=/etc/skypipe/token skypipe serve --listen 0.0.0.0:4222 \
      --tls-cert /etc/skypipe/cert.pem --tls-key /etc/skypipe/key.pem
  SKYPIPE_TOKEN_FILE=token skypipe serve --name a --listen 127.0.0.1:4222 \
      --cluster 127.0.0.1:6222 --routes 127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224`
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
	if c.PrintToken {
		if token == "" {
			return errors.New("no token: set --token-file or SKYPIPE_TOKEN")
		}
		fmt.Println(token)
		return nil
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
	if c.Cluster != "" {
		if err := c.checkCluster(token); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.Store, 0o700); err != nil {
		return err
	}
	maxStore, err := c.storeCap()
	if err != nil {
		return err
	}
	httpAddr, err := c.httpAddr(c.Listen, token != "", tlsConfig != nil)
	if err != nil {
		return err
	}
	cfg := embedded.Config{
		Listen: c.Listen, StoreDir: c.Store, Token: token, TLS: tlsConfig, Log: c.Log, MaxStore: maxStore,
		Name:    c.Name,
		Cluster: embedded.Cluster{Name: c.ClusterName, Listen: c.Cluster, Routes: c.Routes},
	}
	if httpAddr != "" {
		cfg.Websocket = "127.0.0.1:0"
	}
	if c.Cluster == "" {
		migrateStore(ctx, cfg)
	} else if old, _ := embedded.StoresStreams(c.Store, wire.StreamPrefix); old {
		printf("the store keeps items of an older skypipe, which receivers do not read: once every member runs this version, run 'skypipe setup migrate' against the cluster")
	}
	srv, err := embedded.Start(cfg)
	if err != nil {
		return err
	}
	if c.Cluster == "" {
		// A cluster's members start one by one, before JetStream has a
		// leader: there the first sender that needs the stream makes it.
		prepareStore(ctx, srv, cfg.Token)
	}
	face, err := c.startHTTP(srv, httpAddr, token, tlsConfig)
	if err != nil {
		srv.Shutdown()
		return err
	}
	if face != nil {
		printf("HTTP face on %s (curl, the browser page, NATS over WebSocket)", face.URL())
	}
	if c.Ready {
		fmt.Printf("ready %s\n", srv.URL())
		os.Stdout.Close()
	} else {
		printf("satellite listening on %s, store %s (cap %s)", srv.URL(), c.Store, humanBytes(maxStore))
	}
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	if c.Local {
		stopped, err := acceptStop(srv.URL(), token, shutdown)
		if err != nil {
			srv.Shutdown()
			return err
		}
		defer stopped()
	}
	go func() {
		<-ctx.Done()
		if face != nil {
			_ = face.Close()
		}
		srv.Shutdown()
	}()
	srv.Wait()
	return nil
}

// storeCap is the store's cap in bytes: --max-store, or half the space
// free on the store's file system.
func (c *ServeCmd) storeCap() (int64, error) {
	if !c.MaxStore.auto && c.MaxStore.n > 0 {
		return c.MaxStore.n, nil
	}
	free, err := diskFree(c.Store)
	if err != nil {
		return 0, fmt.Errorf("looking at the free space for the store: %w", err)
	}
	if free/2 < minAutoStore {
		return minAutoStore, nil
	}
	return free / 2, nil
}

// minAutoStore is the least an automatic cap allows, on a nearly full disk.
const minAutoStore = 64 << 20

// checkCluster rejects a cluster setup that cannot work, before any work.
func (c *ServeCmd) checkCluster(token string) error {
	if c.Name == "" {
		return &usageError{msg: "a cluster member needs --name", hint: "give each satellite its own name, e.g. --name $(hostname)"}
	}
	if len(c.Routes) == 0 {
		return &usageError{msg: "--cluster needs --routes", hint: "list the members' cluster addresses: --routes a:6222,b:6222,c:6222"}
	}
	host, _, err := net.SplitHostPort(c.Cluster)
	if err != nil {
		return &usageError{msg: fmt.Sprintf("--cluster %q: %v", c.Cluster, err), hint: "give HOST:PORT, e.g. 0.0.0.0:6222"}
	}
	if ip := net.ParseIP(host); token == "" && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return &usageError{msg: fmt.Sprintf("refusing to route a cluster on %s without a token", c.Cluster), hint: "set --token-file: members authenticate with it"}
	}
	return nil
}

// prepareStore makes the streams a satellite's clients would otherwise
// make when they first need them (pipes.Client.Prepare), before it says it
// is ready: takers then take a small item with its offer from the first.
// A failure is said, and the satellite serves anyway.
func prepareStore(ctx context.Context, srv *embedded.Server, token string) {
	nc, err := srv.Connect("skypipe prepare", token)
	if err != nil {
		printf("preparing the store: %v", err)
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pipes.New(nc).Prepare(ctx); err != nil {
		printf("preparing the store: %v", err)
	}
}

// migrateStore moves the items an older skypipe kept in its layout (a
// stream per pipe) into the shared stream, before any client may connect:
// the satellite starts with no listener, and only this process reaches it.
// A failure is said, and the satellite serves anyway: 'skypipe ls' then
// points to 'skypipe setup migrate'.
func migrateStore(ctx context.Context, cfg embedded.Config) {
	old, err := embedded.StoresStreams(cfg.StoreDir, wire.StreamPrefix)
	if err != nil || !old {
		return
	}
	cfg.Private = true
	srv, err := embedded.Start(cfg)
	if err != nil {
		printf("moving the items of an older skypipe: %v", err)
		return
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("skypipe migrate", cfg.Token)
	if err != nil {
		printf("moving the items of an older skypipe: %v", err)
		return
	}
	defer nc.Close()
	res, err := pipes.New(nc).Migrate(ctx)
	if err != nil {
		printf("moving the items of an older skypipe: %v", err)
		hintf("'skypipe setup migrate' tries again; until then receivers do not see them")
		return
	}
	if res.Pipes > 0 {
		printf("moved %d kept item(s) of %d pipe(s) of an older skypipe to the shared stream", res.Items, res.Pipes)
	}
}
