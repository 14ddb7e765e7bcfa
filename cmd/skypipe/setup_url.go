package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/skypipe/skypipe/provision"
)

// SetupURLCmd prints the join string of the cached satellite.
type SetupURLCmd struct{}

// Help is the long help of setup url.
func (c *SetupURLCmd) Help() string {
	return `Prints, on stdout, one line that lets another machine use this machine's
satellite: its URL, token and the CA certificate to pin. It holds the token:
pass it on as you would a password, never on a command line.

Examples:
  skypipe setup url | ssh laptop 'skypipe setup join'
  skypipe setup url > /dev/clipboard   then, on the other machine: skypipe setup join`
}

// Run prints the join string.
func (c *SetupURLCmd) Run(ctx context.Context, s *SetupCmd) error {
	sat, err := s.remote("the local one listens on this machine only")
	if err != nil {
		return err
	}
	fmt.Println(sat.JoinString())
	printf("this string holds the satellite's token: pass it on privately; on the other machine run 'skypipe setup join' and paste it")
	return nil
}

// remote is the remote satellite 'skypipe setup' set up, for the commands
// that print something of it; without one, a usage error says why the
// local one will not do.
func (s *SetupCmd) remote(why string) (provision.Satellite, error) {
	if err := s.noReset(); err != nil {
		return provision.Satellite{}, err
	}
	paths, err := provision.DefaultPaths()
	if err != nil {
		return provision.Satellite{}, err
	}
	sat, err := provision.LoadSatellite(paths)
	if errors.Is(err, provision.ErrNoSatellite) {
		return provision.Satellite{}, &usageError{msg: "no remote satellite is set up: " + why, hint: "deploy one first: skypipe setup ssh [USER@]HOST"}
	}
	return sat, err
}
