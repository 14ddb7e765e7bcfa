package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/skypipe/skypipe/provision"
)

// remoteCommands are the commands scripts use to stand up a remote host:
//
//	sshd             start Debian's OpenSSH server on 127.0.0.1 and a free
//	                 port, with its own host key; set SKYPIPE_SSH so that
//	                 ssh reaches it as "sat" (an authorised key) or
//	                 "stranger" (a key it does not know). Its sessions see
//	                 HOME=$WORK/remote, so a deployment lands there. At the
//	                 end it stops sshd and any satellite left deployed.
//	freeport VAR     set VAR to a TCP port nothing listens on
//	holdport VAR     listen on 0.0.0.0 on a free port until the script ends,
//	                 and set VAR to it
//	certs DIR HOST DUR  write DIR/ca.pem, DIR/cert.pem and DIR/key.pem (0600):
//	                 a new skypipe CA and a certificate for HOST (or
//	                 HOST,HOST...) valid for DUR (negative: already expired)
//	cafile FILE      write the CA certificate pinned in the cached satellite
//	                 ($XDG_CONFIG_HOME/skypipe/satellite.json) to FILE
var remoteCommands = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"sshd":     cmdSSHD,
	"freeport": cmdFreePort,
	"holdport": cmdHoldPort,
	"certs":    cmdCerts,
	"cafile":   cmdCAFile,
}

// sshdPath is where Debian's openssh-server installs sshd (.ci/run
// installs it).
const sshdPath = "/usr/sbin/sshd"

func freePort(ts *testscript.TestScript) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	ts.Setenv(args[0], strconv.Itoa(freePort(ts)))
}

func cmdHoldPort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdport VAR")
	}
	l, err := net.Listen("tcp", "0.0.0.0:0")
	ts.Check(err)
	ts.Defer(func() { l.Close() })
	ts.Setenv(args[0], strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}

func cmdCerts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: certs DIR HOST DURATION")
	}
	validFor, err := time.ParseDuration(args[2])
	ts.Check(err)
	ca, err := provision.NewAuthority()
	ts.Check(err)
	certPEM, keyPEM, err := ca.Issue(strings.Split(args[1], ","), validFor)
	ts.Check(err)
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o644))
	ts.Check(os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644))
	ts.Check(os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600))
}

func cmdCAFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: cafile FILE")
	}
	b, err := os.ReadFile(filepath.Join(ts.Getenv("XDG_CONFIG_HOME"), "skypipe", "satellite.json"))
	ts.Check(err)
	var sat struct {
		CA string `json:"ca_pem"`
	}
	ts.Check(json.Unmarshal(b, &sat))
	if sat.CA == "" {
		ts.Fatalf("the cached satellite pins no CA")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(sat.CA), 0o644))
}

func cmdSSHD(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: sshd")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		ts.Fatalf("%s is missing: install Debian's openssh-server (.ci/run does)", sshdPath)
	}
	// sshd's privilege separation needs this directory.
	ts.Check(os.MkdirAll("/run/sshd", 0o755))
	me, err := user.Current()
	ts.Check(err)
	work := ts.Getenv("WORK")
	dir := filepath.Join(work, "ssh")
	remote := filepath.Join(work, "remote")
	ts.Check(os.MkdirAll(dir, 0o700))
	ts.Check(os.MkdirAll(filepath.Join(remote, "bin"), 0o755))
	keygen := func(name string) string {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(dir, name)).CombinedOutput()
		if err != nil {
			ts.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		pub, err := os.ReadFile(filepath.Join(dir, name+".pub"))
		ts.Check(err)
		return strings.TrimSpace(string(pub))
	}
	hostKey := keygen("host_key")
	clientKey := keygen("client_key")
	keygen("stranger_key")
	ts.Check(os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(clientKey+"\n"), 0o600))
	port := freePort(ts)
	ts.Check(os.WriteFile(filepath.Join(dir, "known_hosts"), []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, hostKey)), 0o600))

	remotePath := filepath.Join(remote, "bin") + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers %s
SetEnv HOME=%s XDG_CONFIG_HOME=%s XDG_DATA_HOME=%s PATH=%s
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"),
		me.Username, remote, filepath.Join(remote, ".config"), filepath.Join(remote, ".local", "share"), remotePath)
	ts.Check(os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(config), 0o600))

	client := ""
	for _, h := range []struct{ alias, key string }{{"sat", "client_key"}, {"stranger", "stranger_key"}} {
		client += fmt.Sprintf(`Host %s
	HostName 127.0.0.1
	Port %d
	User %s
	IdentityFile %s
	IdentitiesOnly yes
	IdentityAgent none
	UserKnownHostsFile %s
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	LogLevel ERROR
`, h.alias, port, me.Username, filepath.Join(dir, h.key), filepath.Join(dir, "known_hosts"))
	}
	ts.Check(os.WriteFile(filepath.Join(dir, "ssh_config"), []byte(client), 0o600))

	logf, err := os.Create(filepath.Join(dir, "sshd.log"))
	ts.Check(err)
	// -D: stay in the foreground, a child of this test; -e: log to stderr.
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ts.Check(cmd.Start())
	ts.Defer(func() {
		killDeployed(ts, remote)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
	})
	waitFor(ts, fmt.Sprintf("sshd to listen on 127.0.0.1:%d", port), func() (bool, string) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "sshd.log"))
			return false, err.Error() + " " + string(log)
		}
		c.Close()
		return true, ""
	})
	ts.Setenv("SSHPORT", strconv.Itoa(port))
	ts.Setenv("SKYPIPE_SSH", "-F "+filepath.Join(dir, "ssh_config"))
}

// killDeployed stops a satellite a script deployed and left running: the
// safety net behind 'skypipe setup --reset'.
func killDeployed(ts *testscript.TestScript, remote string) {
	b, err := os.ReadFile(filepath.Join(remote, ".local", "share", "skypipe", "satellite", "serve.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "serve") {
		return
	}
	ts.Logf("stopping the satellite left deployed (pid %d)", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil {
			return
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if strings.Contains(string(b), ") Z") {
			return
		}
		time.Sleep(pollEvery)
	}
}
