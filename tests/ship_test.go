package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// shipCommands are commands for the scripts of the command line's surface:
//
//	needs TOOL...           skip the script, naming the Debian package, if a
//	                        TOOL is not installed (.ci/run installs them all);
//	                        read when the script is set up (skipIfMissing),
//	                        so it goes at the top, before anything runs
//	jsonfield FILE PATH WANT  FILE (or stdout) holds JSON whose value at PATH
//	                        (.a.0.b; "." the whole) is WANT, compared as JSON
//	                        (a bare word that is not JSON compares as a string)
var shipCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"needs":     cmdNeeds,
	"jsonfield": cmdJSONField,
}

// toolPackages names the Debian package of each tool a script may need:
// the skip message says what to install.
var toolPackages = map[string]string{
	"sshd":       "openssh-server",
	"ssh":        "openssh-client",
	"ssh-keygen": "openssh-client",
	"pgrep":      "procps",
	"ps":         "procps",
	"man":        "man-db",
	"zsh":        "zsh",
	"fish":       "fish",
	"dpkg-deb":   "dpkg",
	"rpm":        "rpm",
	"curl":       "curl",
	"chromium":   "chromium",
}

// toolPaths are tools looked for at a fixed path rather than on PATH.
var toolPaths = map[string]string{"sshd": sshdPath}

// missingTools are the tools of names not installed here, each with the
// Debian package that has it.
func missingTools(names ...string) []string {
	var missing []string
	for _, name := range names {
		var err error
		if p, ok := toolPaths[name]; ok {
			_, err = os.Stat(p)
		} else {
			_, err = exec.LookPath(name)
		}
		if err != nil {
			pkg := toolPackages[name]
			if pkg == "" {
				pkg = "?"
			}
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", name, pkg))
		}
	}
	return missing
}

// cmdNeeds checks, when the script reaches it, what skipIfMissing read
// before it started.
func cmdNeeds(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: needs TOOL...")
	}
	if missing := missingTools(args...); len(missing) > 0 {
		ts.Fatalf("needs %s: skipIfMissing should have skipped this script", strings.Join(missing, ", "))
	}
}

// skipIfMissing skips a script whose 'needs' lines name a tool that is not
// installed, with a message that names the package: the test command runs
// everywhere, and installs nothing.
func skipIfMissing(env *testscript.Env, dir string) {
	name := strings.TrimPrefix(filepath.Base(env.WorkDir), "script-")
	data, err := os.ReadFile(filepath.Join(dir, name+".txt"))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "-- " || strings.HasPrefix(line, "-- ") && strings.HasSuffix(line, " --") {
			break // the archive's files
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "needs" {
			continue
		}
		if missing := missingTools(fields[1:]...); len(missing) > 0 {
			env.T().Skip("skipped: needs " + strings.Join(missing, ", ") + " (.ci/run installs it)")
		}
	}
}

func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonfield FILE PATH WANT")
	}
	data := ts.ReadFile(args[0])
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		ts.Fatalf("%s is not JSON: %v\n%s", args[0], err, data)
	}
	for _, key := range strings.Split(strings.Trim(args[1], "."), ".") {
		if key == "" {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[key]; !ok {
				ts.Fatalf("%s: no field %q at %s", args[0], key, args[1])
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				ts.Fatalf("%s: no element %q at %s (length %d)", args[0], key, args[1], len(x))
			}
			v = x[i]
		default:
			ts.Fatalf("%s: %s goes into a %T", args[0], args[1], v)
		}
	}
	var want any
	if err := json.Unmarshal([]byte(args[2]), &want); err != nil {
		want = args[2]
	}
	got, _ := json.Marshal(v)
	wantJSON, _ := json.Marshal(want)
	if (string(got) == string(wantJSON)) == neg {
		ts.Fatalf("%s at %s is %s, want %s%s", args[0], args[1], got, map[bool]string{true: "not "}[neg], wantJSON)
	}
}

// commandWord finds the words in a command's place: after exec, at the
// start of sh -c's script, or after | ; & ( $(.
var commandWord = regexp.MustCompile(`(?:^|\bexec\s+|sh -c ["']|[|;&(]\s*)([a-z][a-z0-9_-]*)`)

// TestScriptsDeclareTheToolsTheyNeed: a script that runs a tool which may
// be missing (toolPackages) says so with 'needs', so that it is skipped
// with a clear message instead of failing where the tool is not installed.
func TestScriptsDeclareTheToolsTheyNeed(t *testing.T) {
	scripts, _ := filepath.Glob("testdata/*.txt")
	faults, _ := filepath.Glob("faults/*.txt")
	heavy, _ := filepath.Glob("heavy/*.txt")
	for _, path := range append(append(scripts, faults...), heavy...) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		body, _, _ := strings.Cut(string(data), "\n-- ")
		declared := map[string]bool{}
		var code []string
		for _, line := range strings.Split(body, "\n") {
			fields := strings.Fields(line)
			switch {
			case len(fields) > 0 && fields[0] == "needs":
				for _, f := range fields[1:] {
					declared[f] = true
				}
			case len(fields) > 0 && !strings.HasPrefix(fields[0], "#"):
				code = append(code, line)
			}
		}
		used := map[string]bool{}
		for _, line := range code {
			for _, m := range commandWord.FindAllStringSubmatch(line, -1) {
				if _, ok := toolPackages[m[1]]; ok {
					used[m[1]] = true
				}
			}
			if strings.HasPrefix(strings.TrimSpace(line), "sshd") {
				used["sshd"], used["ssh"], used["ssh-keygen"] = true, true, true
			}
		}
		for tool := range used {
			if !declared[tool] {
				t.Errorf("%s uses %s but has no 'needs %s' line", path, tool, tool)
			}
		}
	}
}
