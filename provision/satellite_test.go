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
	// Both transports and the HTTP face travel with it.
	sat.Alt, sat.Web, sat.WSPublicCA = "wss://sky.example", "https://sky.example", true
	got, err = ParseJoin(sat.JoinString())
	if err != nil || got.Alt != sat.Alt || got.Web != sat.Web || !got.WSPublicCA {
		t.Fatalf("ParseJoin with transports = %+v, %v", got, err)
	}
	if ep := got.Endpoint(); ep.Alt != sat.Alt || ep.Web != sat.Web || !ep.WSPublicCA {
		t.Fatalf("Endpoint = %+v", ep)
	}
	wsOnly := Satellite{Kind: "ssh", URL: "wss://sky.example:443", Web: "https://sky.example:443", Token: "t0k", CAPEM: string(ca.CertPEM)}
	if got, err := ParseJoin(wsOnly.JoinString()); err != nil || got.URL != wsOnly.URL {
		t.Fatalf("a WebSocket-only satellite: %+v, %v", got, err)
	}
	badWeb := wsOnly
	badWeb.Web = "http://sky.example"
	badAlt := wsOnly
	badAlt.Alt = "ws://sky.example"
	for _, bad := range []string{"", "skypipe1:", "skypipe1:!!!", str[:len(str)/2], "nats://host:4222", "skypipe1:e30", badWeb.JoinString(), badAlt.JoinString()} {
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
