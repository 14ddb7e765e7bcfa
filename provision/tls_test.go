package provision

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skypipe/skypipe/embedded"
)

// TestDialPinsTheCA runs a real satellite with certificates from an
// Authority and dials it with the pinned CA, another CA, an expired
// certificate and one for another host.
func TestDialPinsTheCA(t *testing.T) {
	ca, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		hosts    []string
		validFor time.Duration
		pin      []byte
		want     error
		reason   string
	}{
		{"pinned CA", []string{"127.0.0.1", "localhost"}, time.Hour, ca.CertPEM, nil, ""},
		{"another CA", []string{"127.0.0.1"}, time.Hour, other.CertPEM, ErrCertificate, "not signed by a CA this client trusts"},
		{"expired", []string{"127.0.0.1"}, -time.Minute, ca.CertPEM, ErrCertificate, "expired"},
		{"another host", []string{"sky.example"}, time.Hour, ca.CertPEM, ErrCertificate, "another host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, keyPEM, err := ca.Issue(tc.hosts, tc.validFor)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ServerTLS(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok", TLS: cfg})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			url := strings.Replace(srv.URL(), "tls://", "nats://", 1)
			nc, err := Dial(Endpoint{URL: url, Token: "tok", CAPEM: tc.pin})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				if !nc.TLSRequired() {
					t.Error("the connection is not TLS")
				}
				nc.Close()
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Dial err = %v, want %v saying %q", err, tc.want, tc.reason)
			}
		})
	}
}

// TestPlaintextClientRefused: a satellite with TLS lets no client in
// without it, and a pinned client is refused with a wrong token.
func TestPlaintextClientRefused(t *testing.T) {
	srv, ca := tokenSatellite(t, true)
	url := strings.Replace(srv.URL(), "tls://", "nats://", 1)
	if _, err := Dial(Endpoint{URL: url, Token: "tok"}); err == nil {
		t.Fatal("a client without the pinned CA was let in (the system roots must not trust skypipe's CA)")
	}
	if _, err := Dial(Endpoint{URL: url, Token: "wrong", CAPEM: ca.CertPEM}); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong token: err = %v, want ErrAuth", err)
	}
}

func TestIssueRejectsNonsense(t *testing.T) {
	ca, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue(nil, time.Hour); err == nil {
		t.Error("Issue with no host succeeded")
	}
	if _, _, err := ca.Issue([]string{"h"}, -2*time.Hour); err == nil {
		t.Error("Issue ending before it starts succeeded")
	}
	if _, _, err := (Authority{CertPEM: []byte("x"), KeyPEM: []byte("y")}).Issue([]string{"h"}, time.Hour); err == nil {
		t.Error("Issue with a broken authority succeeded")
	}
}

// tokenSatellite starts a satellite on loopback whose token is "tok",
// with TLS (a certificate for 127.0.0.1 from the Authority it returns) or
// without; it stops when the test ends.
func tokenSatellite(t *testing.T, withTLS bool) (*embedded.Server, Authority) {
	t.Helper()
	cfg := embedded.Config{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Token: "tok"}
	var ca Authority
	if withTLS {
		var err error
		if ca, err = NewAuthority(); err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS, err = ServerTLS(certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, ca
}
