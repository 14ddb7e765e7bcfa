package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/skypipe/skypipe/provision"
)

// SetupJoinCmd uses the satellite a join string names.
type SetupJoinCmd struct {
	String string `arg:"" optional:"" help:"The join string. Better on stdin or in SKYPIPE_JOIN: a command line is visible to other users." placeholder:"STRING"`
}

// Help is the long help of setup join.
func (c *SetupJoinCmd) Help() string {
	return `Reads a join string ('skypipe setup url' prints one on the machine that
deployed the satellite) from SKYPIPE_JOIN, else from stdin (paste it and
press Enter), checks that the satellite answers with its pinned certificate
and token, and caches it: every skypipe command here then uses it.

Examples:
  skypipe setup join                       then paste the string
  ssh server 'skypipe setup url' | skypipe setup join
  SKYPIPE_JOIN="$(cat join.txt)" skypipe setup join`
}

// Run joins.
func (c *SetupJoinCmd) Run(ctx context.Context, s *SetupCmd) error {
	if err := s.noReset(); err != nil {
		return err
	}
	str := c.String
	switch {
	case str != "":
		printf("warning: a join string on the command line is visible to other users (ps); prefer stdin or SKYPIPE_JOIN")
	case os.Getenv("SKYPIPE_JOIN") != "":
		str = os.Getenv("SKYPIPE_JOIN")
	default:
		if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			printf("paste the join string ('skypipe setup url' prints it), then press Enter:")
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		str = strings.TrimSpace(line)
	}
	if str == "" {
		return &usageError{msg: "no join string", hint: "on the satellite's machine run 'skypipe setup url'; here paste it into 'skypipe setup join' or set SKYPIPE_JOIN"}
	}
	sat, err := provision.ParseJoin(str)
	if err != nil {
		return &usageError{msg: err.Error(), hint: "copy the whole line 'skypipe setup url' prints"}
	}
	paths, err := provision.DefaultPaths()
	if err != nil {
		return err
	}
	switch prev, err := provision.LoadSatellite(paths); {
	case errors.Is(err, provision.ErrNoSatellite):
	case err != nil:
		return err
	case prev.SSH != nil:
		return &usageError{
			msg:  fmt.Sprintf("this machine deployed the satellite on %s and uses it", prev.SSH.Target),
			hint: "tear it down first with 'skypipe setup --reset'",
		}
	}
	nc, err := provision.Dial(sat.Endpoint())
	if err != nil {
		return err
	}
	nc.Close()
	if err := provision.SaveSatellite(paths, sat); err != nil {
		return err
	}
	printf("joined the satellite at %s (TLS, pinned CA); skypipe here uses it from now on", sat.URL)
	return nil
}
