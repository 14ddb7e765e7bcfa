package provision

import "testing"

func TestParseSSHTarget(t *testing.T) {
	for _, tc := range []struct {
		arg, target string
		port        int
		ok          bool
	}{
		{"server", "server", 0, true},
		{"me@server", "me@server", 0, true},
		{"me@server:2222", "me@server", 2222, true},
		{"10.0.0.1:22", "10.0.0.1", 22, true},
		{"me@[::1]:2222", "me@::1", 2222, true},
		{"::1", "::1", 0, true},
		{"server:x", "", 0, false},
		{"server:70000", "", 0, false},
		{"-oProxyCommand=x", "", 0, false},
		{"bad host", "", 0, false},
		{"", "", 0, false},
		{"me@", "", 0, false},
	} {
		s, err := ParseSSHTarget(tc.arg)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSSHTarget(%q) err = %v, want ok=%v", tc.arg, err, tc.ok)
			continue
		}
		if tc.ok && (s.Target != tc.target || s.Port != tc.port) {
			t.Errorf("ParseSSHTarget(%q) = %q, %d; want %q, %d", tc.arg, s.Target, s.Port, tc.target, tc.port)
		}
	}
}

func TestPlatformFromUname(t *testing.T) {
	for uname, want := range map[string][2]string{
		"Linux x86_64":  {"linux", "amd64"},
		"Linux aarch64": {"linux", "arm64"},
		"Linux armv7l":  {"linux", "arm"},
		"Linux i686":    {"linux", "386"},
		"Linux riscv64": {"linux", "riscv64"},
		"Darwin arm64":  {"darwin", "arm64"},
		"FreeBSD amd64": {"freebsd", "amd64"},
		"garbage":       {"unknown", "unknown"},
	} {
		if os, arch := platform(uname); os != want[0] || arch != want[1] {
			t.Errorf("platform(%q) = %s/%s, want %s/%s", uname, os, arch, want[0], want[1])
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "'plain'",
		"it's":        `'it'\''s'`,
		"$HOME `x`":   "'$HOME `x`'",
		"/a b/c;rm x": "'/a b/c;rm x'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDeploymentTransports(t *testing.T) {
	for _, tc := range []struct {
		listen, https      int
		url, alt, web, arg string
	}{
		{4222, 0, "nats://h:4222", "", "", `--listen "0.0.0.0:$port" --http off`},
		{4222, 8443, "nats://h:4222", "wss://h:8443", "https://h:8443", `--listen "0.0.0.0:$port" --http "0.0.0.0:$httpsport"`},
		{443, 443, "wss://h:443", "", "https://h:443", `--listen 127.0.0.1:0 --http "0.0.0.0:$httpsport"`},
	} {
		var sat Satellite
		transports(&sat, "h", tc.listen, tc.https)
		d := SSHDeployment{Listen: tc.listen, HTTPSPort: tc.https}
		if sat.URL != tc.url || sat.Alt != tc.alt || sat.Web != tc.web || d.listenArgs() != tc.arg {
			t.Errorf("ports %d, %d: %q %q %q, serve %s", tc.listen, tc.https, sat.URL, sat.Alt, sat.Web, d.listenArgs())
		}
	}
}
