package provision

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFromURL(t *testing.T) {
	for _, tc := range []struct {
		raw, url, token string
		ok              bool
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", "", true},
		{"nats://s3cret@host:4222", "nats://host:4222", "s3cret", true},
		{"tls://tok@host:4222", "tls://host:4222", "tok", true},
		{"nats://user:pw@host:4222", "nats://user:pw@host:4222", "", true},
		{"wss://tok@sky.example", "wss://sky.example", "tok", true},
		{"wss://tok@sky.example:8443/", "wss://sky.example:8443/", "tok", true},
		{"ws://tok@127.0.0.1:8080", "ws://127.0.0.1:8080", "tok", true},
		{"ws://tok@localhost:8080", "ws://localhost:8080", "tok", true},
		{"ws://tok@sky.example:8080", "", "", false}, // the token in clear off loopback
		{"http://host:4222", "", "", false},
		{"https://host", "", "", false},
		{"host:4222", "", "", false},
		{"", "", "", false},
	} {
		ep, err := FromURL(tc.raw)
		if (err == nil) != tc.ok {
			t.Errorf("FromURL(%q) err = %v, want ok=%v", tc.raw, err, tc.ok)
			continue
		}
		if tc.ok && (ep.URL != tc.url || ep.Token != tc.token) {
			t.Errorf("FromURL(%q) = %q, %q; want %q, %q", tc.raw, ep.URL, ep.Token, tc.url, tc.token)
		}
	}
}

func TestRedactHidesCredentials(t *testing.T) {
	for raw, want := range map[string]string{
		"nats://s3cret@host:4222":  "nats://REDACTED@host:4222",
		"nats://user:pw@host:4222": "nats://REDACTED@host:4222",
		"nats://host:4222":         "nats://host:4222",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestTokensArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	tok, err := ensureToken(path)
	if err != nil || len(tok) != 64 {
		t.Fatalf("ensureToken = %q, %v", tok, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, err := ensureToken(path)
	if err != nil || again != tok {
		t.Fatalf("second ensureToken = %q, %v; want the first token", again, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(path); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("ReadToken of a 0644 file: err = %v, want ErrInsecureFile", err)
	}
}
