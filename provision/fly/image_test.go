package fly

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckBinary(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  []byte
		ok   bool
	}{
		{"static linux/amd64", elfBinary(62, false), true},
		{"dynamically linked", elfBinary(62, true), false},
		{"arm64", elfBinary(183, false), false},
		{"not ELF", []byte("#!/bin/sh\necho hi\n"), false},
		{"empty", nil, false},
	} {
		err := CheckBinary(tc.bin)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrWrongBinary) {
			t.Errorf("%s: CheckBinary = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestImageIsDeterministic(t *testing.T) {
	bin := elfBinary(62, false)
	a, err := Image{Binary: bin, Cmd: ServeArgs()}.build()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Image{Binary: bin, Cmd: ServeArgs()}.build()
	if a.manifest.digest != b.manifest.digest || a.layer.digest != b.layer.digest {
		t.Errorf("two builds of one binary differ: %s %s", a.manifest.digest, b.manifest.digest)
	}
	other := append([]byte{}, bin...)
	other[len(other)-1] ^= 1
	c, _ := Image{Binary: other, Cmd: ServeArgs()}.build()
	if c.layer.digest == a.layer.digest || ImageTag(other) == ImageTag(bin) {
		t.Errorf("another binary gives the same layer or tag")
	}
}

func TestPushSkipsBlobsTheRegistryHas(t *testing.T) {
	f := newFake(t)
	f.apps["skypipe-cafe0001"] = &fakeApp{org: "personal", secrets: map[string]string{}}
	c := f.client(f.token)
	img := Image{Binary: elfBinary(62, false), Cmd: ServeArgs()}
	ref, err := c.PushImage(context.Background(), "skypipe-cafe0001", "v1", img)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(f.srv.URL, "http://") + "/skypipe-cafe0001:v1"; ref != want {
		t.Errorf("ref %q, want %q", ref, want)
	}
	f.reset()
	if _, err := c.PushImage(context.Background(), "skypipe-cafe0001", "v2", img); err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, r := range f.requests() {
		methods = append(methods, r.Method)
	}
	if got := strings.Join(methods, " "); got != "HEAD HEAD PUT" {
		t.Errorf("second push sent %s, want HEAD HEAD PUT (blobs there, manifest only)", got)
	}
	checkImage(t, f, "skypipe-cafe0001", "v2", img.Binary)
}

func TestPushAnswersABearerChallenge(t *testing.T) {
	f := newFake(t)
	f.bearer = true
	f.apps["skypipe-cafe0002"] = &fakeApp{org: "personal", secrets: map[string]string{}}
	img := Image{Binary: elfBinary(62, false), Cmd: ServeArgs()}
	if _, err := f.client(f.token).PushImage(context.Background(), "skypipe-cafe0002", "v1", img); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if reqs[1].Path != "/token" || reqs[1].Query != "scope=repository%3Ax%3Apull%2Cpush&service=registry.fly.io" || reqs[1].Auth != basicAuth("x", f.token) {
		t.Fatalf("token request %+v", reqs[1])
	}
	for _, r := range reqs[2:] {
		if r.Auth != "Bearer "+f.issued {
			t.Errorf("%s: Authorization %q after the challenge", r, r.Auth)
		}
	}
	checkImage(t, f, "skypipe-cafe0002", "v1", img.Binary)

	// A token the registry refuses: a clear error, not a loop.
	f2 := newFake(t)
	f2.bearer = true
	f2.apps["skypipe-cafe0003"] = &fakeApp{org: "personal", secrets: map[string]string{}}
	_, err := f2.client("fm2_wrong").PushImage(context.Background(), "skypipe-cafe0003", "v1", img)
	if !errors.Is(err, ErrBadToken) {
		t.Fatalf("push with a bad token: %v, want ErrBadToken", err)
	}
}

func TestAuthorizationHeaders(t *testing.T) {
	for _, tc := range []struct {
		token, header, registry string
	}{
		{"fo1_oauth", "Bearer fo1_oauth", basicAuth("x", "fo1_oauth")},
		{"FlyV1 fm2_macaroon", "FlyV1 fm2_macaroon", basicAuth("x", "fm2_macaroon")},
		{"  fm2_padded\n", "Bearer fm2_padded", basicAuth("x", "fm2_padded")},
	} {
		var got []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = append(got, r.Header.Get("Authorization"))
			if strings.HasPrefix(r.URL.Path, "/v2/") {
				w.WriteHeader(500)
				return
			}
			w.Write([]byte(`{"apps":[]}`))
		}))
		c, err := NewClientAt(srv.URL, srv.URL, tc.token)
		if err != nil {
			t.Fatal(err)
		}
		c.ListApps(context.Background(), "personal")
		c.PushImage(context.Background(), "a", "t", Image{Binary: elfBinary(62, false)})
		srv.Close()
		if len(got) != 2 || got[0] != tc.header || got[1] != tc.registry {
			t.Errorf("token %q sent %q, want %q then %q", tc.token, got, tc.header, tc.registry)
		}
	}
	if _, err := NewClient(" "); !errors.Is(err, ErrNoToken) {
		t.Errorf("NewClient without a token: %v", err)
	}
}
