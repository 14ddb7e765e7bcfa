package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/skypipe/skypipe/provision"
)

// SetupSSHCmd deploys a satellite to a host over ssh.
type SetupSSHCmd struct {
	Target    string   `arg:"" help:"[USER@]HOST[:PORT] as ssh takes it: your ~/.ssh/config, agent and known_hosts apply." placeholder:"[USER@]HOST[:PORT]"`
	Port      int      `help:"TCP port the satellite listens on there (open it in the host's firewall). 443 makes it serve HTTPS only: the HTTP face and NATS over WebSocket." default:"4222" env:"SKYPIPE_SETUP_PORT"`
	HTTPSPort int      `name:"https-port" help:"Port of the HTTP face (curl, browsers) and NATS over WebSocket; the same as --port: that port only. Default 8443 (443 with --websocket or --port 443); 0 for none." default:"-1" env:"SKYPIPE_SETUP_HTTPS_PORT" placeholder:"PORT"`
	Websocket bool     `help:"Serve HTTPS (the HTTP face and NATS over WebSocket) on port 443 too, for clients whose networks let only HTTPS out."`
	Address   string   `help:"Name or address other machines reach the host by, if not the one ssh uses; the certificate names it." placeholder:"HOST"`
	SSHOption []string `name:"ssh-option" help:"One more argument for ssh, e.g. --ssh-option=-F --ssh-option=FILE; SKYPIPE_SSH holds more, separated by spaces." placeholder:"ARG" sep:"none"`
	Binary    string   `help:"The skypipe binary to copy (default: this one); a Linux build for the host's architecture." type:"existingfile" placeholder:"FILE"`
	Rotate    bool     `help:"Make a new CA and token instead of keeping those of the satellite set up before on this host; machines that joined must join again."`
}

// Help is the long help of setup ssh.
func (c *SetupSSHCmd) Help() string {
	return `Deploys a satellite to a Linux host with the system's ssh (no prompt: use
your agent or a key without passphrase). It checks that the host can run this
binary, copies it to ~/.local/bin/skypipe there, gives the satellite a random
token and a TLS certificate from a CA skypipe makes for it, and runs
'skypipe serve' on the port as a systemd user unit that survives logout (else
as a detached process with a pid file), its store under
~/.local/share/skypipe/satellite. It waits until the satellite answers over
TLS from here, then every skypipe command here uses it.

It also serves its HTTP face there, on port 8443 (--https-port): curl and
browsers send and take items with a narrow token ('skypipe setup token'),
and skypipe clients reach NATS over WebSocket (wss://) there when the NATS
port is blocked. --websocket moves it to port 443, for networks that let
only HTTPS out; --port 443 serves that port only (both need root on the
host, or 'sysctl net.ipv4.ip_unprivileged_port_start=443').

Run again on the same host, it updates the binary and the certificate and
restarts the satellite with the same CA and token, so machines that joined
keep working; --rotate makes new ones.

Examples:
  skypipe setup ssh me@server.example.com
  skypipe setup ssh pi@192.168.1.20:2222 --port 4333
  skypipe setup ssh root@server --websocket      HTTPS on 443 too
  SKYPIPE_SSH="-i ~/.ssh/deploy -o ProxyJump=bastion" skypipe setup ssh server
  GOOS=linux GOARCH=arm64 go build -o skypipe-arm64 ./cmd/skypipe &&
    skypipe setup ssh pi@raspberry --binary skypipe-arm64`
}

// Run deploys and caches the satellite.
func (c *SetupSSHCmd) Run(ctx context.Context, s *SetupCmd) error {
	if err := s.noReset(); err != nil {
		return err
	}
	target, err := provision.ParseSSHTarget(c.Target)
	if err != nil {
		return &usageError{msg: err.Error(), hint: "skypipe setup ssh me@server.example.com[:22]"}
	}
	if c.Port <= 0 || c.Port > 65535 {
		return &usageError{msg: fmt.Sprintf("--port %d is not a TCP port", c.Port)}
	}
	httpsPort, err := c.httpsPort()
	if err != nil {
		return err
	}
	target.Options = append(strings.Fields(os.Getenv("SKYPIPE_SSH")), c.SSHOption...)
	binary := c.Binary
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return fmt.Errorf("finding the skypipe binary: %w", err)
		}
	}
	paths, err := provision.DefaultPaths()
	if err != nil {
		return err
	}
	var previous *provision.Satellite
	switch sat, err := provision.LoadSatellite(paths); {
	case errors.Is(err, provision.ErrNoSatellite):
	case err != nil:
		return err
	case sat.SSH != nil && sat.SSH.Target != target.Target:
		return &usageError{
			msg:  fmt.Sprintf("a satellite is already set up on %s", sat.SSH.Target),
			hint: "tear it down first with 'skypipe setup --reset'",
		}
	default:
		previous = &sat
	}
	sat, err := target.Deploy(ctx, provision.DeployOptions{
		Binary:    binary,
		Listen:    c.Port,
		HTTPSPort: httpsPort,
		Address:   c.Address,
		Previous:  previous,
		Rotate:    c.Rotate,
		Progress:  func(msg string) { printf("%s", msg) },
	})
	if err != nil {
		return err
	}
	if err := provision.SaveSatellite(paths, sat); err != nil {
		return err
	}
	printf("satellite ready at %s (TLS, pinned CA); skypipe here uses it from now on", sat.URL)
	if sat.Web != "" {
		printf("HTTP face at %s: curl and browsers with 'skypipe setup token'; skypipe clients fall back to NATS over WebSocket there", sat.Web)
	}
	printf("other machines: run 'skypipe setup url' here, then 'skypipe setup join' there")
	return nil
}

// httpsPort resolves --https-port, --websocket and --port 443: 0 for no
// HTTP face.
func (c *SetupSSHCmd) httpsPort() (int, error) {
	p := c.HTTPSPort
	switch {
	case p < -1 || p > 65535:
		return 0, &usageError{msg: fmt.Sprintf("--https-port %d is not a TCP port", p)}
	case c.Websocket && p >= 0 && p != 443:
		return 0, &usageError{msg: "--websocket serves HTTPS on port 443", hint: "drop --websocket to serve it on --https-port " + fmt.Sprint(p)}
	case p >= 0:
		return p, nil
	case c.Websocket || c.Port == 443:
		return 443, nil
	}
	return defaultHTTPSPort, nil
}

// defaultHTTPSPort is where a deployed satellite serves HTTPS unless told:
// a port its user may bind without privileges.
const defaultHTTPSPort = 8443
