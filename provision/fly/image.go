package fly

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Media types of the OCI image spec.
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// BinaryPath is where the image holds the skypipe binary.
const BinaryPath = "/skypipe"

// Image is a one-layer image: the static skypipe binary and the command
// the machine runs (Entrypoint [BinaryPath], Cmd as given).
type Image struct {
	Binary []byte
	Cmd    []string
}

// ReadBinary reads a skypipe binary that can run in a Fly machine: a
// static linux/amd64 ELF executable.
func ReadBinary(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := CheckBinary(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// CheckBinary tells whether b is a static linux/amd64 executable.
func CheckBinary(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: not an ELF executable", ErrWrongBinary)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%w: built for %v %v", ErrWrongBinary, f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: dynamically linked (build it with CGO_ENABLED=0)", ErrWrongBinary)
		}
	}
	return nil
}

// blob is content with its digest.
type blob struct {
	data   []byte
	digest string
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{data: data, digest: "sha256:" + hex.EncodeToString(sum[:])}
}

// built is an image ready to push.
type built struct {
	layer, config, manifest blob
}

// build lays out the image deterministically: the same binary and command
// give the same digests.
func (img Image) build() (built, error) {
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	hdr := &tar.Header{
		Name:     strings.TrimPrefix(BinaryPath, "/"),
		Mode:     0o755,
		Size:     int64(len(img.Binary)),
		Typeflag: tar.TypeReg,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return built{}, err
	}
	if _, err := tw.Write(img.Binary); err != nil {
		return built{}, err
	}
	if err := tw.Close(); err != nil {
		return built{}, err
	}
	diffID := newBlob(tarBuf.Bytes()).digest

	var gzBuf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gzBuf, gzip.BestSpeed)
	if err != nil {
		return built{}, err
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return built{}, err
	}
	if err := zw.Close(); err != nil {
		return built{}, err
	}
	layer := newBlob(gzBuf.Bytes())

	cfg := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      "1970-01-01T00:00:00Z",
		"config": map[string]any{
			"Entrypoint": []string{BinaryPath},
			"Cmd":        img.Cmd,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return built{}, err
	}
	config := newBlob(cfgJSON)

	man := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        map[string]any{"mediaType": mediaConfig, "digest": config.digest, "size": len(config.data)},
		"layers":        []any{map[string]any{"mediaType": mediaLayer, "digest": layer.digest, "size": len(layer.data)}},
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return built{}, err
	}
	return built{layer: layer, config: config, manifest: newBlob(manJSON)}, nil
}

// ImageTag is the tag of an image of this binary: the same binary gives
// the same tag, so a second deploy of one version pushes nothing new.
func ImageTag(binary []byte) string {
	sum := sha256.Sum256(binary)
	return "skypipe-" + hex.EncodeToString(sum[:6])
}

// PushImage implements API with the OCI distribution spec: for each blob
// HEAD (skip if present), else POST an upload and PUT it with its digest;
// then PUT the manifest under tag. Authentication is basic ("x", token), as
// `fly auth docker` sets it up, or the bearer token a 401 challenge asks
// for.
func (c *Client) PushImage(ctx context.Context, app, tag string, img Image) (string, error) {
	if err := CheckBinary(img.Binary); err != nil {
		return "", err
	}
	b, err := img.build()
	if err != nil {
		return "", err
	}
	r := &registry{c: c, repo: app}
	for _, bl := range []blob{b.layer, b.config} {
		if err := r.pushBlob(ctx, bl); err != nil {
			return "", err
		}
	}
	path := "/v2/" + app + "/manifests/" + tag
	resp, err := r.send(ctx, http.MethodPut, path, mediaManifest, b.manifest.data)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", registryError(http.MethodPut, path, resp)
	}
	u, err := url.Parse(c.registryURL)
	if err != nil {
		return "", err
	}
	return u.Host + "/" + app + ":" + tag, nil
}

// registry pushes to one repository.
type registry struct {
	c         *Client
	repo      string
	bearer    string // set after a bearer challenge
	anonymous bool   // send no credentials: a public image elsewhere than Fly's registry
	base      string // the registry's URL; empty: Fly's
}

func (r *registry) pushBlob(ctx context.Context, b blob) error {
	path := "/v2/" + r.repo + "/blobs/" + b.digest
	resp, err := r.send(ctx, http.MethodHead, path, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil // already there
	case http.StatusNotFound:
	default:
		return registryError(http.MethodHead, path, resp)
	}

	start := "/v2/" + r.repo + "/blobs/uploads/"
	resp, err = r.send(ctx, http.MethodPost, start, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return registryError(http.MethodPost, start, resp)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("POST %s: no upload location: %v", start, err)
	}
	q := loc.Query()
	q.Set("digest", b.digest)
	loc.RawQuery = q.Encode()
	resp, err = r.sendURL(ctx, http.MethodPut, loc, "application/octet-stream", b.data, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return registryError(http.MethodPut, loc.Path, resp)
	}
	return nil
}

func (r *registry) send(ctx context.Context, method, path, contentType string, body []byte) (*http.Response, error) {
	u, err := url.Parse(r.c.registryURL + path)
	if err != nil {
		return nil, err
	}
	return r.sendURL(ctx, method, u, contentType, body, "")
}

// sendURL sends one request, answering a bearer challenge once.
func (r *registry) sendURL(ctx context.Context, method string, u *url.URL, contentType string, body []byte, accept string) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.ContentLength = int64(len(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		switch {
		case r.bearer != "":
			req.Header.Set("Authorization", "Bearer "+r.bearer)
		case !r.anonymous:
			req.SetBasicAuth("x", r.c.registryPassword())
		}
		resp, err := r.c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, u.Path, unwrapURLError(err))
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 || !strings.HasPrefix(strings.ToLower(challenge), "bearer ") {
			return resp, nil
		}
		resp.Body.Close()
		if r.bearer, err = r.fetchBearer(ctx, challenge); err != nil {
			return nil, err
		}
	}
}

// fetchBearer answers a challenge `Bearer realm="...",service="...",
// scope="..."` as the distribution token spec describes: GET realm with
// service and scope, basic auth, and read "token" (or "access_token").
func (r *registry) fetchBearer(ctx context.Context, challenge string) (string, error) {
	params := parseChallenge(challenge[len("bearer "):])
	realm, err := url.Parse(params["realm"])
	if err != nil || realm.Host == "" {
		return "", fmt.Errorf("registry: bad auth challenge %q", challenge)
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	scope := params["scope"]
	if scope == "" && r.anonymous {
		scope = "repository:" + r.repo + ":pull"
	} else if scope == "" {
		scope = "repository:" + r.repo + ":pull,push"
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	if !r.anonymous {
		req.SetBasicAuth("x", r.c.registryPassword())
	}
	resp, err := r.c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: registry auth: %v", ErrUnavailable, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", registryError(http.MethodGet, realm.Path, resp)
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return "", fmt.Errorf("registry auth: %v", err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	if tok.Token == "" {
		return "", errors.New("registry auth: no token in the answer")
	}
	return tok.Token, nil
}

// parseChallenge reads key="value" pairs separated by commas.
func parseChallenge(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ,")
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				break
			}
			v, s = rest[1:1+end], rest[2+end:]
		} else {
			v, s, _ = strings.Cut(rest, ",")
		}
		out[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return out
}

// registryError reads the distribution spec's error body
// {"errors":[{"code","message"}]}.
func registryError(method, path string, resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	msg := ""
	if json.Unmarshal(data, &e) == nil && len(e.Errors) > 0 {
		msg = e.Errors[0].Code + ": " + e.Errors[0].Message
	}
	return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: msg, kind: kindOf(resp.StatusCode)}
}

// Digest is the digest of the image's manifest: the same binary and
// command give the same digest, wherever the image is built.
func (img Image) Digest() (string, error) {
	b, err := img.build()
	if err != nil {
		return "", err
	}
	return b.manifest.digest, nil
}

// WriteLayout writes the image as an OCI image layout in a tar archive
// (oci-layout, index.json naming the manifest ref, blobs/sha256/...), the
// form `skopeo copy oci-archive:FILE docker://REF` publishes; it returns
// the manifest's digest. A release writes the satellite's image this way
// from the very binary its archives hold.
func (img Image) WriteLayout(w io.Writer, ref string) (string, error) {
	if err := CheckBinary(img.Binary); err != nil {
		return "", err
	}
	b, err := img.build()
	if err != nil {
		return "", err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType":   mediaManifest,
			"digest":      b.manifest.digest,
			"size":        len(b.manifest.data),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": ref},
			"platform":    map[string]string{"architecture": "amd64", "os": "linux"},
		}},
	})
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(w)
	file := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
	}
	for _, bl := range []blob{b.layer, b.config, b.manifest} {
		files = append(files, struct {
			name string
			data []byte
		}{"blobs/sha256/" + strings.TrimPrefix(bl.digest, "sha256:"), bl.data})
	}
	for _, f := range files {
		if err := file(f.name, f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return b.manifest.digest, nil
}

// ResolveImage implements API: HEAD /v2/REPO/manifests/TAG at the image's
// registry, anonymously (a public image: a 401 challenge is answered with
// an anonymous token, and the Fly.io token is never sent there). It
// returns the manifest's digest; ErrNotFound if there is no such image.
func (c *Client) ResolveImage(ctx context.Context, ref string) (string, error) {
	host, repo, tag, err := splitRef(ref)
	if err != nil {
		return "", err
	}
	base := "https://" + host
	if u, ok := c.registries[host]; ok {
		base = u
	}
	r := &registry{c: c, repo: repo, anonymous: true, base: base}
	path := "/v2/" + repo + "/manifests/" + tag
	u, err := url.Parse(base + path)
	if err != nil {
		return "", err
	}
	resp, err := r.sendURL(ctx, http.MethodHead, u, "", nil, mediaManifest)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", registryError(http.MethodHead, path, resp)
	}
	digest := resp.Header.Get("Docker-Content-Digest")
	if !strings.HasPrefix(digest, "sha256:") {
		return "", fmt.Errorf("HEAD %s: no manifest digest in the answer", path)
	}
	return digest, nil
}

// splitRef splits HOST/REPO:TAG.
func splitRef(ref string) (host, repo, tag string, err error) {
	host, rest, ok := strings.Cut(ref, "/")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 || i == len(rest)-1 || !strings.ContainsAny(host, ".:") {
		return "", "", "", fmt.Errorf("image reference %q is not HOST/REPOSITORY:TAG", ref)
	}
	return host, rest[:i], rest[i+1:], nil
}
