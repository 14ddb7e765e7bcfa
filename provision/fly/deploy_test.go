package fly

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

const testCA = "-----BEGIN CERTIFICATE-----\nQ0EgY2VydA==\n-----END CERTIFICATE-----\n"

// secretsFor hands out a satellite's credentials and counts the calls.
type secretsFor struct {
	calls int
	hosts []string
}

func (s *secretsFor) issue(host string) (Secrets, error) {
	s.calls++
	s.hosts = append(s.hosts, host)
	return Secrets{
		Token:      "0123456789abcdef0123456789abcdef",
		TLSCertPEM: []byte("-----BEGIN CERTIFICATE-----\nc2VydmVy\n-----END CERTIFICATE-----\n"),
		TLSKeyPEM:  []byte("-----BEGIN EC PRIVATE KEY-----\na2V5\n-----END EC PRIVATE KEY-----\n"),
		CAPEM:      []byte(testCA),
	}, nil
}

func testOptions() Options {
	return Options{Binary: elfBinary(62, false)} // EM_X86_64
}

func seq(reqs []request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.String())
	}
	return out
}

// replaceApp puts the generated app name and ids into want.
func expand(want []string, repl ...string) []string {
	r := strings.NewReplacer(repl...)
	out := make([]string, len(want))
	for i, w := range want {
		out[i] = r.Replace(w)
	}
	return out
}

func TestDeployFreshMakesTheDocumentedRequestsInOrder(t *testing.T) {
	f := newFake(t)
	c := f.client(f.token)
	var sec secretsFor
	res, got, err := Deploy(context.Background(), c, testOptions(), sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	app := res.App
	if !strings.HasPrefix(app, AppPrefix) || len(app) != len(AppPrefix)+8 {
		t.Fatalf("app name %q, want skypipe- and 8 hex digits", app)
	}
	tag := ImageTag(testOptions().Binary)
	reqs := f.requests()
	var layer, config string
	for _, r := range reqs {
		if r.Method == "HEAD" && layer == "" {
			layer = r.Path[strings.LastIndex(r.Path, "/")+1:]
		} else if r.Method == "HEAD" {
			config = r.Path[strings.LastIndex(r.Path, "/")+1:]
		}
	}
	want := expand([]string{
		"GET /v1/apps?org_slug=personal",
		"POST /v1/apps",
		"HEAD /v2/APP/blobs/LAYER",
		"POST /v2/APP/blobs/uploads/",
		"PUT /v2/APP/blobs/uploads/up0001?_state=opaque&digest=QLAYER",
		"HEAD /v2/APP/blobs/CONFIG",
		"POST /v2/APP/blobs/uploads/",
		"PUT /v2/APP/blobs/uploads/up0002?_state=opaque&digest=QCONFIG",
		"PUT /v2/APP/manifests/TAG",
		"GET /v1/apps/APP/volumes",
		"POST /v1/apps/APP/volumes",
		"GET /v1/apps/APP/ip_assignments",
		"POST /v1/apps/APP/ip_assignments",
		"POST /v1/apps/APP/ip_assignments",
		"POST /v1/apps/APP/secrets",
		"POST /v1/apps/APP/machines",
		"GET /v1/apps/APP/machines/ID/wait?instance_id=INST&state=started&timeout=60",
	}, "APP", app, "QLAYER", url.QueryEscape(layer), "QCONFIG", url.QueryEscape(config), "LAYER", layer, "CONFIG", config,
		"TAG", tag, "ID", res.MachineID, "INST", f.apps[app].machines[0].InstanceID)
	if g := seq(reqs); !reflect.DeepEqual(g, want) {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}

	for _, r := range reqs {
		wantAuth := "Bearer " + f.token
		if strings.HasPrefix(r.Path, "/v2/") {
			wantAuth = basicAuth("x", f.token)
		}
		if r.Auth != wantAuth {
			t.Errorf("%s: Authorization %q, want %q", r, r.Auth, wantAuth)
		}
		if r.Method == "POST" && strings.HasPrefix(r.Path, "/v1/") && r.ContentType != "application/json" {
			t.Errorf("%s: Content-Type %q", r, r.ContentType)
		}
	}

	body := func(i int) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(reqs[i].Body, &m); err != nil {
			t.Fatalf("%s: body %q: %v", reqs[i], reqs[i].Body, err)
		}
		return m
	}
	if b := body(1); !reflect.DeepEqual(b, map[string]any{"app_name": app, "org_slug": "personal"}) {
		t.Errorf("create app body %v", b)
	}
	if b := body(10); !reflect.DeepEqual(b, map[string]any{"name": "skypipe_data", "region": "iad", "size_gb": 1.0, "encrypted": true}) {
		t.Errorf("create volume body %v", b)
	}
	if b := body(12); !reflect.DeepEqual(b, map[string]any{"type": "v6"}) {
		t.Errorf("assign ip body %v", b)
	}
	// The shared IPv4 (free) carries HTTPS on 443, routed by name.
	if b := body(13); !reflect.DeepEqual(b, map[string]any{"type": "shared_v4"}) {
		t.Errorf("assign shared ip body %v", b)
	}
	b64 := base64.StdEncoding.EncodeToString
	s, _ := new(secretsFor).issue("")
	wantSecrets := map[string]any{"values": map[string]any{
		"SKYPIPE_TOKEN":        s.Token,
		"SKYPIPE_TOKEN_B64":    b64([]byte(s.Token)),
		"SKYPIPE_TLS_CERT_B64": b64(s.TLSCertPEM),
		"SKYPIPE_TLS_KEY_B64":  b64(s.TLSKeyPEM),
	}}
	if b := body(14); !reflect.DeepEqual(b, wantSecrets) {
		t.Errorf("secrets body %v", b)
	}
	var wantMachine map[string]any
	json.Unmarshal([]byte(`{
		"name": "skypipe-satellite",
		"region": "iad",
		"min_secrets_version": 1,
		"config": {
			"image": "`+strings.TrimPrefix(f.srv.URL, "http://")+`/`+app+`:`+tag+`",
			"init": {"cmd": ["serve", "--listen", "0.0.0.0:4222", "--store", "/data/store",
				"--http", "0.0.0.0:8080", "--http-proxied"]},
			"guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
			"metadata": {"skypipe": "satellite", "skypipe_ca": `+jsonString(testCA)+`},
			"mounts": [{"volume": "vol_0003", "path": "/data"}],
			"services": [
				{"protocol": "tcp", "internal_port": 4222, "ports": [{"port": 4222}],
					"autostop": "off", "autostart": true},
				{"protocol": "tcp", "internal_port": 8080, "ports": [{"port": 443, "handlers": ["tls", "http"]}],
					"autostop": "off", "autostart": true}
			],
			"files": [
				{"guest_path": "/etc/skypipe/token", "secret_name": "SKYPIPE_TOKEN_B64", "mode": 384}
			],
			"restart": {"policy": "always"}
		}
	}`), &wantMachine)
	if b := body(15); !reflect.DeepEqual(b, wantMachine) {
		gotJSON, _ := json.MarshalIndent(b, "", "  ")
		t.Errorf("create machine body:\n%s", gotJSON)
	}

	wantRes := Result{App: app, Host: app + ".fly.dev", Port: 4222, MachineID: res.MachineID, Region: "iad",
		Image: wantMachine["config"].(map[string]any)["image"].(string), IPs: []string{"2a09:8280:1::1"}, Created: true, Web: true}
	if !reflect.DeepEqual(res, wantRes) {
		t.Errorf("result %+v\nwant %+v", res, wantRes)
	}
	if res.URL() != "tls://"+app+".fly.dev:4222" || res.WebSocketURL() != "wss://"+app+".fly.dev" || res.WebURL() != "https://"+app+".fly.dev" || res.DedicatedIPv4() {
		t.Errorf("URL %q, WebSocketURL %q, WebURL %q, dedicated IPv4 %v", res.URL(), res.WebSocketURL(), res.WebURL(), res.DedicatedIPv4())
	}
	if ips := f.apps[app].ips; len(ips) != 2 || !ips[1].Shared {
		t.Errorf("the app's addresses %+v, want a dedicated IPv6 and the shared IPv4", ips)
	}
	if sec.calls != 1 || sec.hosts[0] != app+".fly.dev" {
		t.Errorf("secrets asked %d times for %v", sec.calls, sec.hosts)
	}
	if got.Token != s.Token || string(got.CAPEM) != testCA {
		t.Errorf("returned secrets %+v", got)
	}
	checkImage(t, f, app, tag, testOptions().Binary)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkImage reads the pushed image back from the fake registry.
func checkImage(t *testing.T, f *fakeFly, app, tag string, binary []byte) {
	t.Helper()
	var man struct {
		MediaType string
		Config    struct{ MediaType, Digest string }
		Layers    []struct{ MediaType, Digest string }
	}
	if err := json.Unmarshal(f.manifests[app+":"+tag], &man); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if man.MediaType != mediaManifest || man.Config.MediaType != mediaConfig || len(man.Layers) != 1 || man.Layers[0].MediaType != mediaLayer {
		t.Fatalf("manifest %+v", man)
	}
	var cfg struct {
		Architecture, OS string
		Config           struct{ Entrypoint, Cmd []string }
		Rootfs           struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(f.blobs[app+"@"+man.Config.Digest], &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.Architecture != "amd64" || cfg.OS != "linux" || !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/skypipe"}) || !reflect.DeepEqual(cfg.Config.Cmd, ServeArgs()) {
		t.Errorf("image config %+v", cfg)
	}
	zr, err := gzip.NewReader(bytes.NewReader(f.blobs[app+"@"+man.Layers[0].Digest]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if diff := newBlob(raw).digest; len(cfg.Rootfs.DiffIDs) != 1 || cfg.Rootfs.DiffIDs[0] != diff {
		t.Errorf("diff_ids %v, layer's uncompressed digest %s", cfg.Rootfs.DiffIDs, diff)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(tr)
	if hdr.Name != "skypipe" || hdr.Mode != 0o755 || !bytes.Equal(content, binary) {
		t.Errorf("layer holds %q mode %o, %d bytes (binary equal: %v)", hdr.Name, hdr.Mode, len(content), bytes.Equal(content, binary))
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("layer holds more than the binary: %v", err)
	}
}

func TestDeployAgainFindsTheSatelliteAndCreatesNothing(t *testing.T) {
	f := newFake(t)
	c := f.client(f.token)
	var sec secretsFor
	first, firstSec, err := Deploy(context.Background(), c, testOptions(), sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	f.reset()
	again, againSec, err := Deploy(context.Background(), c, testOptions(), sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	want := expand([]string{
		"GET /v1/apps?org_slug=personal",
		"GET /v1/apps/APP/machines",
		"GET /v1/apps/APP/ip_assignments",
		"POST /v1/apps/APP/machines/ID/exec",
	}, "APP", first.App, "ID", first.MachineID)
	if g := seq(f.requests()); !reflect.DeepEqual(g, want) {
		t.Fatalf("second deploy made:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	if sec.calls != 1 {
		t.Errorf("new secrets asked %d times, want once", sec.calls)
	}
	first.Created = false
	if !reflect.DeepEqual(again, first) {
		t.Errorf("second deploy %+v, first %+v", again, first)
	}
	if againSec.Token != firstSec.Token || !bytes.Equal(againSec.CAPEM, firstSec.CAPEM) {
		t.Errorf("second deploy's secrets %+v", againSec)
	}
	if len(f.apps) != 1 || len(f.apps[first.App].machines) != 1 || len(f.apps[first.App].volumes) != 1 {
		t.Errorf("fly holds %d apps", len(f.apps))
	}
}

func TestFindFromASecondMachineRecoversTheJoinMaterial(t *testing.T) {
	f := newFake(t)
	var sec secretsFor
	deployed, deployedSec, err := Deploy(context.Background(), f.client(f.token), Options{Binary: testOptions().Binary, IPv4: true, Region: "ams"}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	if len(deployed.IPs) != 2 || deployed.Region != "ams" {
		t.Fatalf("deployed with --ipv4 in ams: %+v", deployed)
	}
	f.reset()
	other := f.client(f.token) // another machine: nothing in common but the token
	res, got, err := Find(context.Background(), other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	deployed.Created = false
	if !reflect.DeepEqual(res, deployed) {
		t.Errorf("found %+v\nwant %+v", res, deployed)
	}
	if got.Token != deployedSec.Token || string(got.CAPEM) != testCA || got.TLSKeyPEM != nil {
		t.Errorf("recovered %+v", got)
	}
	exec := f.requests()[len(f.requests())-1]
	var body map[string]any
	json.Unmarshal(exec.Body, &body)
	want := map[string]any{"command": []any{"/skypipe", "serve", "--token-file", "/etc/skypipe/token", "--print-token"}, "timeout": 30.0}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("exec body %v, want %v", body, want)
	}

	// By name too, and a stopped machine is started first.
	f.apps[res.App].machines[0].State = "stopped"
	f.reset()
	if _, _, err := Find(context.Background(), other, Options{App: res.App}); err != nil {
		t.Fatal(err)
	}
	want2 := expand([]string{
		"GET /v1/apps/APP",
		"GET /v1/apps/APP/machines",
		"POST /v1/apps/APP/machines/ID/start",
		"GET /v1/apps/APP/machines/ID/wait?state=started&timeout=60",
		"GET /v1/apps/APP/ip_assignments",
		"POST /v1/apps/APP/machines/ID/exec",
	}, "APP", res.App, "ID", res.MachineID)
	if g := seq(f.requests()); !reflect.DeepEqual(g, want2) {
		t.Errorf("find by name:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want2, "\n"))
	}
}

func TestFindWithoutSatellite(t *testing.T) {
	f := newFake(t)
	f.apps["my-web-app"] = &fakeApp{org: "personal", secrets: map[string]string{}}
	for _, o := range []Options{{}, {App: "skypipe-nothere"}} {
		if _, _, err := Find(context.Background(), f.client(f.token), o); !errors.Is(err, ErrNoSatellite) {
			t.Errorf("Find(%+v) = %v, want ErrNoSatellite", o, err)
		}
	}
	if len(f.apps) != 1 {
		t.Errorf("Find created something: %v", f.apps)
	}
}

func TestResetTearsEverythingDown(t *testing.T) {
	f := newFake(t)
	c := f.client(f.token)
	var sec secretsFor
	res, _, err := Deploy(context.Background(), c, Options{Binary: testOptions().Binary, IPv4: true}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	inst := f.apps[res.App].machines[0].InstanceID
	f.reset()
	app, err := Reset(context.Background(), c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if app != res.App {
		t.Errorf("reset %q, deployed %q", app, res.App)
	}
	want := expand([]string{
		"GET /v1/apps?org_slug=personal",
		"GET /v1/apps/APP/machines",
		"DELETE /v1/apps/APP/machines/ID?force=true",
		"GET /v1/apps/APP/machines/ID/wait?instance_id=INST&state=destroyed&timeout=60",
		"GET /v1/apps/APP/volumes",
		"DELETE /v1/apps/APP/volumes/vol_0003",
		"GET /v1/apps/APP/ip_assignments",
		"DELETE /v1/apps/APP/ip_assignments/2a09:8280:1::1",
		"DELETE /v1/apps/APP/ip_assignments/137.66.1.2",
		"DELETE /v1/apps/APP",
	}, "APP", app, "ID", res.MachineID, "INST", inst)
	if g := seq(f.requests()); !reflect.DeepEqual(g, want) {
		t.Errorf("reset made:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	if len(f.apps) != 0 {
		t.Errorf("apps left: %v", f.apps)
	}
	if _, _, err := Find(context.Background(), c, Options{}); !errors.Is(err, ErrNoSatellite) {
		t.Errorf("Find after reset: %v", err)
	}
	if _, err := Reset(context.Background(), c, Options{}); !errors.Is(err, ErrNoSatellite) {
		t.Errorf("second reset: %v, want ErrNoSatellite", err)
	}
}

func TestResetRefusesAnAppThatIsNotASatellite(t *testing.T) {
	f := newFake(t)
	f.apps["my-web-app"] = &fakeApp{org: "personal", secrets: map[string]string{}, machines: []*Machine{{ID: "web1", State: "started", Config: MachineConfig{Image: "nginx"}}}}
	_, err := Reset(context.Background(), f.client(f.token), Options{App: "my-web-app"})
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("Reset of a web app: %v, want ErrNameTaken", err)
	}
	if f.apps["my-web-app"] == nil || len(f.apps["my-web-app"].machines) != 1 {
		t.Fatal("the web app was touched")
	}
	for _, r := range f.requests() {
		if r.Method != "GET" {
			t.Errorf("Reset sent %s", r)
		}
	}
}

func TestAPIFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(f *fakeFly)
		opts    Options
		token   string
		want    error
		message string // in the error
	}{
		{name: "bad token", token: "fm2_wrong", want: ErrBadToken, message: "Fly.io refused the API token: GET /apps: 401 token validation error"},
		{name: "name held by another org", opts: Options{App: "taken-elsewhere"}, setup: func(f *fakeFly) { f.foreign["taken-elsewhere"] = true },
			want: ErrNameTaken, message: "taken-elsewhere belongs to an organization this token cannot see"},
		{name: "name taken at creation", opts: Options{App: "raced-away"}, setup: func(f *fakeFly) {
			f.fail["GET /v1/apps/raced-away"] = 404
			f.foreign["raced-away"] = true
		}, want: ErrNameTaken, message: "raced-away is held by another Fly.io user or organization"},
		{name: "app of ours that is not a satellite", opts: Options{App: "my-web-app"}, setup: func(f *fakeFly) {
			f.apps["my-web-app"] = &fakeApp{org: "personal", secrets: map[string]string{}, machines: []*Machine{{ID: "web1", Config: MachineConfig{Image: "nginx"}}}}
		}, want: ErrNameTaken, message: "app my-web-app runs machines that are not a skypipe satellite"},
		{name: "server error", setup: func(f *fakeFly) { f.fail["POST /v1/apps"] = 503 },
			want: ErrUnavailable, message: "Fly.io is unavailable: POST /apps: 503 injected failure"},
		{name: "bad app name", opts: Options{App: "Bad_Name"}, message: `"Bad_Name" is not a Fly app name`},
		{name: "binary for another machine", opts: Options{Binary: elfBinary(183, false)}, want: ErrWrongBinary, message: "built for EM_AARCH64"},
		{name: "dynamic binary", opts: Options{Binary: elfBinary(62, true)}, want: ErrWrongBinary, message: "CGO_ENABLED=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			token := tc.token
			if token == "" {
				token = f.token
			}
			opts := tc.opts
			if opts.Binary == nil {
				opts.Binary = testOptions().Binary
			}
			var sec secretsFor
			_, _, err := Deploy(context.Background(), f.client(token), opts, sec.issue)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("err = %v\nwant %v containing %q", err, tc.want, tc.message)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error shows the token: %v", err)
			}
			if sec.calls != 0 {
				t.Errorf("secrets made despite the failure")
			}
		})
	}
}

func TestDeployCutShortResumesWithoutDuplicates(t *testing.T) {
	f := newFake(t)
	c := f.client(f.token)
	var sec secretsFor
	// Let the app be created, then make its machine's creation fail once.
	_, _, err := Deploy(context.Background(), c, Options{Binary: testOptions().Binary, Image: "registry.fly.io/pinned:1"}, func(host string) (Secrets, error) {
		app := strings.TrimSuffix(host, ".fly.dev")
		f.mu.Lock()
		f.fail["POST /v1/apps/"+app+"/machines"] = 500
		f.mu.Unlock()
		return sec.issue(host)
	})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first deploy: %v, want ErrUnavailable", err)
	}
	if len(f.apps) != 1 {
		t.Fatalf("apps %d", len(f.apps))
	}
	res, _, err := Deploy(context.Background(), c, Options{Binary: testOptions().Binary, Image: "registry.fly.io/pinned:1"}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	a := f.apps[res.App]
	if len(f.apps) != 1 || len(a.volumes) != 1 || len(a.ips) != 2 || len(a.machines) != 1 || res.Image != "registry.fly.io/pinned:1" {
		t.Errorf("after resuming: %d apps, %d volumes, %d ips, %d machines, image %q", len(f.apps), len(a.volumes), len(a.ips), len(a.machines), res.Image)
	}
	for _, r := range f.requests() {
		if strings.HasPrefix(r.Path, "/v2/") {
			t.Errorf("pushed an image despite Options.Image: %s", r)
		}
	}
}

func TestDeployWaitsOutASlowFirstBoot(t *testing.T) {
	for _, tc := range []struct {
		timeouts int
		ok       bool
	}{{2, true}, {5, false}} {
		f := newFake(t)
		f.failWait = tc.timeouts
		var sec secretsFor
		_, _, err := Deploy(context.Background(), f.client(f.token), testOptions(), sec.issue)
		if (err == nil) != tc.ok {
			t.Errorf("%d wait timeouts: err = %v, want ok=%v", tc.timeouts, err, tc.ok)
		}
		if !tc.ok && !strings.Contains(fmt.Sprint(err), "408 deadline_exceeded") {
			t.Errorf("error %v does not say the wait timed out", err)
		}
	}
}

// TestWithoutIPv4TheSharedAddressCarriesHTTPS: without --ipv4 the app gets
// the free shared IPv4, which Fly's proxy routes by name for HTTP and TLS
// only; a second machine finds the HTTP face, and a reset releases the
// shared address too. With --ipv4, no shared address is asked for.
func TestWithoutIPv4TheSharedAddressCarriesHTTPS(t *testing.T) {
	f := newFake(t)
	var sec secretsFor
	res, _, err := Deploy(context.Background(), f.client(f.token), testOptions(), sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	f.reset()
	found, _, err := Find(context.Background(), f.client(f.token), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !found.Web || found.WebSocketURL() != "wss://"+res.App+".fly.dev" || found.DedicatedIPv4() {
		t.Errorf("found %+v: want the HTTP face and no dedicated IPv4", found)
	}
	f.reset()
	if _, err := Reset(context.Background(), f.client(f.token), Options{}); err != nil {
		t.Fatal(err)
	}
	var released []string
	for _, r := range f.requests() {
		if r.Method == "DELETE" && strings.Contains(r.Path, "/ip_assignments/") {
			released = append(released, r.Path[strings.LastIndex(r.Path, "/")+1:])
		}
	}
	if !reflect.DeepEqual(released, []string{"2a09:8280:1::1", "66.241.124.1"}) {
		t.Errorf("released %q, want the IPv6 and the shared IPv4", released)
	}

	// With a dedicated IPv4, no shared one.
	f2 := newFake(t)
	res2, _, err := Deploy(context.Background(), f2.client(f2.token), Options{Binary: testOptions().Binary, IPv4: true}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range f2.requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/ip_assignments") {
			var b map[string]string
			json.Unmarshal(r.Body, &b)
			kinds = append(kinds, b["type"])
		}
	}
	if !reflect.DeepEqual(kinds, []string{"v6", "v4"}) || !res2.DedicatedIPv4() {
		t.Errorf("with --ipv4: asked for %q, dedicated IPv4 %v", kinds, res2.DedicatedIPv4())
	}
}
