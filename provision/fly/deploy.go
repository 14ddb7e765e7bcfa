package fly

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options say where a satellite lives.
type Options struct {
	App      string // the Fly app; empty: the organization's skypipe-* app, or a new one
	Org      string // organization slug; default "personal"
	Region   string // region of a new volume and machine; default "iad"
	IPv4     bool   // also a dedicated IPv4 address ($2/month); IPv6 is free
	VolumeGB int    // size of a new volume; default 1
	MemoryMB int    // machine memory; default 256 (shared-cpu-1x)
	Image    string // image to run; empty: the release's (Release), else Binary pushed to registry.fly.io/APP
	Binary   []byte // a static linux/amd64 skypipe binary (see ReadBinary); nil: none to push
	// Release is the version of a released skypipe ("1.2.3", see
	// IsRelease) whose image (ReleasedImage) the machine runs instead of
	// an image of Binary, if it was published and, when there is a Binary,
	// holds that very binary: the same digest.
	Release string
}

// Secrets are a satellite's credentials. Find recovers Token and CAPEM
// only: the server's certificate and key never leave Fly.
type Secrets struct {
	Token      string
	TLSCertPEM []byte
	TLSKeyPEM  []byte
	CAPEM      []byte // the certificate clients pin
}

// Result is a deployed satellite.
type Result struct {
	App       string
	Host      string // APP.fly.dev
	Port      int
	MachineID string
	Region    string
	Image     string
	IPs       []string // dedicated addresses
	Created   bool     // this call created the machine
	// Web: the machine serves the HTTP face on https://APP.fly.dev (443,
	// through Fly's proxy and its certificate).
	Web bool
}

// URL is the satellite's raw NATS address (TLS, the pinned CA): over its
// dedicated IPv6 address, and IPv4 with --ipv4.
func (r Result) URL() string {
	return "tls://" + net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
}

// WebURL is the satellite's HTTP face, "" if it has none.
func (r Result) WebURL() string {
	if !r.Web {
		return ""
	}
	return "https://" + r.Host
}

// WebSocketURL is NATS over WebSocket through Fly's proxy on 443, reached
// over the shared IPv4 as well; "" if the satellite has no HTTP face.
func (r Result) WebSocketURL() string {
	if !r.Web {
		return ""
	}
	return "wss://" + r.Host
}

// DedicatedIPv4 tells whether the app has an IPv4 address of its own.
func (r Result) DedicatedIPv4() bool {
	for _, ip := range r.IPs {
		if !strings.Contains(ip, ":") {
			return true
		}
	}
	return false
}

// Host is the public name of an app.
func Host(app string) string { return app + ".fly.dev" }

// Compiled on first use: every skypipe command would pay for it at start.
var appName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`) })

func (o Options) withDefaults() (Options, error) {
	if o.Org == "" {
		o.Org = DefaultOrg
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.VolumeGB == 0 {
		o.VolumeGB = DefaultVolumeGB
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = DefaultMemoryMB
	}
	if o.App != "" && !appName().MatchString(o.App) {
		return o, fmt.Errorf("%q is not a Fly app name: lowercase letters, digits and dashes, 3 to 63 of them", o.App)
	}
	if o.VolumeGB < 1 || o.MemoryMB < 256 {
		return o, fmt.Errorf("volume of %d GB, memory of %d MB: at least 1 GB and 256 MB", o.VolumeGB, o.MemoryMB)
	}
	return o, nil
}

func (s Secrets) check() error {
	switch {
	case s.Token == "" || strings.ContainsAny(s.Token, " \t\r\n"):
		return errors.New("satellite token is empty or has spaces")
	case len(s.TLSCertPEM) == 0 || len(s.TLSKeyPEM) == 0 || len(s.CAPEM) == 0:
		return errors.New("satellite TLS certificate, key or CA missing")
	}
	return nil
}

// Deploy creates the satellite, or finds the one that exists. Running it
// again creates nothing new: it finds the app (named, or the
// organization's skypipe-* app), its volume, addresses and machine, and
// adds only what is missing. newSecrets is called, with the satellite's
// host name, only when a machine is to be created; for a satellite that
// exists, Deploy returns the secrets it recovers as Find does.
//
// Order: the released image (Options.Release), app, image pushed (unless
// released), volume, IPv6 (and IPv4), secrets, machine, wait until started.
func Deploy(ctx context.Context, api API, o Options, newSecrets func(host string) (Secrets, error)) (Result, Secrets, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, Secrets{}, err
	}
	image := o.Image
	if image == "" && o.Release != "" {
		if image, err = released(ctx, api, o); err != nil {
			return Result{}, Secrets{}, err
		}
	}
	if image == "" {
		if err := CheckBinary(o.Binary); err != nil {
			return Result{}, Secrets{}, err
		}
	}
	loc, err := locate(ctx, api, o, true)
	if err != nil {
		return Result{}, Secrets{}, err
	}
	if loc.satellite != nil {
		return found(ctx, api, loc)
	}
	app := loc.app

	if image == "" {
		image, err = api.PushImage(ctx, app, ImageTag(o.Binary), Image{Binary: o.Binary, Cmd: ServeArgs()})
		if err != nil {
			return Result{}, Secrets{}, fmt.Errorf("pushing the satellite's image: %w", err)
		}
	}

	vol, err := ensureVolume(ctx, api, app, o)
	if err != nil {
		return Result{}, Secrets{}, err
	}
	ips, err := ensureIPs(ctx, api, app, o.IPv4)
	if err != nil {
		return Result{}, Secrets{}, err
	}

	sec, err := newSecrets(Host(app))
	if err != nil {
		return Result{}, Secrets{}, err
	}
	if err := sec.check(); err != nil {
		return Result{}, Secrets{}, err
	}
	version, err := api.SetSecrets(ctx, app, secretValues(sec))
	if err != nil {
		return Result{}, Secrets{}, fmt.Errorf("setting the satellite's secrets: %w", err)
	}

	m, err := api.CreateMachine(ctx, app, CreateMachineRequest{
		Name:              MachineName,
		Region:            vol.Region,
		Config:            machineConfig(image, vol.ID, string(sec.CAPEM), o.MemoryMB),
		MinSecretsVersion: &version,
	})
	if err != nil {
		return Result{}, Secrets{}, fmt.Errorf("creating the satellite's machine: %w", err)
	}
	if err := waitStarted(ctx, api, app, m.ID, m.InstanceID); err != nil {
		return Result{}, Secrets{}, err
	}
	res := result(app, m)
	res.IPs = ips
	res.Created = true
	return res, sec, nil
}

// released is the image of release o.Release, if it was published and
// holds o.Binary (when there is one): the same manifest digest as the
// image Deploy would push. "" means push o.Binary instead.
func released(ctx context.Context, api API, o Options) (string, error) {
	ref := ReleasedImage(o.Release)
	digest, err := api.ResolveImage(ctx, ref)
	switch {
	case errors.Is(err, ErrNotFound) && o.Binary != nil:
		return "", nil
	case errors.Is(err, ErrNotFound):
		return "", fmt.Errorf("%w: no released image %s to run, and no binary to push", ErrWrongBinary, ref)
	case err != nil && o.Binary != nil:
		return "", nil // the release's registry is out of reach: push this binary
	case err != nil:
		return "", fmt.Errorf("looking for the released image %s: %w", ref, err)
	case o.Binary == nil:
		return ref + "@" + digest, nil
	}
	own, err := Image{Binary: o.Binary, Cmd: ServeArgs()}.Digest()
	if err != nil {
		return "", err
	}
	if own != digest {
		return "", nil // this binary is not the release's: run this one
	}
	return ref + "@" + digest, nil
}

// Find finds the satellite from any machine holding a token for its
// organization and recovers its join material: the CA certificate from
// the machine's metadata, the token by running TokenCommand in the machine.
// ErrNoSatellite if there is none.
func Find(ctx context.Context, api API, o Options) (Result, Secrets, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, Secrets{}, err
	}
	loc, err := locate(ctx, api, o, false)
	if err != nil {
		return Result{}, Secrets{}, err
	}
	if loc.satellite == nil {
		return Result{}, Secrets{}, fmt.Errorf("%w: app %s has no satellite machine", ErrNoSatellite, loc.app)
	}
	return found(ctx, api, loc)
}

// Reset tears the satellite down: its machines, volumes, addresses and
// the app. It refuses an app that holds machines skypipe did not create.
// It returns the app's name.
func Reset(ctx context.Context, api API, o Options) (string, error) {
	o, err := o.withDefaults()
	if err != nil {
		return "", err
	}
	loc, err := locate(ctx, api, o, false)
	if err != nil {
		return "", err
	}
	app := loc.app
	for _, m := range loc.machines {
		if err := api.DestroyMachine(ctx, app, m.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return app, fmt.Errorf("destroying machine %s: %w", m.ID, err)
		}
		if err := api.WaitMachine(ctx, app, m.ID, m.InstanceID, "destroyed", 60*time.Second); err != nil && !errors.Is(err, ErrNotFound) {
			return app, fmt.Errorf("waiting for machine %s to go: %w", m.ID, err)
		}
	}
	vols, err := api.ListVolumes(ctx, app)
	if err != nil {
		return app, err
	}
	for _, v := range vols {
		if gone(v) {
			continue
		}
		if err := api.DeleteVolume(ctx, app, v.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return app, fmt.Errorf("deleting volume %s: %w", v.ID, err)
		}
	}
	ips, err := api.ListIPs(ctx, app)
	if err != nil {
		return app, err
	}
	for _, ip := range ips {
		if err := api.ReleaseIP(ctx, app, ip.IP); err != nil && !errors.Is(err, ErrNotFound) {
			return app, fmt.Errorf("releasing %s: %w", ip.IP, err)
		}
	}
	if err := api.DeleteApp(ctx, app); err != nil && !errors.Is(err, ErrNotFound) {
		return app, fmt.Errorf("deleting app %s: %w", app, err)
	}
	return app, nil
}

// located is the app a satellite lives in.
type located struct {
	app       string
	machines  []Machine // all of them skypipe's
	satellite *Machine  // nil: none yet (a deployment cut short)
}

// locate finds the satellite's app: the one named in o, else the
// organization's skypipe-* app whose machines are all skypipe's. With
// create, an app that does not exist is created.
//
// A new app's name is skypipe- and 8 random hex digits: app names are
// global across Fly.io, the default org slug "personal" is the same for
// every user, and the Machines API gives no organization or user id to
// derive a name from. Later runs find the app by listing the organization
// instead of re-deriving its name.
func locate(ctx context.Context, api API, o Options, create bool) (located, error) {
	if o.App != "" {
		_, err := api.GetApp(ctx, o.App)
		switch {
		case errors.Is(err, ErrNotFound) && create:
			if err := api.CreateApp(ctx, o.App, o.Org); err != nil {
				return located{}, nameTaken(o.App, err)
			}
			return located{app: o.App}, nil
		case errors.Is(err, ErrNotFound):
			return located{}, fmt.Errorf("%w: no app %s", ErrNoSatellite, o.App)
		case errors.Is(err, ErrForbidden):
			return located{}, fmt.Errorf("%w: %s belongs to an organization this token cannot see", ErrNameTaken, o.App)
		case err != nil:
			return located{}, err
		}
		loc, ours, err := inspect(ctx, api, o.App)
		if err != nil {
			return located{}, err
		}
		if !ours {
			return located{}, fmt.Errorf("%w: app %s runs machines that are not a skypipe satellite", ErrNameTaken, o.App)
		}
		return loc, nil
	}

	apps, err := api.ListApps(ctx, o.Org)
	if err != nil {
		return located{}, err
	}
	var sats, partial []located
	for _, a := range apps {
		if !strings.HasPrefix(a.Name, AppPrefix) {
			continue
		}
		loc, ours, err := inspect(ctx, api, a.Name)
		if err != nil {
			return located{}, err
		}
		switch {
		case !ours:
		case loc.satellite != nil:
			sats = append(sats, loc)
		default:
			partial = append(partial, loc)
		}
	}
	switch {
	case len(sats) == 1:
		return sats[0], nil
	case len(sats) > 1:
		var names []string
		for _, s := range sats {
			names = append(names, s.app)
		}
		return located{}, fmt.Errorf("%w in organization %s: %s", ErrAmbiguous, o.Org, strings.Join(names, ", "))
	case len(partial) > 0:
		return partial[0], nil // a deployment cut short: go on with it
	case !create:
		return located{}, fmt.Errorf("%w in organization %s", ErrNoSatellite, o.Org)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return located{}, err
	}
	app := AppPrefix + hex.EncodeToString(b[:])
	if err := api.CreateApp(ctx, app, o.Org); err != nil {
		return located{}, nameTaken(app, err)
	}
	return located{app: app}, nil
}

// inspect lists an app's machines; ours is false if any is not skypipe's.
func inspect(ctx context.Context, api API, app string) (located, bool, error) {
	ms, err := api.ListMachines(ctx, app)
	if err != nil {
		return located{}, false, err
	}
	loc := located{app: app}
	for i := range ms {
		if ms[i].State == "destroyed" {
			continue
		}
		if !isSatellite(ms[i]) {
			return located{}, false, nil
		}
		loc.machines = append(loc.machines, ms[i])
		if loc.satellite == nil {
			loc.satellite = &loc.machines[len(loc.machines)-1]
		}
	}
	return loc, true, nil
}

func nameTaken(app string, err error) error {
	if errors.Is(err, ErrNameTaken) {
		return fmt.Errorf("%w: %s is held by another Fly.io user or organization (app names are global): %w", ErrNameTaken, app, errors.Unwrap(err))
	}
	return fmt.Errorf("creating app %s: %w", app, err)
}

// found makes a satellite that exists usable (started) and recovers its
// join material.
func found(ctx context.Context, api API, loc located) (Result, Secrets, error) {
	m := *loc.satellite
	if m.State == "stopped" || m.State == "suspended" {
		if err := api.StartMachine(ctx, loc.app, m.ID); err != nil {
			return Result{}, Secrets{}, fmt.Errorf("starting the satellite's machine %s: %w", m.ID, err)
		}
		if err := waitStarted(ctx, api, loc.app, m.ID, ""); err != nil {
			return Result{}, Secrets{}, err
		}
	}
	res := result(loc.app, m)
	ips, err := api.ListIPs(ctx, loc.app)
	if err != nil {
		return Result{}, Secrets{}, err
	}
	for _, ip := range ips {
		if dedicated(ip) {
			res.IPs = append(res.IPs, ip.IP)
		}
	}
	ca := m.Config.Metadata[metaCA]
	if !strings.Contains(ca, "-----BEGIN CERTIFICATE-----") {
		return Result{}, Secrets{}, fmt.Errorf("%w: machine %s carries no CA certificate", ErrNoJoin, m.ID)
	}
	out, err := api.Exec(ctx, loc.app, m.ID, TokenCommand(), 30*time.Second)
	if err != nil {
		return Result{}, Secrets{}, fmt.Errorf("%w: %w", ErrNoJoin, err)
	}
	token := strings.TrimSpace(out.Stdout)
	if out.ExitCode != 0 || token == "" || strings.ContainsAny(token, " \t\r\n") {
		reason, _, _ := strings.Cut(strings.TrimSpace(out.Stderr), "\n")
		return Result{}, Secrets{}, fmt.Errorf("%w: %s in machine %s exited %d: %s", ErrNoJoin, strings.Join(TokenCommand(), " "), m.ID, out.ExitCode, reason)
	}
	return res, Secrets{Token: token, CAPEM: []byte(ca)}, nil
}

// waitStarted waits for a machine to start: a first boot pulls the image
// and may take longer than the 60 s one wait call allows, so a timeout
// (408) is waited out up to five times.
func waitStarted(ctx context.Context, api API, app, id, instanceID string) error {
	var err error
	for range 5 {
		err = api.WaitMachine(ctx, app, id, instanceID, "started", 60*time.Second)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusRequestTimeout {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("waiting for the satellite's machine %s to start: %w", id, err)
	}
	return nil
}

func result(app string, m Machine) Result {
	return Result{App: app, Host: Host(app), Port: Port, MachineID: m.ID, Region: m.Region, Image: m.Config.Image, Web: servesWeb(m)}
}

// ensureVolume finds the satellite's volume or creates it.
func ensureVolume(ctx context.Context, api API, app string, o Options) (Volume, error) {
	vols, err := api.ListVolumes(ctx, app)
	if err != nil {
		return Volume{}, err
	}
	for _, v := range vols {
		if v.Name == VolumeName && !gone(v) && v.AttachedMachineID == "" {
			return v, nil
		}
	}
	v, err := api.CreateVolume(ctx, app, CreateVolumeRequest{Name: VolumeName, Region: o.Region, SizeGB: o.VolumeGB, Encrypted: true})
	if err != nil {
		return Volume{}, fmt.Errorf("creating the satellite's volume: %w", err)
	}
	return v, nil
}

func gone(v Volume) bool {
	return slices.Contains([]string{"destroyed", "destroying", "pending_destroy"}, v.State)
}

// ensureIPs assigns a dedicated IPv6 address, a dedicated IPv4 if asked,
// else a shared IPv4 (free: it carries the HTTPS service, routed by name),
// unless the app has them; it returns the app's dedicated addresses.
func ensureIPs(ctx context.Context, api API, app string, ipv4 bool) ([]string, error) {
	ips, err := api.ListIPs(ctx, app)
	if err != nil {
		return nil, err
	}
	var have []string
	hasV6, hasV4, hasShared := false, false, false
	for _, ip := range ips {
		if ip.Shared {
			hasShared = true
		}
		if !dedicated(ip) {
			continue
		}
		have = append(have, ip.IP)
		if strings.Contains(ip.IP, ":") {
			hasV6 = true
		} else {
			hasV4 = true
		}
	}
	want := []struct {
		kind string
		need bool
	}{{"v6", !hasV6}, {"v4", ipv4 && !hasV4}, {"shared_v4", !ipv4 && !hasV4 && !hasShared}}
	for _, w := range want {
		if !w.need {
			continue
		}
		ip, err := api.AssignIP(ctx, app, w.kind)
		if err != nil {
			return nil, fmt.Errorf("assigning an IP address (%s): %w", w.kind, err)
		}
		if dedicated(ip) {
			have = append(have, ip.IP)
		}
	}
	return have, nil
}

// dedicated: a public address of this app alone (not the shared IPv4, not
// a private Flycast fdaa: address).
func dedicated(ip IPAssignment) bool {
	return !ip.Shared && ip.IP != "" && !strings.HasPrefix(ip.IP, "fdaa:")
}
