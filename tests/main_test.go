package tests

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// binDir holds the skypipe binary built once for all scripts.
var binDir string

// plainDir holds skypipe built without the race detector, when binDir's
// has it.
var plainDir string

// skypipeBin is the skypipe binary a script's own commands (satellites,
// load) run: binDir's, or without the race detector when the script says
// 'env SKYPIPE_TEST_PLAIN=1' (the load scripts: they move gigabytes, which
// the race detector slows 5 to 10 times while finding nothing the other
// scripts do not).
func skypipeBin(ts *testscript.TestScript) string {
	if ts.Getenv("SKYPIPE_TEST_PLAIN") == "1" && plainDir != "" {
		return filepath.Join(plainDir, "skypipe")
	}
	return filepath.Join(binDir, "skypipe")
}

// churnBin is tests/churn/cmd/churn, built without the race detector.
var churnBin string

// goCache is the Go build cache scripts that build share with this test.
var goCache string

// buildFirst builds skypipe before the tests run, but not when the test
// binary runs as one of the helper commands.
type buildFirst struct{ m *testing.M }

func (b buildFirst) Run() int {
	dir, err := os.MkdirTemp("", "skypipe-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	churnBin = filepath.Join(dir, "helpers", "churn")
	churn := exec.Command("go", "build", "-o", churnBin, "./churn/cmd/churn")
	churn.Stdout, churn.Stderr = os.Stderr, os.Stderr
	if err := churn.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tests/churn/cmd/churn:", err)
		return 1
	}
	if old := os.Getenv("SKYPIPE_TEST_BINARY"); old != "" {
		// Run the scripts against another build, e.g. an older commit's,
		// to show that a script fails there.
		if err := os.Symlink(old, filepath.Join(dir, "skypipe")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return b.m.Run()
	}
	args := []string{"build", "-o", filepath.Join(dir, "skypipe")}
	if raceBuild() {
		args = append(args, "-race") // the binary under test, with the race detector
	}
	build := exec.Command("go", append(args, "../cmd/skypipe")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building skypipe:", err)
		return 1
	}
	binDir = dir
	if raceBuild() {
		// The load scripts run a binary without the race detector (see
		// skypipeBin): at gigabytes its slowdown tests nothing more.
		plain := filepath.Join(dir, "plain")
		build := exec.Command("go", "build", "-o", filepath.Join(plain, "skypipe"), "../cmd/skypipe")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building skypipe without -race:", err)
			return 1
		}
		plainDir = plain
	}
	if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
		goCache = strings.TrimSpace(string(out))
	}
	return b.m.Run()
}

// raceBuild tells whether the scripts run a skypipe built with the race
// detector: under `go test -race`, or with SKYPIPE_TEST_RACE=1.
func raceBuild() bool { return raceDetector || os.Getenv("SKYPIPE_TEST_RACE") != "" }

func TestMain(m *testing.M) {
	os.Exit(testscript.RunMain(buildFirst{m}, helperCommands))
}

// TestCLI runs the scripts in testdata/: one file per command and case.
func TestCLI(t *testing.T) {
	testscript.Run(t, params("testdata"))
}

func params(dir string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		// [race]: the skypipe under test runs with the race detector,
		// which makes it several times slower. The others: scriptCondition.
		Condition: func(cond string) (bool, error) {
			if cond == "race" {
				return raceBuild(), nil
			}
			return scriptCondition(cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", binDir+string(os.PathListSeparator)+env.Getenv("PATH"))
			// PLAINBIN: where skypipe without the race detector is (the
			// same as binDir's when that has none), for scripts that start
			// hundreds of processes.
			env.Setenv("PLAINBIN", cmp.Or(plainDir, binDir))
			// Everything a local satellite writes stays in the script's dir.
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Setenv("XDG_DATA_HOME", filepath.Join(env.WorkDir, ".data"))
			env.Setenv("SKYPIPE_URL", "")
			// A deployment's HTTPS port is a script's choice (--https-port
			// with a free port): two scripts must not both take 8443.
			env.Setenv("SKYPIPE_SETUP_HTTPS_PORT", "0")
			env.Setenv("GOCACHE", goCache)
			env.Defer(func() { stopLocalSatellite(env) })
			skipIfMissing(env, dir)
			return nil
		},
		Cmds: commands(),
	}
}

// stopLocalSatellite stops the background satellite a script may have
// started, so that no test leaves one running.
func stopLocalSatellite(env *testscript.Env) {
	if _, err := os.Stat(filepath.Join(env.WorkDir, ".config", "skypipe", "local.json")); err != nil {
		return
	}
	cmd := exec.Command(filepath.Join(binDir, "skypipe"), "stop")
	cmd.Env = env.Vars
	if out, err := cmd.CombinedOutput(); err != nil {
		env.T().Log("skypipe stop:", err, string(out))
	}
}

// commands are every command scripts may use beside testscript's own.
func commands() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	all := maps.Clone(scriptCommands)
	maps.Copy(all, remoteCommands)
	maps.Copy(all, shipCommands)
	maps.Copy(all, completeCommands)
	maps.Copy(all, roleCommands)
	maps.Copy(all, httpCommands)
	maps.Copy(all, ttyCommands)
	return all
}
