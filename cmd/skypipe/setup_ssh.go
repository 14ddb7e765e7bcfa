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
	Port      int      `help:"TCP port the satellite listens on there (open it in the host's firewall)." default:"4222" env:"SKYPIPE_SETUP_PORT"`
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

Run again on the same host, it updates the binary and the certificate and
restarts the satellite with the same CA and token, so machines that joined
keep working; --rotate makes new ones.

Examples:
  skypipe setup ssh me@server.example.com
  skypipe setup ssh pi@192.168.1.20:2222 --port 4333
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
		Binary:   binary,
		Listen:   c.Port,
		Address:  c.Address,
		Previous: previous,
		Rotate:   c.Rotate,
		Progress: func(msg string) { printf("%s", msg) },
	})
	if err != nil {
		return err
	}
	if err := provision.SaveSatellite(paths, sat); err != nil {
		return err
	}
	printf("satellite ready at %s (TLS, pinned CA); skypipe here uses it from now on", sat.URL)
	printf("other machines: run 'skypipe setup url' here, then 'skypipe setup join' there")
	return nil
}
