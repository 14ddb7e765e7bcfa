package provision

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFromContextChecksItsURL: a natscli context whose url skypipe cannot
// dial is refused as the context's fault (ErrBadContext) when it is read,
// not reported later as a satellite that does not answer.
func TestFromContextChecksItsURL(t *testing.T) {
	cases := []struct {
		name, json, url string
		err             error
	}{
		{"no url", `{"token":"t"}`, "nats://127.0.0.1:4222", nil},
		{"one server", `{"url":"tls://sat.example:4222"}`, "tls://sat.example:4222", nil},
		{"members", `{"url":"nats://a:4222, tls://b:4222"}`, "nats://a:4222, tls://b:4222", nil},
		{"websocket members", `{"url":"wss://a, wss://b"}`, "wss://a, wss://b", nil},
		{"mixed transports", `{"url":"nats://a:4222,wss://b"}`, "", ErrBadContext},
		{"only commas", `{"url":" , "}`, "", ErrBadContext},
		{"no host", `{"url":"nats://"}`, "", ErrBadContext},
		{"missing", "", "", ErrNoContext},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := t.TempDir()
			t.Setenv("XDG_CONFIG_HOME", cfg)
			dir := filepath.Join(cfg, "nats", "context")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.json != "" {
				if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte(tc.json), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ep, err := FromContext("c")
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("FromContext: %v, want %v", err, tc.err)
			}
			if err == nil && ep.URL != tc.url {
				t.Fatalf("URL %q, want %q", ep.URL, tc.url)
			}
		})
	}
}
