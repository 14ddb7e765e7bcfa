package fly

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeFly answers the Machines API and registry requests the provider
// makes, as Fly.io documents them (fly.io/docs/machines/api, the OCI
// distribution spec), keeping state so that a second client sees what the
// first created. It records every request.
type fakeFly struct {
	t     *testing.T
	srv   *httptest.Server
	token string // the only token it accepts

	mu        sync.Mutex
	reqs      []request
	apps      map[string]*fakeApp
	foreign   map[string]bool   // app names held by someone else
	fail      map[string]int    // "METHOD /path" -> status to answer once
	failWait  int               // wait calls to answer 408 first
	blobs     map[string][]byte // repo@digest
	manifests map[string][]byte // repo:tag
	bearer    bool              // registry asks for a bearer token
	issued    string            // the bearer token it issued
	nextID    int
}

type fakeApp struct {
	org      string
	machines []*Machine
	volumes  []*Volume
	ips      []IPAssignment
	secrets  map[string]string
	version  uint64
}

// request is one recorded request.
type request struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   []byte
}

func (r request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s
}

func newFake(t *testing.T) *fakeFly {
	f := &fakeFly{
		t: t, token: "fm2_good-token",
		apps: map[string]*fakeApp{}, foreign: map[string]bool{}, fail: map[string]int{},
		blobs: map[string][]byte{}, manifests: map[string][]byte{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client is a Client of the fake holding token.
func (f *fakeFly) client(token string) *Client {
	c, err := NewClientAt(f.srv.URL, f.srv.URL, token)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fakeFly) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeFly) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = nil
}

func (f *fakeFly) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
	key := r.Method + " " + r.URL.Path
	if status, ok := f.fail[key]; ok {
		delete(f.fail, key)
		writeJSON(w, status, map[string]string{"error": "injected failure"})
		return
	}
	switch {
	case r.URL.Path == "/token":
		f.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/v2/"):
		f.serveRegistry(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/v1/"):
		if r.Header.Get("Authorization") != "Bearer "+f.token {
			writeJSON(w, 401, map[string]string{"error": "token validation error"})
			return
		}
		f.serveMachines(w, r, body)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeFly) id(prefix string) string {
	f.nextID++
	return fmt.Sprintf("%s%04d", prefix, f.nextID)
}

func (f *fakeFly) serveMachines(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	decode := func(v any) bool {
		if err := json.Unmarshal(body, v); err != nil {
			writeJSON(w, 400, map[string]string{"error": "bad json: " + err.Error()})
			return false
		}
		return true
	}
	if parts[0] != "apps" {
		http.NotFound(w, r)
		return
	}
	if len(parts) == 1 {
		switch r.Method {
		case "GET":
			org := r.URL.Query().Get("org_slug")
			var apps []map[string]any
			for name, a := range f.apps {
				if a.org == org {
					apps = append(apps, map[string]any{"id": "id-" + name, "name": name, "machine_count": len(a.machines), "volume_count": len(a.volumes), "network": "default"})
				}
			}
			slices.SortFunc(apps, func(a, b map[string]any) int { return strings.Compare(a["name"].(string), b["name"].(string)) })
			writeJSON(w, 200, map[string]any{"total_apps": len(apps), "apps": apps})
		case "POST":
			var in struct {
				AppName string `json:"app_name"`
				OrgSlug string `json:"org_slug"`
			}
			if !decode(&in) {
				return
			}
			if in.AppName == "" || in.OrgSlug == "" {
				writeJSON(w, 400, map[string]string{"error": "app_name and org_slug are required"})
				return
			}
			if f.apps[in.AppName] != nil || f.foreign[in.AppName] {
				writeJSON(w, 422, map[string]string{"error": "Name has already been taken", "status": "name_taken"})
				return
			}
			f.apps[in.AppName] = &fakeApp{org: in.OrgSlug, secrets: map[string]string{}}
			writeJSON(w, 201, map[string]any{"id": "id-" + in.AppName, "created_at": 1708631799000})
		default:
			w.WriteHeader(405)
		}
		return
	}
	name := parts[1]
	if f.foreign[name] {
		writeJSON(w, 403, map[string]string{"error": "unauthorized"})
		return
	}
	a := f.apps[name]
	if a == nil {
		writeJSON(w, 404, map[string]string{"error": "app not found"})
		return
	}
	if len(parts) == 2 {
		switch r.Method {
		case "GET":
			writeJSON(w, 200, map[string]any{"id": "id-" + name, "name": name, "status": "deployed", "organization": map[string]string{"name": "Org", "slug": a.org}})
		case "DELETE":
			delete(f.apps, name)
			w.WriteHeader(202)
		default:
			w.WriteHeader(405)
		}
		return
	}
	switch parts[2] {
	case "volumes":
		switch {
		case len(parts) == 3 && r.Method == "GET":
			out := []*Volume{}
			for _, v := range a.volumes {
				out = append(out, v)
			}
			writeJSON(w, 200, out)
		case len(parts) == 3 && r.Method == "POST":
			var in CreateVolumeRequest
			if !decode(&in) {
				return
			}
			v := &Volume{ID: f.id("vol_"), Name: in.Name, State: "created", SizeGB: in.SizeGB, Region: in.Region, Encrypted: in.Encrypted}
			a.volumes = append(a.volumes, v)
			writeJSON(w, 200, v)
		case len(parts) == 4 && r.Method == "DELETE":
			for i, v := range a.volumes {
				if v.ID == parts[3] {
					if v.AttachedMachineID != "" {
						writeJSON(w, 412, map[string]string{"error": "volume is attached to a machine"})
						return
					}
					a.volumes = slices.Delete(a.volumes, i, i+1)
					v.State = "destroyed"
					writeJSON(w, 200, v)
					return
				}
			}
			writeJSON(w, 404, map[string]string{"error": "volume not found"})
		default:
			w.WriteHeader(405)
		}
	case "ip_assignments":
		switch {
		case len(parts) == 3 && r.Method == "GET":
			writeJSON(w, 200, map[string]any{"ips": append([]IPAssignment{}, a.ips...)})
		case len(parts) == 3 && r.Method == "POST":
			var in struct {
				Type string `json:"type"`
			}
			if !decode(&in) {
				return
			}
			var ip IPAssignment
			switch in.Type {
			case "v6":
				ip = IPAssignment{IP: fmt.Sprintf("2a09:8280:1::%x", len(a.ips)+1), Region: "global"}
			case "v4":
				ip = IPAssignment{IP: fmt.Sprintf("137.66.1.%d", len(a.ips)+1), Region: "global"}
			case "shared_v4":
				ip = IPAssignment{IP: "66.241.124.1", Region: "global", Shared: true}
			default:
				writeJSON(w, 400, map[string]string{"error": "unknown type " + in.Type})
				return
			}
			a.ips = append(a.ips, ip)
			writeJSON(w, 200, ip)
		case len(parts) == 4 && r.Method == "DELETE":
			for i, ip := range a.ips {
				if ip.IP == parts[3] {
					a.ips = slices.Delete(a.ips, i, i+1)
					w.WriteHeader(204)
					return
				}
			}
			writeJSON(w, 404, map[string]string{"error": "ip not found"})
		default:
			w.WriteHeader(405)
		}
	case "secrets":
		if len(parts) != 3 || r.Method != "POST" {
			w.WriteHeader(405)
			return
		}
		var in struct {
			Values map[string]*string `json:"values"`
		}
		if !decode(&in) {
			return
		}
		var out []map[string]string
		for k, v := range in.Values {
			if v == nil {
				delete(a.secrets, k)
				continue
			}
			a.secrets[k] = *v
			sum := sha256.Sum256([]byte(*v))
			out = append(out, map[string]string{"name": k, "digest": hex.EncodeToString(sum[:8])})
		}
		a.version++
		writeJSON(w, 200, map[string]any{"secrets": out, "version": a.version})
	case "machines":
		f.serveMachine(w, r, a, parts[3:], decode)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeFly) serveMachine(w http.ResponseWriter, r *http.Request, a *fakeApp, rest []string, decode func(any) bool) {
	if len(rest) == 0 {
		switch r.Method {
		case "GET":
			out := []*Machine{}
			for _, m := range a.machines {
				out = append(out, m)
			}
			writeJSON(w, 200, out)
		case "POST":
			var in CreateMachineRequest
			if !decode(&in) {
				return
			}
			if in.Config.Image == "" {
				writeJSON(w, 400, map[string]string{"error": "image is required"})
				return
			}
			if in.MinSecretsVersion != nil && *in.MinSecretsVersion > a.version {
				writeJSON(w, 400, map[string]string{"error": "secrets version not reached"})
				return
			}
			for _, file := range in.Config.Files {
				if _, ok := a.secrets[file.SecretName]; !ok {
					writeJSON(w, 400, map[string]string{"error": "no secret " + file.SecretName})
					return
				}
			}
			m := &Machine{ID: f.id("m"), Name: in.Name, State: "created", Region: in.Region, InstanceID: f.id("inst"), Config: in.Config}
			for _, mt := range in.Config.Mounts {
				var vol *Volume
				for _, v := range a.volumes {
					if v.ID == mt.Volume {
						vol = v
					}
				}
				if vol == nil || vol.AttachedMachineID != "" || vol.Region != in.Region {
					writeJSON(w, 400, map[string]string{"error": "volume " + mt.Volume + " cannot be mounted"})
					return
				}
				vol.AttachedMachineID = m.ID
			}
			a.machines = append(a.machines, m)
			writeJSON(w, 200, m)
		default:
			w.WriteHeader(405)
		}
		return
	}
	var m *Machine
	idx := -1
	for i, x := range a.machines {
		if x.ID == rest[0] {
			m, idx = x, i
		}
	}
	if m == nil {
		writeJSON(w, 404, map[string]string{"error": "machine not found"})
		return
	}
	switch {
	case len(rest) == 1 && r.Method == "DELETE":
		if m.State == "started" && r.URL.Query().Get("force") != "true" {
			writeJSON(w, 412, map[string]string{"error": "machine is running; stop it or use force=true"})
			return
		}
		m.State = "destroyed"
		for _, v := range a.volumes {
			if v.AttachedMachineID == m.ID {
				v.AttachedMachineID = ""
			}
		}
		a.machines = slices.Delete(a.machines, idx, idx+1)
		writeJSON(w, 200, map[string]bool{"ok": true})
	case len(rest) == 2 && rest[1] == "wait" && r.Method == "GET" && f.failWait > 0:
		f.failWait--
		writeJSON(w, 408, map[string]string{"error": "deadline_exceeded: machine did not reach started"})
	case len(rest) == 2 && rest[1] == "wait" && r.Method == "GET":
		q := r.URL.Query()
		if id := q.Get("instance_id"); id != "" && id != m.InstanceID {
			writeJSON(w, 400, map[string]string{"error": "instance_id does not match"})
			return
		}
		switch q.Get("state") {
		case "started":
			m.State = "started"
		case "destroyed":
		default:
			writeJSON(w, 400, map[string]string{"error": "unsupported state"})
			return
		}
		writeJSON(w, 200, map[string]bool{"ok": true})
	case len(rest) == 2 && rest[1] == "start" && r.Method == "POST":
		prev := m.State
		m.State = "starting"
		writeJSON(w, 200, map[string]any{"previous_state": prev, "migrated": false, "new_host": ""})
	case len(rest) == 2 && rest[1] == "exec" && r.Method == "POST":
		var in struct {
			Command []string `json:"command"`
			Timeout int      `json:"timeout"`
		}
		if !decode(&in) {
			return
		}
		if m.State != "started" {
			writeJSON(w, 412, map[string]string{"error": "machine is not started"})
			return
		}
		writeJSON(w, 200, f.run(a, m, in.Command))
	default:
		w.WriteHeader(405)
	}
}

// run plays the satellite's binary for an exec: it knows the token
// command (reading the file Fly wrote from the machine's files and
// secrets) and nothing else.
func (f *fakeFly) run(a *fakeApp, m *Machine, cmd []string) ExecResult {
	if len(cmd) == 5 && cmd[0] == BinaryPath && cmd[1] == "serve" && cmd[2] == "--token-file" && cmd[4] == "--print-token" {
		for _, file := range m.Config.Files {
			if file.GuestPath != cmd[3] {
				continue
			}
			if file.Mode&0o077 != 0 {
				return ExecResult{ExitCode: 1, Stderr: "skypipe: error: reading the token: secret file not private\n"}
			}
			content, err := base64.StdEncoding.DecodeString(a.secrets[file.SecretName])
			if err != nil {
				return ExecResult{ExitCode: 1, Stderr: "bad base64 in secret"}
			}
			return ExecResult{ExitCode: 0, Stdout: strings.TrimSpace(string(content)) + "\n"}
		}
		return ExecResult{ExitCode: 1, Stderr: "skypipe: error: reading the token: open " + cmd[3] + ": no such file or directory\n"}
	}
	return ExecResult{ExitCode: 127, Stderr: "exec: " + cmd[0] + ": not found\n"}
}

// serveToken issues a registry bearer token for basic auth x:token.
func (f *fakeFly) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != basicAuth("x", strings.TrimPrefix(f.token, "FlyV1 ")) {
		writeJSON(w, 401, map[string]any{"errors": []map[string]string{{"code": "UNAUTHORIZED", "message": "bad credentials"}}})
		return
	}
	f.issued = "reg-" + f.id("tok")
	writeJSON(w, 200, map[string]string{"token": f.issued})
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func regError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (f *fakeFly) serveRegistry(w http.ResponseWriter, r *http.Request, body []byte) {
	auth := r.Header.Get("Authorization")
	ok := auth == basicAuth("x", f.token)
	if f.bearer {
		ok = f.issued != "" && auth == "Bearer "+f.issued
	}
	if !ok {
		if f.bearer {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="registry.fly.io",scope="repository:x:pull,push"`, f.srv.URL))
		} else {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry.fly.io"`)
		}
		regError(w, 401, "UNAUTHORIZED", "authentication required")
		return
	}
	// /v2/<repo>/blobs/<digest>, /v2/<repo>/blobs/uploads/[id], /v2/<repo>/manifests/<tag>
	p := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")
	if len(p) < 3 || f.apps[p[0]] == nil {
		regError(w, 404, "NAME_UNKNOWN", "repository name not known to registry")
		return
	}
	repo := p[0]
	switch {
	case p[1] == "blobs" && p[2] == "uploads" && r.Method == "POST" && (len(p) == 3 || len(p) == 4 && p[3] == ""):
		w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+f.id("up")+"?_state=opaque")
		w.WriteHeader(202)
	case p[1] == "blobs" && p[2] == "uploads" && r.Method == "PUT" && len(p) == 4:
		q := r.URL.Query()
		if q.Get("_state") != "opaque" {
			regError(w, 400, "BLOB_UPLOAD_INVALID", "upload state lost")
			return
		}
		sum := sha256.Sum256(body)
		if d := "sha256:" + hex.EncodeToString(sum[:]); d != q.Get("digest") {
			regError(w, 400, "DIGEST_INVALID", "provided digest did not match uploaded content")
			return
		}
		f.blobs[repo+"@"+q.Get("digest")] = body
		w.Header().Set("Docker-Content-Digest", q.Get("digest"))
		w.WriteHeader(201)
	case p[1] == "blobs" && r.Method == "HEAD" && len(p) == 3:
		if b, ok := f.blobs[repo+"@"+p[2]]; ok {
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.WriteHeader(200)
			return
		}
		w.WriteHeader(404)
	case p[1] == "manifests" && r.Method == "PUT" && len(p) == 3:
		if r.Header.Get("Content-Type") != mediaManifest {
			regError(w, 400, "MANIFEST_INVALID", "unexpected media type")
			return
		}
		var man struct {
			SchemaVersion int `json:"schemaVersion"`
			Config        struct {
				Digest string `json:"digest"`
				Size   int    `json:"size"`
			} `json:"config"`
			Layers []struct {
				Digest string `json:"digest"`
				Size   int    `json:"size"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(body, &man); err != nil || man.SchemaVersion != 2 {
			regError(w, 400, "MANIFEST_INVALID", "bad manifest")
			return
		}
		refs := append([]struct {
			Digest string `json:"digest"`
			Size   int    `json:"size"`
		}{man.Config}, man.Layers...)
		for _, ref := range refs {
			b, ok := f.blobs[repo+"@"+ref.Digest]
			if !ok || len(b) != ref.Size {
				regError(w, 400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry: "+ref.Digest)
				return
			}
		}
		f.manifests[repo+":"+p[2]] = body
		sum := sha256.Sum256(body)
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.WriteHeader(201)
	default:
		regError(w, 405, "UNSUPPORTED", "unsupported")
	}
}

// elfBinary is a minimal ELF64 executable header for machine, with a
// PT_INTERP program header if dynamic.
func elfBinary(machine uint16, dynamic bool) []byte {
	phnum := uint16(1)
	if dynamic {
		phnum = 2
	}
	b := make([]byte, 64+56*int(phnum)+16)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little endian, version 1
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], machine)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x401000) // entry
	le.PutUint64(b[32:], 64)       // phoff
	le.PutUint16(b[52:], 64)       // ehsize
	le.PutUint16(b[54:], 56)       // phentsize
	le.PutUint16(b[56:], phnum)
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5)
	le.PutUint64(ph[32:], uint64(len(b))) // filesz
	le.PutUint64(ph[40:], uint64(len(b))) // memsz
	if dynamic {
		ph = b[64+56:]
		le.PutUint32(ph[0:], 3) // PT_INTERP
	}
	copy(b[len(b)-16:], "skypipe-test-bin")
	return b
}
