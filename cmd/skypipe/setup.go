package main

import (
	"context"
	"errors"
	"os"

	"github.com/skypipe/skypipe/provision"
	"github.com/skypipe/skypipe/provision/fly"
)

// SetupCmd deploys, joins, checks and tears down the satellite that many
// machines share. Without a subcommand it checks.
type SetupCmd struct {
	Reset bool `help:"Tear the remote satellite down (ssh: stop it, remove its service, token and certificate) and forget it; skypipe uses the local satellite again. A joined satellite is only forgotten."`
	Purge bool `help:"With --reset: also remove the satellite's store, with every item it keeps."`
	JSON  bool `name:"json" help:"The check: print one JSON object, the one 'skypipe status --json' prints (fields: see 'skypipe status --help')."`

	Check SetupCheckCmd `cmd:"" default:"1" help:"Show the satellite in use and whether it answers (what 'skypipe setup' does)."`
	SSH   SetupSSHCmd   `cmd:"" name:"ssh" help:"Deploy a satellite to a Linux host you can ssh into."`
	Fly   SetupFlyCmd   `cmd:"" name:"fly" help:"Deploy a satellite to your Fly.io account, or find the one there (FLY_API_TOKEN)."`
	URL   SetupURLCmd   `cmd:"" name:"url" help:"Print the one-line join string for 'skypipe setup join' on another machine."`
	Join  SetupJoinCmd  `cmd:"" help:"Use the satellite of a join string read from stdin or SKYPIPE_JOIN."`
	Token SetupTokenCmd `cmd:"" help:"Print a narrow token for curl and browsers: some pipes, send or take only."`
	CA    SetupCACmd    `cmd:"" name:"ca" help:"Print the satellite's CA certificate, for curl --cacert."`

	Migrate SetupMigrateCmd `cmd:"" help:"Move items kept by an older skypipe (a stream per pipe) to where receivers read them."`
}

// Help is the long help of setup.
func (c *SetupCmd) Help() string {
	return `On one machine skypipe needs no setup. To pipe between machines, deploy
a satellite once to a host both reach, then join it from the others:

  skypipe setup ssh me@server          on machine A: deploy (TLS, token)
  skypipe setup fly                    ... or to Fly.io (FLY_API_TOKEN)
  skypipe setup url                    on A: print the join string
  skypipe setup join                   on B: paste it (or SKYPIPE_JOIN=...)
  skypipe setup token --send logs      a token for curl that may send to "logs" only

The satellite is cached in $XDG_CONFIG_HOME/skypipe/satellite.json (0600) and
every command uses it until 'skypipe setup --reset'; SKYPIPE_URL and
--context still override it.

Examples:
  skypipe setup                        which satellite, and does it answer
  skypipe setup --json                 the same as JSON (as 'skypipe status --json')
  skypipe setup --reset                tear it down, use the local one again
  skypipe setup --reset --purge        ... and delete what it kept`
}

// SetupCheckCmd shows the satellite in use, or with --reset tears it down.
type SetupCheckCmd struct{}

// Run checks, or resets.
func (c *SetupCheckCmd) Run(ctx context.Context, g *Globals, s *SetupCmd) error {
	if s.Reset && s.JSON {
		return &usageError{msg: "--json is for the check", hint: "skypipe setup --json"}
	}
	if s.Reset {
		return reset(ctx, s.Purge)
	}
	if s.Purge {
		return &usageError{msg: "--purge goes with --reset", hint: "skypipe setup --reset --purge"}
	}
	return describe(ctx, g, s.JSON)
}

// noReset refuses --reset and --purge beside a subcommand.
func (s *SetupCmd) noReset() error {
	if s.Reset || s.Purge {
		return &usageError{msg: "--reset goes alone", hint: "skypipe setup --reset"}
	}
	if s.JSON {
		return &usageError{msg: "--json is for the check, 'skypipe setup' alone", hint: "skypipe setup --json"}
	}
	return nil
}

// reset tears the cached satellite down where skypipe deployed it, then
// forgets it.
func reset(ctx context.Context, purge bool) error {
	paths, err := provision.DefaultPaths()
	if err != nil {
		return err
	}
	sat, err := provision.LoadSatellite(paths)
	if errors.Is(err, provision.ErrNoSatellite) {
		printf("no remote satellite is set up; skypipe uses the local one")
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case sat.Kind == "ssh" && sat.SSH != nil:
		printf("stopping the satellite on %s", sat.SSH.Target)
		if err := sat.SSH.Teardown(ctx, purge); err != nil {
			return &resetError{err: err, file: paths.SatelliteFile()}
		}
		if purge {
			printf("removed the satellite, its service and its store from %s", sat.SSH.Target)
		} else {
			printf("removed the satellite and its service from %s; its store stays (--purge removes it)", sat.SSH.Target)
		}
	case sat.Kind == "fly" && sat.Fly != nil:
		printf("deleting the Fly.io app %s and all it holds", sat.Fly.App)
		api, err := fly.NewClient(os.Getenv("FLY_API_TOKEN"))
		if err == nil {
			_, err = fly.Reset(ctx, api, fly.Options{App: sat.Fly.App, Org: sat.Fly.Org})
		}
		if err != nil {
			return &resetError{err: err, file: paths.SatelliteFile()}
		}
		printf("deleted the app %s: its machine, volume and addresses", sat.Fly.App)
	default:
		printf("forgetting the satellite at %s (%s); it runs on where it was set up", provision.Redact(sat.URL), sat.Kind)
	}
	if err := provision.ForgetSatellite(paths); err != nil && !errors.Is(err, provision.ErrNoSatellite) {
		return err
	}
	printf("skypipe uses the local satellite again")
	return nil
}

// resetError: the teardown failed; the cache stays so that it can be tried
// again.
type resetError struct {
	err  error
	file string
}

func (e *resetError) Error() string { return "tearing the satellite down: " + e.err.Error() }
func (e *resetError) Unwrap() error { return e.err }
