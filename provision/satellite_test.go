package provision

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestJoinStringRoundTrip(t *testing.T) {
	ca, err := NewAuthority()
	if err != nil {
		t.Fatal(err)
	}
	sat := Satellite{Kind: "ssh", URL: "nats://sky.example:4222", Token: "t0k", CAPEM: string(ca.CertPEM), CAKeyPEM: string(ca.KeyPEM)}
	str := sat.JoinString()
	if strings.ContainsAny(str, " \n\t") || !strings.HasPrefix(str, "skypipe1:") {
		t.Fatalf("join string %q is not one word", str)
	}
	got, err := ParseJoin("  " + str + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != "join" || got.URL != sat.URL || got.Token != sat.Token || got.CAPEM != sat.CAPEM || got.CAKeyPEM != "" {
		t.Fatalf("ParseJoin = %+v", got)
	}
	if strings.Contains(str, "PRIVATE") {
		t.Fatal("the join string carries the CA's key")
	}
	for _, bad := range []string{"", "skypipe1:", "skypipe1:!!!", str[:len(str)/2], "nats://host:4222", "skypipe1:e30"} {
		if _, err := ParseJoin(bad); !errors.Is(err, ErrJoinString) {
			t.Errorf("ParseJoin(%q) err = %v, want ErrJoinString", bad, err)
		}
	}
}

func TestSatelliteCacheIsPrivate(t *testing.T) {
	p := Paths{Config: t.TempDir() + "/skypipe", Data: t.TempDir()}
	if _, err := LoadSatellite(p); !errors.Is(err, ErrNoSatellite) {
		t.Fatalf("LoadSatellite with none: %v", err)
	}
	sat := Satellite{Kind: "join", URL: "nats://h:4222", Token: "t", CAPEM: "pem"}
	if err := SaveSatellite(p, sat); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p.SatelliteFile())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("satellite.json mode %v, %v", fi.Mode().Perm(), err)
	}
	got, err := LoadSatellite(p)
	if err != nil || got.URL != sat.URL || got.Token != sat.Token {
		t.Fatalf("LoadSatellite = %+v, %v", got, err)
	}
	if err := os.Chmod(p.SatelliteFile(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSatellite(p); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("a 0644 cache: err = %v, want ErrInsecureFile", err)
	}
	if err := ForgetSatellite(p); err != nil {
		t.Fatal(err)
	}
	if err := ForgetSatellite(p); !errors.Is(err, ErrNoSatellite) {
		t.Fatalf("forgetting twice: %v", err)
	}
}
