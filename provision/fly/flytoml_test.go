package fly

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// flyToml is the part of fly.toml the satellite uses.
type flyToml struct {
	PrimaryRegion string            `toml:"primary_region"`
	Processes     map[string]string `toml:"processes"`
	Env           map[string]string `toml:"env"`
	Mounts        []struct {
		Source, Destination string
	} `toml:"mounts"`
	Files []struct {
		GuestPath  string `toml:"guest_path"`
		SecretName string `toml:"secret_name"`
	} `toml:"files"`
	Services []struct {
		Protocol     string `toml:"protocol"`
		InternalPort int    `toml:"internal_port"`
		AutoStop     string `toml:"auto_stop_machines"`
		AutoStart    bool   `toml:"auto_start_machines"`
		Ports        []struct {
			Port     int      `toml:"port"`
			Handlers []string `toml:"handlers"`
		} `toml:"ports"`
	} `toml:"services"`
	Restart []struct {
		Policy string `toml:"policy"`
	} `toml:"restart"`
	VM []struct {
		Size   string `toml:"size"`
		Memory string `toml:"memory"`
	} `toml:"vm"`
}

// TestFlyTomlAndDockerfileAgreeWithTheProvider: the manual path (fly
// deploy) makes the machine Deploy makes.
func TestFlyTomlAndDockerfileAgreeWithTheProvider(t *testing.T) {
	var ft flyToml
	md, err := toml.DecodeFile("../../fly.toml", &ft)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		// Keys this test does not compare must be ones it knows about.
		known := regexp.MustCompile(`^(app|build(\.dockerfile)?|mounts\.(initial_size|processes)|services\.(processes|min_machines_running)|restart\.processes|vm\.processes)$`)
		for _, k := range und {
			if !known.MatchString(k.String()) {
				t.Errorf("fly.toml has %s, which this test does not compare with the provider", k)
			}
		}
	}
	mc := machineConfig("image", "vol", testCA, DefaultMemoryMB)

	if got := strings.Fields(ft.Processes["app"]); !reflect.DeepEqual(got, mc.Init.Cmd) {
		t.Errorf("fly.toml command %q, provider %q", got, mc.Init.Cmd)
	}
	if len(ft.Services) != 2 || len(mc.Services) != 2 {
		t.Fatalf("services: fly.toml %d, provider %d", len(ft.Services), len(mc.Services))
	}
	for i := range mc.Services {
		fs, ms := ft.Services[i], mc.Services[i]
		if fs.Protocol != ms.Protocol || fs.InternalPort != ms.InternalPort || fs.AutoStop != ms.Autostop || fs.AutoStart != *ms.Autostart {
			t.Errorf("fly.toml service %+v, provider %+v", fs, ms)
		}
		if len(fs.Ports) != 1 || len(ms.Ports) != 1 || fs.Ports[0].Port != ms.Ports[0].Port || !slices.Equal(fs.Ports[0].Handlers, ms.Ports[0].Handlers) {
			t.Errorf("fly.toml ports %+v, provider %+v", fs.Ports, ms.Ports)
		}
	}
	if h := mc.Services[0].Ports[0].Handlers; len(h) != 0 {
		t.Errorf("raw NATS has handlers %q: Fly's proxy must pass it through", h)
	}
	if len(ft.Mounts) != 1 || ft.Mounts[0].Destination != mc.Mounts[0].Path || ft.Mounts[0].Source != VolumeName {
		t.Errorf("fly.toml mounts %+v, provider %+v of volume %s", ft.Mounts, mc.Mounts, VolumeName)
	}
	var tomlFiles, provFiles []string
	for _, f := range ft.Files {
		tomlFiles = append(tomlFiles, f.GuestPath+"<-"+f.SecretName)
	}
	for _, f := range mc.Files {
		provFiles = append(provFiles, f.GuestPath+"<-"+f.SecretName)
	}
	slices.Sort(tomlFiles)
	slices.Sort(provFiles)
	if !reflect.DeepEqual(tomlFiles, provFiles) {
		t.Errorf("fly.toml files %q, provider %q", tomlFiles, provFiles)
	}
	var tomlEnv, provEnv []string
	for k := range ft.Env {
		tomlEnv = append(tomlEnv, k)
	}
	for k := range mc.Env {
		provEnv = append(provEnv, k)
	}
	slices.Sort(tomlEnv)
	slices.Sort(provEnv)
	if !slices.Equal(tomlEnv, provEnv) {
		t.Errorf("fly.toml env %q, provider %q", tomlEnv, provEnv)
	}
	if len(ft.Restart) != 1 || ft.Restart[0].Policy != mc.Restart.Policy {
		t.Errorf("fly.toml restart %+v, provider %q", ft.Restart, mc.Restart.Policy)
	}
	if len(ft.VM) != 1 || ft.VM[0].Size != "shared-cpu-1x" || ft.VM[0].Memory != "256mb" || mc.Guest.MemoryMB != 256 || mc.Guest.CPUKind != "shared" || mc.Guest.CPUs != 1 {
		t.Errorf("fly.toml vm %+v, provider %+v", ft.VM, mc.Guest)
	}
	if ft.PrimaryRegion != DefaultRegion {
		t.Errorf("fly.toml region %q, provider's default %q", ft.PrimaryRegion, DefaultRegion)
	}

	// The Dockerfile's image: the binary where the pushed image has it,
	// and the same command.
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	directive := func(name string) string {
		var last string
		for _, line := range strings.Split(string(df), "\n") {
			if rest, ok := strings.CutPrefix(line, name+" "); ok {
				last = rest
			}
		}
		return last
	}
	var entry, cmd []string
	if err := json.Unmarshal([]byte(directive("ENTRYPOINT")), &entry); err != nil || !reflect.DeepEqual(entry, []string{BinaryPath}) {
		t.Errorf("Dockerfile ENTRYPOINT %q (%v), want [%q]", directive("ENTRYPOINT"), err, BinaryPath)
	}
	if err := json.Unmarshal([]byte(directive("CMD")), &cmd); err != nil || !reflect.DeepEqual(cmd, ServeArgs()) {
		t.Errorf("Dockerfile CMD %q (%v), want %q", directive("CMD"), err, ServeArgs())
	}
	if copyLine := directive("COPY"); !strings.HasSuffix(copyLine, " "+BinaryPath) || !strings.HasPrefix(directive("FROM"), "scratch") {
		t.Errorf("Dockerfile's final stage: FROM %q, COPY %q; want scratch with the binary at %s", directive("FROM"), copyLine, BinaryPath)
	}
}
