package provision

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Errors of deployments over ssh that callers tell apart.
var (
	// ErrSSH: ssh could not reach or log in to the host.
	ErrSSH = errors.New("ssh failed")
	// ErrArch: the host runs another OS or architecture than the binary.
	ErrArch = errors.New("the host cannot run this skypipe binary")
	// ErrPortInUse: another program listens on the satellite's port there.
	ErrPortInUse = errors.New("port in use on the host")
	// ErrRemote: a step on the host failed.
	ErrRemote = errors.New("deploying on the host failed")
)

// DefaultPort is the port a deployed satellite listens on: NATS's own.
const DefaultPort = 4222

// serviceName is the systemd user unit of a deployed satellite.
const serviceName = "skypipe-satellite.service"

// SSH reaches a host with the system's OpenSSH client, so that the user's
// ~/.ssh/config, agent and known_hosts apply. It never prompts.
type SSH struct {
	Target  string   // [user@]host, as ssh takes it
	Port    int      // 0: whatever ssh's config says, else 22
	Options []string // more ssh arguments, e.g. -F FILE, -i KEY, -o NAME=VALUE
}

// SSHDeployment is a satellite deployed over ssh: what --reset needs.
type SSHDeployment struct {
	Target  string   `json:"target"`
	Port    int      `json:"port,omitempty"`
	Options []string `json:"options,omitempty"`
	Service string   `json:"service"`    // "systemd" (a user unit) or "process" (detached, with a pid file)
	Bin     string   `json:"bin"`        // the binary on the host
	Config  string   `json:"config_dir"` // token, certificate and key (0700)
	Data    string   `json:"data_dir"`   // store, log, pid file (0700)
	Listen  int      `json:"listen_port"`
	// HTTPSPort serves the HTTP face and NATS over WebSocket (0: none).
	// Equal to Listen, it is the satellite's one public port: raw NATS
	// then listens on loopback only.
	HTTPSPort int `json:"https_port,omitempty"`
}

// SSH is how to reach the deployment's host again.
func (d SSHDeployment) SSH() SSH { return SSH{Target: d.Target, Port: d.Port, Options: d.Options} }

// ParseSSHTarget reads [USER@]HOST[:PORT]; an IPv6 address with a port
// goes in brackets.
func ParseSSHTarget(arg string) (SSH, error) {
	user, host := "", arg
	if i := strings.LastIndexByte(arg, '@'); i >= 0 {
		user, host = arg[:i+1], arg[i+1:]
	}
	port := 0
	if strings.HasPrefix(host, "[") || strings.Count(host, ":") == 1 {
		h, p, err := net.SplitHostPort(host)
		if err != nil {
			return SSH{}, fmt.Errorf("%q: %v", arg, err)
		}
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return SSH{}, fmt.Errorf("%q: bad port %q", arg, p)
		}
		host = h
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " \t\n/") {
		return SSH{}, fmt.Errorf("%q is not [USER@]HOST[:PORT]", arg)
	}
	return SSH{Target: user + host, Port: port}, nil
}

func (s SSH) args() []string {
	// The user's options come first: for ssh the first value given wins.
	args := append([]string{}, s.Options...)
	args = append(args, "-o", "BatchMode=yes", "-o", "ConnectTimeout=15")
	if s.Port > 0 {
		args = append(args, "-p", strconv.Itoa(s.Port))
	}
	return args
}

// run runs script with sh on the host, feeding it stdin, and returns its
// stdout. Scripts carry no secrets: those go on stdin.
func (s SSH) run(ctx context.Context, script string, stdin io.Reader) (string, error) {
	args := append(s.args(), "--", s.Target, "sh -c "+shellQuote(script))
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err == nil {
		return out.String(), nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("%w: no ssh client found (install OpenSSH's ssh)", ErrSSH)
	}
	msg := lastLines(errb.String(), 3)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 255 {
		return out.String(), fmt.Errorf("%w: %s: %s", ErrSSH, s.Target, msg)
	}
	if ctx.Err() != nil {
		return out.String(), ctx.Err()
	}
	return out.String(), &remoteError{status: err, stderr: msg, stdout: out.String()}
}

type remoteError struct {
	status         error
	stderr, stdout string
}

func (e *remoteError) Error() string {
	if e.stderr == "" {
		return e.status.Error()
	}
	return e.stderr
}

func (e *remoteError) Unwrap() error { return ErrRemote }

// hostname is the address ssh really connects to, after ~/.ssh/config.
func (s SSH) hostname(ctx context.Context) (string, error) {
	args := append(s.args(), "-G", "--", s.Target)
	out, err := exec.CommandContext(ctx, "ssh", args...).Output()
	if err != nil {
		return "", fmt.Errorf("%w: ssh -G %s: %v", ErrSSH, s.Target, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if h, ok := strings.CutPrefix(line, "hostname "); ok {
			return strings.TrimSpace(h), nil
		}
	}
	return "", fmt.Errorf("%w: ssh -G %s names no hostname", ErrSSH, s.Target)
}

// DeployOptions say what to deploy.
type DeployOptions struct {
	Binary string // the skypipe binary to copy (a Linux ELF executable)
	Listen int    // the satellite's port; 0 for DefaultPort
	// HTTPSPort is the port of the HTTP face and NATS over WebSocket, 0
	// for none; equal to Listen, the satellite serves that port only.
	HTTPSPort int
	Address   string // the name clients dial; "" for ssh's hostname
	// Previous is the satellite cached before, if any: its CA and token
	// are kept when it is on the same host, unless Rotate.
	Previous *Satellite
	Rotate   bool
	Progress func(string)
}

// Deploy copies the binary to the host, gives it a token, a certificate
// from skypipe's own CA and its key, starts `skypipe serve` there as a
// user service, and waits until it answers over TLS from here.
func (s SSH) Deploy(ctx context.Context, o DeployOptions) (Satellite, error) {
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if o.Listen == 0 {
		o.Listen = DefaultPort
	}
	wantOS, wantArch, err := binaryPlatform(o.Binary)
	if err != nil {
		return Satellite{}, err
	}
	address := o.Address
	if address == "" {
		if address, err = s.hostname(ctx); err != nil {
			return Satellite{}, err
		}
	}
	progress("checking " + s.Target)
	out, err := s.run(ctx, probeScript, nil)
	if err != nil {
		return Satellite{}, err
	}
	host := parseKV(out)
	gotOS, gotArch := platform(host["uname"])
	if gotOS != wantOS || gotArch != wantArch {
		return Satellite{}, fmt.Errorf("%w: %s is %s (%s/%s), the binary is for %s/%s",
			ErrArch, s.Target, strings.TrimSpace(host["uname"]), gotOS, gotArch, wantOS, wantArch)
	}
	d := SSHDeployment{
		Target: s.Target, Port: s.Port, Options: s.Options,
		Service: "process", Bin: host["bin"], Config: host["config"], Data: host["data"], Listen: o.Listen,
		HTTPSPort: o.HTTPSPort,
	}
	if d.Bin == "" || d.Config == "" || d.Data == "" {
		return Satellite{}, fmt.Errorf("%w: the host did not say where its home is", ErrRemote)
	}
	if host["systemd"] == "yes" {
		d.Service = "systemd"
	}

	sum, err := fileSHA256(o.Binary)
	if err != nil {
		return Satellite{}, err
	}
	if host["sha256"] != sum {
		progress("copying skypipe to " + s.Target + ":" + d.Bin)
		f, err := os.Open(o.Binary)
		if err != nil {
			return Satellite{}, err
		}
		_, err = s.run(ctx, fmt.Sprintf(`set -e
bin=%s
mkdir -p "$(dirname "$bin")"
tmp="$bin.tmp.$$"
cat > "$tmp"
chmod 755 "$tmp"
mv -f "$tmp" "$bin"`, shellQuote(d.Bin)), f)
		f.Close()
		if err != nil {
			return Satellite{}, fmt.Errorf("copying the binary: %w", err)
		}
	}

	sat, err := credentials(o, s.Target, address)
	if err != nil {
		return Satellite{}, err
	}
	ca, _ := sat.Authority()
	certPEM, keyPEM, err := ca.Issue(certHosts(address, o.Address), ServerCertValidity)
	if err != nil {
		return Satellite{}, err
	}
	secrets, err := tarFiles(map[string][]byte{"token": []byte(sat.Token + "\n"), "cert.pem": certPEM, "key.pem": keyPEM})
	if err != nil {
		return Satellite{}, err
	}
	if _, err := s.run(ctx, fmt.Sprintf(`set -e
umask 077
cfg=%s
mkdir -p "$cfg"
chmod 700 "$(dirname "$cfg")" "$cfg"
tar -x -f - -C "$cfg"
chmod 600 "$cfg/token" "$cfg/cert.pem" "$cfg/key.pem"`, shellQuote(d.Config)), bytes.NewReader(secrets)); err != nil {
		return Satellite{}, fmt.Errorf("writing the token and certificate: %w", err)
	}

	progress(fmt.Sprintf("starting the satellite on %s (%s, %s)", s.Target, d.ports(), d.Service))
	if out, err := s.run(ctx, d.stopScript()+d.startScript(), nil); err != nil {
		var re *remoteError
		if errors.As(err, &re) && strings.Contains(re.stdout+re.stderr, "address already in use") {
			return Satellite{}, fmt.Errorf("%w: %s on %s", ErrPortInUse, d.ports(), s.Target)
		}
		if errors.As(err, &re) && strings.Contains(re.stdout+re.stderr, "permission denied") && min(d.Listen, d.HTTPSPort) < 1024 {
			return Satellite{}, fmt.Errorf("%w: the satellite may not listen on %s there: ports below 1024 need root, or 'sysctl net.ipv4.ip_unprivileged_port_start=443' on the host", ErrRemote, d.ports())
		}
		if errors.As(err, &re) {
			return Satellite{}, fmt.Errorf("%w: the satellite did not start: %s", ErrRemote, lastLines(re.stdout+"\n"+re.stderr, 3))
		}
		return Satellite{}, err
	} else if kv := parseKV(out); kv["linger"] == "no" {
		progress("note: loginctl enable-linger failed there: the satellite may stop when you log out")
	}
	sat.SSH = &d
	nc, err := dialUntil(ctx, sat.Endpoint(), 30*time.Second)
	if err != nil {
		return Satellite{}, fmt.Errorf("the satellite runs on %s but does not answer from here: %w", s.Target, err)
	}
	nc.Close()
	return sat, nil
}

// ports says which ports the satellite listens on, for people.
func (d SSHDeployment) ports() string {
	switch d.HTTPSPort {
	case 0:
		return fmt.Sprintf("port %d", d.Listen)
	case d.Listen:
		return fmt.Sprintf("port %d: HTTPS and NATS over WebSocket", d.HTTPSPort)
	}
	return fmt.Sprintf("port %d, and %d for HTTPS and NATS over WebSocket", d.Listen, d.HTTPSPort)
}

// credentials keeps the CA and token of a previous deployment on the same
// host, so machines that joined it keep working; else makes new ones.
func credentials(o DeployOptions, target, address string) (Satellite, error) {
	sat := Satellite{Kind: "ssh"}
	transports(&sat, address, o.Listen, o.HTTPSPort)
	if p := o.Previous; p != nil && !o.Rotate && p.SSH != nil && p.SSH.Target == target {
		if _, ok := p.Authority(); ok && p.Token != "" {
			sat.Token, sat.CAPEM, sat.CAKeyPEM = p.Token, p.CAPEM, p.CAKeyPEM
			return sat, nil
		}
	}
	ca, err := NewAuthority()
	if err != nil {
		return Satellite{}, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Satellite{}, err
	}
	sat.Token, sat.CAPEM, sat.CAKeyPEM = hex.EncodeToString(b[:]), string(ca.CertPEM), string(ca.KeyPEM)
	return sat, nil
}

// transports sets the satellite's URLs: raw NATS on listen, and the HTTP
// face with NATS over WebSocket on httpsPort; on one port, that port only.
func transports(sat *Satellite, address string, listen, httpsPort int) {
	sat.URL = "nats://" + net.JoinHostPort(address, strconv.Itoa(listen))
	if httpsPort == 0 {
		return
	}
	hp := net.JoinHostPort(address, strconv.Itoa(httpsPort))
	sat.Web = "https://" + hp
	if httpsPort == listen {
		sat.URL = "wss://" + hp
		return
	}
	sat.Alt = "wss://" + hp
}

func certHosts(address, extra string) []string {
	hosts := []string{address}
	if extra != "" && extra != address {
		hosts = append(hosts, extra)
	}
	return hosts
}

// Teardown stops the satellite on the host and removes its service, token
// and certificate; purge removes its store (every kept item) too.
func (d SSHDeployment) Teardown(ctx context.Context, purge bool) error {
	script := d.stopScript() + fmt.Sprintf(`
rm -rf %s
rm -f "$data/serve.pid" "$data/ready"
`, shellQuote(d.Config))
	if purge {
		script += `rm -rf "$data"` + "\n"
	}
	_, err := d.SSH().run(ctx, script, nil)
	return err
}

// probeScript tells what the host is and where the satellite's files go.
const probeScript = `
echo "uname=$(uname -sm)"
echo "bin=$HOME/.local/bin/skypipe"
echo "config=${XDG_CONFIG_HOME:-$HOME/.config}/skypipe/satellite"
echo "data=${XDG_DATA_HOME:-$HOME/.local/share}/skypipe/satellite"
if [ -f "$HOME/.local/bin/skypipe" ] && command -v sha256sum >/dev/null 2>&1; then
	echo "sha256=$(sha256sum "$HOME/.local/bin/skypipe" | cut -d' ' -f1)"
fi
if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
	echo systemd=yes
else
	echo systemd=no
fi
`

// vars sets the shell variables the scripts below use.
func (d SSHDeployment) vars() string {
	return fmt.Sprintf("bin=%s\ncfg=%s\ndata=%s\nport=%d\nhttpsport=%d\nunit=%s\n",
		shellQuote(d.Bin), shellQuote(d.Config), shellQuote(d.Data), d.Listen, d.HTTPSPort, serviceName)
}

// stopScript stops a satellite this deployment started before: the user
// unit, or the process in the pid file if it still runs our serve.
func (d SSHDeployment) stopScript() string {
	s := d.vars()
	if d.Service == "systemd" {
		return s + `
unitfile="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/$unit"
if [ -f "$unitfile" ]; then
	systemctl --user disable --now "$unit" >/dev/null 2>&1 || true
	rm -f "$unitfile"
	systemctl --user daemon-reload || true
fi
`
	}
	return s + `
if [ -f "$data/serve.pid" ]; then
	pid=$(cat "$data/serve.pid")
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "serve .*--store $data/store"; then
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
		kill -9 "$pid" 2>/dev/null || true
		echo "stopped=$pid"
	fi
	rm -f "$data/serve.pid"
fi
`
}

// listenArgs are serve's listening flags, as shell words.
func (d SSHDeployment) listenArgs() string {
	switch d.HTTPSPort {
	case 0:
		return `--listen "0.0.0.0:$port" --http off`
	case d.Listen:
		// One public port: HTTPS. Raw NATS stays on loopback.
		return `--listen 127.0.0.1:0 --http "0.0.0.0:$httpsport"`
	}
	return `--listen "0.0.0.0:$port" --http "0.0.0.0:$httpsport"`
}

// startScript starts the satellite and waits for its ready line, or for
// its error.
func (d SSHDeployment) startScript() string {
	serve := `"$bin" serve ` + d.listenArgs() + ` --store "$data/store" --token-file "$cfg/token" --tls-cert "$cfg/cert.pem" --tls-key "$cfg/key.pem" --ready --log`
	s := `
set -e
umask 077
mkdir -p "$data/store"
chmod 700 "$(dirname "$data")" "$data"
rm -f "$data/ready"
: > "$data/satellite.log"
`
	if d.Service == "systemd" {
		s += `
unitdir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"
mkdir -p "$unitdir"
cat > "$unitdir/$unit" <<EOF
[Unit]
Description=skypipe satellite
After=network-online.target

[Service]
ExecStart=` + serve + `
StandardOutput=file:$data/ready
StandardError=append:$data/satellite.log
Restart=on-failure
RestartSec=5

[Install]
WantedBy=default.target
EOF
systemctl --user daemon-reload
systemctl --user enable "$unit" >/dev/null 2>&1
systemctl --user restart "$unit"
loginctl enable-linger "$(id -un)" >/dev/null 2>&1 || echo linger=no
`
	} else {
		s += `
setsid nohup ` + serve + ` > "$data/ready" 2>> "$data/satellite.log" < /dev/null &
echo $! > "$data/serve.pid"
`
	}
	return s + `
set +e
i=0
while [ $i -lt 300 ]; do
	if grep -q '^ready ' "$data/ready" 2>/dev/null; then echo started=yes; exit 0; fi
	if grep -q 'skypipe: error' "$data/satellite.log"; then break; fi
	if [ -f "$data/serve.pid" ] && ! kill -0 "$(cat "$data/serve.pid")" 2>/dev/null; then break; fi
	sleep 0.1
	i=$((i+1))
done
tail -n 5 "$data/satellite.log" >&2
exit 3
`
}

// dialUntil dials until the satellite answers or limit runs out; it gives
// up at once on a refused certificate or token.
func dialUntil(ctx context.Context, ep Endpoint, limit time.Duration) (*nats.Conn, error) {
	deadline := time.Now().Add(limit)
	for {
		c, err := Dial(ep)
		if err == nil {
			return c, nil
		}
		if errors.Is(err, ErrCertificate) || errors.Is(err, ErrAuth) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// platform maps `uname -sm` to GOOS/GOARCH.
func platform(uname string) (goos, goarch string) {
	f := strings.Fields(uname)
	if len(f) != 2 {
		return "unknown", "unknown"
	}
	goos = strings.ToLower(f[0])
	switch f[1] {
	case "x86_64", "amd64":
		goarch = "amd64"
	case "aarch64", "arm64":
		goarch = "arm64"
	case "armv5l", "armv6l", "armv7l", "armv8l":
		goarch = "arm"
	case "i386", "i486", "i586", "i686":
		goarch = "386"
	default: // riscv64, ppc64le, s390x, loong64 ... are spelled alike
		goarch = f[1]
	}
	return goos, goarch
}

// binaryPlatform reads the OS and architecture an executable is for.
func binaryPlatform(path string) (goos, goarch string, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("%w: %s is not a Linux executable: %v", ErrArch, path, err)
	}
	defer f.Close()
	arch := map[elf.Machine]string{
		elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_ARM: "arm", elf.EM_386: "386",
		elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_LOONGARCH: "loong64",
	}[f.Machine]
	if arch == "" {
		arch = strings.ToLower(strings.TrimPrefix(f.Machine.String(), "EM_"))
	}
	return "linux", arch, nil
}

func parseKV(out string) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// tarFiles packs private files (0600) for `tar -x` on the host.
func tarFiles(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"token", "cert.pem", "key.pem"} {
		data := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func lastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "; ")
}
