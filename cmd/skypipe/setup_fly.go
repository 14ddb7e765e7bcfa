package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/provision/fly"
)

// SetupFlyCmd deploys a satellite to the user's Fly.io organization, or
// finds the one already there.
type SetupFlyCmd struct {
	App    string `help:"Name of the Fly app (default: the organization's skypipe-* app, or a new skypipe-XXXXXXXX)." env:"SKYPIPE_FLY_APP" placeholder:"NAME"`
	Org    string `help:"Fly organization slug." default:"personal" env:"SKYPIPE_FLY_ORG" placeholder:"SLUG"`
	Region string `help:"Region of a new satellite (fly platform regions)." default:"iad" env:"SKYPIPE_FLY_REGION" placeholder:"CODE"`
	IPv4   bool   `name:"ipv4" help:"Also allocate a dedicated IPv4 address ($2 a month) for raw NATS; without it, clients reach the satellite over HTTPS on Fly's shared IPv4 (free) or raw NATS over IPv6."`
	Binary string `help:"The skypipe binary the satellite runs, a static linux/amd64 build (default: the release's image, or this binary)." type:"existingfile" placeholder:"FILE"`
}

// Help is the long help of setup fly.
func (c *SetupFlyCmd) Help() string {
	return `Deploys a satellite to your Fly.io account through the Machines API, or
finds the one already there. It needs an API token in FLY_API_TOKEN (never on
the command line): 'fly tokens create org' makes one.

A new satellite is an app skypipe-XXXXXXXX with a 1 GB volume for the store,
a dedicated IPv6 address, Fly's shared IPv4 (a dedicated one with --ipv4),
its token and TLS certificate as Fly secrets, and one shared-cpu-1x machine
(256 MB) running 'skypipe serve': raw NATS over TLS on port 4222, and HTTPS
on 443 (TLS ended by Fly's proxy) for NATS over WebSocket, curl and
browsers. Without --ipv4 clients use wss://APP.fly.dev, which every network
that lets HTTPS out reaches. A released skypipe runs the image its release
published (ghcr.io/skypipe/skypipe:VERSION, pinned by digest) when that
image holds this very binary, or when this one cannot run there (macOS,
Windows, arm64); otherwise skypipe pushes an image of its own binary (or of
--binary) to the app's registry. Another machine with a token for the same organization runs the same
command and finds that satellite instead of deploying another.

Examples:
  FLY_API_TOKEN=$(fly tokens create org) skypipe setup fly
  skypipe setup fly --region ams --ipv4
  skypipe setup --reset                  delete the app and all it holds`
}

// Run deploys or finds the satellite and caches it.
func (c *SetupFlyCmd) Run(ctx context.Context, s *SetupCmd) error {
	if err := s.noReset(); err != nil {
		return err
	}
	api, err := fly.NewClient(os.Getenv("FLY_API_TOKEN"))
	if err != nil {
		return err
	}
	paths, err := provision.DefaultPaths()
	if err != nil {
		return err
	}
	switch sat, err := provision.LoadSatellite(paths); {
	case errors.Is(err, provision.ErrNoSatellite):
	case err != nil:
		return err
	case sat.Fly == nil || (c.App != "" && sat.Fly.App != c.App):
		return &usageError{
			msg:  fmt.Sprintf("this machine already uses the satellite at %s (%s)", provision.Redact(sat.URL), sat.Kind),
			hint: "forget or tear it down first with 'skypipe setup --reset'",
		}
	}
	opts := fly.Options{App: c.App, Org: c.Org, Region: c.Region, IPv4: c.IPv4}
	printf("looking for a satellite in the Fly.io organization %q", c.Org)
	res, sec, err := fly.Find(ctx, api, opts)
	var ca provision.Authority
	switch {
	case err == nil:
		printf("found the satellite of app %s", res.App)
	case errors.Is(err, fly.ErrNoSatellite):
		if c.Binary == "" && fly.IsRelease(version) {
			opts.Release = version // run the release's image if it holds this binary
		}
		if opts.Binary, err = c.binary(opts.Release != ""); err != nil {
			return err
		}
		printf("deploying a new satellite (region %s)", c.Region)
		res, sec, err = fly.Deploy(ctx, api, opts, func(host string) (fly.Secrets, error) {
			var err error
			ca, err = provision.NewAuthority()
			if err != nil {
				return fly.Secrets{}, err
			}
			cert, key, err := ca.Issue([]string{host}, provision.ServerCertValidity)
			if err != nil {
				return fly.Secrets{}, err
			}
			var b [32]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fly.Secrets{}, err
			}
			return fly.Secrets{Token: hex.EncodeToString(b[:]), TLSCertPEM: cert, TLSKeyPEM: key, CAPEM: ca.CertPEM}, nil
		})
		if err != nil {
			return err
		}
	default:
		return err
	}
	sat := provision.Satellite{
		Kind: "fly", URL: res.URL(), Token: sec.Token, CAPEM: string(sec.CAPEM),
		Fly: &provision.FlyDeployment{App: res.App, Org: c.Org},
	}
	if res.Web {
		// Without a dedicated IPv4, raw NATS reaches IPv6 clients only:
		// WebSocket through Fly's proxy on 443 comes first, as it reaches
		// every client; with one, raw NATS (end to end with the pinned CA)
		// comes first.
		sat.Web, sat.WSPublicCA = res.WebURL(), true
		sat.Alt = res.WebSocketURL()
		if !res.DedicatedIPv4() {
			sat.URL, sat.Alt = sat.Alt, sat.URL
		}
	}
	if ca.KeyPEM != nil && string(ca.CertPEM) == string(sec.CAPEM) {
		sat.CAKeyPEM = string(ca.KeyPEM)
	}
	nc, err := provision.Dial(sat.Endpoint())
	if err != nil {
		return fmt.Errorf("the satellite runs in app %s but does not answer from here: %w", res.App, err)
	}
	nc.Close()
	if err := provision.SaveSatellite(paths, sat); err != nil {
		return err
	}
	printf("satellite ready at %s; skypipe here uses it from now on", provision.Redact(sat.URL))
	if sat.Web != "" {
		printf("HTTP face at %s: curl and browsers with 'skypipe setup token'", sat.Web)
	}
	printf("other machines: 'skypipe setup fly' with a token of the same organization, or 'skypipe setup url' here and 'skypipe setup join' there")
	return nil
}

// binary is the skypipe the satellite runs: --binary, or this one if it
// is a Linux amd64 build. With optional (a release, whose image may run
// instead), a build for another system gives none.
func (c *SetupFlyCmd) binary(optional bool) ([]byte, error) {
	path := c.Binary
	if path == "" {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			if optional {
				return nil, nil
			}
			return nil, &usageError{
				msg:  fmt.Sprintf("this skypipe is built for %s/%s; a Fly machine runs linux/amd64", runtime.GOOS, runtime.GOARCH),
				hint: "build one with CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o skypipe-linux ./cmd/skypipe and pass --binary skypipe-linux",
			}
		}
		var err error
		if path, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding the skypipe binary: %w", err)
		}
	}
	return fly.ReadBinary(path)
}
