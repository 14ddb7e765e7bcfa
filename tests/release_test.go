package tests

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// The release tests check what `goreleaser release --snapshot --clean`
// built into SKYPIPE_DIST (.ci/release runs them so); without it they skip.
func releaseDist(t *testing.T) (dir, version string) {
	dir = os.Getenv("SKYPIPE_DIST")
	if dir == "" {
		t.Skip("skipped: SKYPIPE_DIST is not set; .ci/release builds a snapshot release and runs this test on it")
	}
	var meta struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil || meta.Version == "" {
		t.Fatalf("metadata.json: %v %s", err, b)
	}
	return dir, meta.Version
}

// releaseTargets are the five systems a release ships for.
var releaseTargets = []struct{ os, arch, ext string }{
	{"linux", "amd64", "tar.gz"}, {"linux", "arm64", "tar.gz"},
	{"darwin", "amd64", "tar.gz"}, {"darwin", "arm64", "tar.gz"},
	{"windows", "amd64", "zip"},
}

// archiveFiles reads every file of a .tar.gz or .zip.
func archiveFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	if strings.HasSuffix(path, ".zip") {
		zr, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			files[f.Name], _ = io.ReadAll(rc)
			rc.Close()
		}
		return files
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			files[hdr.Name], _ = io.ReadAll(tr)
		}
	}
}

// TestReleaseArchivesChecksumsAndManifests: an archive for each of the
// five targets with the binary, completions and man page; checksums that
// match every file they list; a deb, an rpm, the satellite's image, a
// Homebrew cask and a Scoop manifest naming this version's archives.
func TestReleaseArchivesChecksumsAndManifests(t *testing.T) {
	dist, version := releaseDist(t)
	sums := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("checksums.txt line %q", line)
		}
		data, err := os.ReadFile(filepath.Join(dist, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: checksum does not match", name)
		}
		sums[name] = sum
	}

	var linuxBinary []byte
	for _, tg := range releaseTargets {
		name := fmt.Sprintf("skypipe_%s_%s_%s.%s", version, tg.os, tg.arch, tg.ext)
		if sums[name] == "" {
			t.Errorf("%s is missing or not in checksums.txt", name)
			continue
		}
		files := archiveFiles(t, filepath.Join(dist, name))
		bin := "skypipe"
		if tg.os == "windows" {
			bin += ".exe"
		}
		for _, want := range []string{bin, "README.md", "completions/skypipe.bash", "completions/skypipe.zsh", "completions/skypipe.fish", "man/skypipe.1"} {
			if len(files[want]) == 0 {
				t.Errorf("%s lacks %s", name, want)
			}
		}
		if !bytes.Contains(files[bin], []byte(version)) {
			t.Errorf("%s: the binary does not carry its version %s", name, version)
		}
		if tg.os == "linux" && tg.arch == "amd64" {
			linuxBinary = files[bin]
		}
	}

	image := fmt.Sprintf("skypipe_%s_image_linux_amd64.tar", version)
	if sums[image] == "" {
		t.Errorf("%s is missing or not in checksums.txt", image)
	} else if linuxBinary != nil {
		// The image holds the very binary of the linux/amd64 archive.
		layout := archiveFilesTar(t, filepath.Join(dist, image))
		found := false
		for name, data := range layout {
			if !strings.HasPrefix(name, "blobs/sha256/") {
				continue
			}
			if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
				tr := tar.NewReader(zr)
				if hdr, err := tr.Next(); err == nil && hdr.Name == "skypipe" {
					content, _ := io.ReadAll(tr)
					found = bytes.Equal(content, linuxBinary)
				}
			}
		}
		if !found {
			t.Errorf("%s does not hold the binary of the linux/amd64 archive", image)
		}
	}

	var deb, rpm bool
	for name := range sums {
		deb = deb || strings.HasSuffix(name, "_amd64.deb")
		rpm = rpm || strings.HasSuffix(name, ".x86_64.rpm")
	}
	if !deb || !rpm {
		t.Errorf("checksums.txt lists a deb: %v, an rpm: %v", deb, rpm)
	}

	cask, err := os.ReadFile(filepath.Join(dist, "homebrew", "Casks", "skypipe.rb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`version "` + version + `"`, sums[fmt.Sprintf("skypipe_%s_darwin_arm64.tar.gz", version)], `binary "skypipe"`, `manpage "man/skypipe.1"`} {
		if !strings.Contains(string(cask), want) {
			t.Errorf("the Homebrew cask lacks %q:\n%s", want, cask)
		}
	}
	var scoop struct {
		Version      string
		Architecture map[string]struct{ URL, Hash string }
	}
	b, err = os.ReadFile(filepath.Join(dist, "scoop", "skypipe.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &scoop); err != nil {
		t.Fatal(err)
	}
	win := scoop.Architecture["64bit"]
	if scoop.Version != version || win.Hash != sums[fmt.Sprintf("skypipe_%s_windows_amd64.zip", version)] || !strings.HasSuffix(win.URL, "_windows_amd64.zip") {
		t.Errorf("the Scoop manifest: %s", b)
	}
}

func archiveFilesTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name], _ = io.ReadAll(tr)
	}
}

// TestReleaseDebRuns: the deb unpacked with dpkg-deb into a fresh
// directory holds the binary, completions and man page where Debian looks
// for them, and that binary passes `echo hi | skypipe t && skypipe t` with
// a HOME of its own, then stops its satellite.
func TestReleaseDebRuns(t *testing.T) {
	dist, version := releaseDist(t)
	if missing := missingTools("dpkg-deb"); len(missing) > 0 {
		t.Skip("skipped: needs " + strings.Join(missing, ", "))
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("debs in %s: %v", dist, debs)
	}
	root := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/skypipe", "usr/share/bash-completion/completions/skypipe",
		"usr/share/zsh/vendor-completions/_skypipe", "usr/share/fish/vendor_completions.d/skypipe.fish", "usr/share/man/man1/skypipe.1.gz"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("the deb lacks /%s", f)
		}
	}
	home := t.TempDir()
	env := []string{
		"PATH=" + filepath.Join(root, "usr/bin") + ":/usr/bin:/bin",
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local/share"),
	}
	run := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env, cmd.Dir = env, home
		done := make(chan struct{})
		timer := time.AfterFunc(waitLimit, func() {
			select {
			case <-done:
			default:
				_ = cmd.Process.Kill()
			}
		})
		defer timer.Stop()
		out, err := cmd.CombinedOutput()
		close(done)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { run("skypipe stop") })
	if out := run("skypipe --version"); strings.TrimSpace(out) != version {
		t.Errorf("skypipe --version printed %q, want %q", out, version)
	}
	// As a person types it, on a terminal: the mode rule then sends and
	// receives without --send and --recv.
	if out := onTerminal(t, env, home, "echo hi | skypipe t && skypipe t"); !regexp.MustCompile(`(?m)^hi\r?$`).MatchString(out) {
		t.Errorf("echo hi | skypipe t && skypipe t printed %q", out)
	}
	if out := run("skypipe stop"); !strings.Contains(out, "stopped the local satellite") {
		t.Errorf("skypipe stop: %q", out)
	}
}

// TestReleaseRpmHoldsTheFiles: the rpm lists the binary, completions and
// man page where Fedora looks for them.
func TestReleaseRpmHoldsTheFiles(t *testing.T) {
	dist, _ := releaseDist(t)
	if missing := missingTools("rpm"); len(missing) > 0 {
		t.Skip("skipped: needs " + strings.Join(missing, ", "))
	}
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.x86_64.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpms in %s: %v", dist, rpms)
	}
	out, err := exec.Command("rpm", "-qlp", rpms[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qlp: %v\n%s", err, out)
	}
	for _, f := range []string{"/usr/bin/skypipe", "/usr/share/bash-completion/completions/skypipe",
		"/usr/share/zsh/site-functions/_skypipe", "/usr/share/fish/vendor_completions.d/skypipe.fish", "/usr/share/man/man1/skypipe.1.gz"} {
		if !strings.Contains(string(out), f+"\n") {
			t.Errorf("the rpm lacks %s:\n%s", f, out)
		}
	}
}

// onTerminal runs a shell command on a terminal of its own, as typed at a
// prompt, and returns what the terminal showed.
func onTerminal(t *testing.T, env []string, dir, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env, cmd.Dir = env, dir
	tty, err := pty.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&out, tty) // ends (EIO) once nothing holds the terminal
	}()
	select {
	case <-read:
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		_ = tty.Close()
		<-read
		t.Fatalf("%s: still running after %v", script, waitLimit)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out.String())
	}
	return out.String()
}
