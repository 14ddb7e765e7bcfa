package fly

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeRelease is a public registry holding released images, as ghcr.io
// answers anonymous pulls (the distribution spec's token flow): a HEAD
// without a token gets 401 and a Bearer challenge; GET realm gives an
// anonymous token; a HEAD with it gets the manifest's digest, or 404
// MANIFEST_UNKNOWN.
type fakeRelease struct {
	srv *httptest.Server

	mu       sync.Mutex
	digests  map[string]string // repo:tag -> manifest digest
	auths    []string          // every Authorization header it got
	requests []string
}

func newFakeRelease(t *testing.T) *fakeRelease {
	r := &fakeRelease{digests: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *fakeRelease) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auths = append(r.auths, req.Header.Get("Authorization"))
	r.requests = append(r.requests, req.Method+" "+req.URL.Path)
	if req.URL.Path == "/token" {
		if req.Header.Get("Authorization") != "" {
			writeJSON(w, 400, map[string]string{"error": "an anonymous pull sends no credentials here"})
			return
		}
		writeJSON(w, 200, map[string]string{"token": "anonymous-pull"})
		return
	}
	repoTag, ok := strings.CutPrefix(req.URL.Path, "/v2/")
	repo, tag, ok2 := strings.Cut(repoTag, "/manifests/")
	if !ok || !ok2 || req.Method != http.MethodHead {
		regError(w, 405, "UNSUPPORTED", "unsupported")
		return
	}
	if req.Header.Get("Authorization") != "Bearer anonymous-pull" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+r.srv.URL+`/token",service="ghcr.io",scope="repository:`+repo+`:pull"`)
		regError(w, 401, "UNAUTHORIZED", "authentication required")
		return
	}
	d, ok := r.digests[repo+":"+tag]
	if !ok {
		w.WriteHeader(404) // a HEAD answer has no body
		return
	}
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Content-Type", mediaManifest)
	w.WriteHeader(200)
}

func (r *fakeRelease) publish(t *testing.T, version string, binary []byte) string {
	d, err := Image{Binary: binary, Cmd: ServeArgs()}.Digest()
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.digests["skypipe/skypipe:"+version] = d
	return d
}

// client reaches Fly.io's fake and, for ghcr.io, the release registry.
func (r *fakeRelease) client(f *fakeFly) *Client {
	return f.client(f.token).WithRegistry("ghcr.io", r.srv.URL)
}

func machineImage(t *testing.T, f *fakeFly, app string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if a := f.apps[app]; a != nil && len(a.machines) == 1 {
		return a.machines[0].Config.Image
	}
	t.Fatalf("app %s has no single machine", app)
	return ""
}

func pushed(f *fakeFly) bool {
	for _, r := range f.requests() {
		if strings.HasPrefix(r.Path, "/v2/") {
			return true
		}
	}
	return false
}

func TestIsRelease(t *testing.T) {
	for v, want := range map[string]bool{
		"1.2.3": true, "0.1.0": true, "1.2.3-rc.1": true, "1.0.0-beta2": true,
		"dev": false, "dev (0123456789ab)": false, "1.2.4-SNAPSHOT-abc1234": false,
		"v1.2.3": false, "1.2": false, "v0.0.0-20260101000000-abcdef123456": false, "": false,
	} {
		if IsRelease(v) != want {
			t.Errorf("IsRelease(%q) = %v, want %v", v, !want, want)
		}
	}
}

// TestDeployRunsTheReleasedImageOfThisBinary: a release build finds its
// version's image, published from the same binary (the same digest), and
// the machine runs it, pinned by digest: nothing is pushed. The Fly.io
// token never reaches the public registry.
func TestDeployRunsTheReleasedImageOfThisBinary(t *testing.T) {
	f, rel := newFake(t), newFakeRelease(t)
	bin := testOptions().Binary
	digest := rel.publish(t, "1.2.3", bin)
	var sec secretsFor
	res, _, err := Deploy(context.Background(), rel.client(f), Options{Binary: bin, Release: "1.2.3"}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	want := "ghcr.io/skypipe/skypipe:1.2.3@" + digest
	if got := machineImage(t, f, res.App); got != want || res.Image != want {
		t.Errorf("machine runs %q (result %q), want %q", got, res.Image, want)
	}
	if pushed(f) {
		t.Error("pushed an image although the release's holds this binary")
	}
	if got := strings.Join(rel.requests, ", "); got != "HEAD /v2/skypipe/skypipe/manifests/1.2.3, GET /token, HEAD /v2/skypipe/skypipe/manifests/1.2.3" {
		t.Errorf("release registry got %s", got)
	}
	for _, a := range rel.auths {
		if strings.Contains(a, f.token) || strings.HasPrefix(a, "Basic ") {
			t.Errorf("the release registry got credentials %q", a)
		}
	}
}

// TestDeployPushesItsOwnBinaryWhenTheReleaseDiffers: a binary that claims
// the version but is not the release's (built from source), or a version
// whose image was never published, runs as its own image.
func TestDeployPushesItsOwnBinaryWhenTheReleaseDiffers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		publish []byte
	}{
		{"another binary published", elfBinary(62, false)[:len(elfBinary(62, false))-1]},
		{"nothing published", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, rel := newFake(t), newFakeRelease(t)
			if tc.publish != nil {
				rel.publish(t, "1.2.3", append(tc.publish, 'x'))
			}
			bin := testOptions().Binary
			var sec secretsFor
			res, _, err := Deploy(context.Background(), rel.client(f), Options{Binary: bin, Release: "1.2.3"}, sec.issue)
			if err != nil {
				t.Fatal(err)
			}
			if got := machineImage(t, f, res.App); !strings.HasSuffix(got, "/"+res.App+":"+ImageTag(bin)) {
				t.Errorf("machine runs %q, want this binary's image", got)
			}
			checkImage(t, f, res.App, ImageTag(bin), bin)
		})
	}
}

// TestDeployWithoutABinaryRunsTheRelease: a client that cannot push its
// own binary (macOS, Windows, arm64) runs the release's image of its
// version, and fails clearly, creating nothing, when there is none.
func TestDeployWithoutABinaryRunsTheRelease(t *testing.T) {
	f, rel := newFake(t), newFakeRelease(t)
	digest := rel.publish(t, "2.0.0", testOptions().Binary)
	var sec secretsFor
	res, _, err := Deploy(context.Background(), rel.client(f), Options{Release: "2.0.0"}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	if got := machineImage(t, f, res.App); got != "ghcr.io/skypipe/skypipe:2.0.0@"+digest {
		t.Errorf("machine runs %q", got)
	}

	f2 := newFake(t)
	_, _, err = Deploy(context.Background(), rel.client(f2), Options{Release: "2.0.1"}, sec.issue)
	if !errors.Is(err, ErrWrongBinary) || !strings.Contains(err.Error(), "no released image ghcr.io/skypipe/skypipe:2.0.1") {
		t.Fatalf("deploy of an unpublished version without a binary: %v", err)
	}
	if len(f2.requests()) != 0 {
		t.Errorf("Fly.io got requests: %v", seq(f2.requests()))
	}
}

// TestDeployWhenTheReleaseRegistryIsDown: with a binary, it is pushed;
// without one, the error says what failed.
func TestDeployWhenTheReleaseRegistryIsDown(t *testing.T) {
	f, rel := newFake(t), newFakeRelease(t)
	rel.srv.Close()
	var sec secretsFor
	bin := testOptions().Binary
	res, _, err := Deploy(context.Background(), rel.client(f), Options{Binary: bin, Release: "1.2.3"}, sec.issue)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, f, res.App, ImageTag(bin), bin)
	_, _, err = Deploy(context.Background(), rel.client(newFake(t)), Options{Release: "1.2.3"}, sec.issue)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "looking for the released image") {
		t.Fatalf("without a binary: %v", err)
	}
}

// TestWriteLayoutHoldsTheImageDeployWouldPush: the release's OCI layout
// names the manifest whose digest Deploy compares, and holds every blob.
func TestWriteLayoutHoldsTheImageDeployWouldPush(t *testing.T) {
	img := Image{Binary: testOptions().Binary, Cmd: ServeArgs()}
	var buf bytes.Buffer
	digest, err := img.WriteLayout(&buf, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); digest != want {
		t.Fatalf("layout digest %s, image digest %s", digest, want)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name], _ = io.ReadAll(tr)
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", files["oci-layout"])
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	m := index.Manifests[0]
	if m.Digest != digest || m.Annotations["org.opencontainers.image.ref.name"] != "1.2.3" {
		t.Errorf("index names %+v", m)
	}
	var man struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	blobOf := func(d string) []byte { return files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] }
	if err := json.Unmarshal(blobOf(digest), &man); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{digest, man.Config.Digest, man.Layers[0].Digest} {
		b := blobOf(d)
		if b == nil || newBlob(b).digest != d {
			t.Errorf("blob %s missing or damaged", d)
		}
	}
}
