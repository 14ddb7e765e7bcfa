package fly

import (
	"encoding/base64"
	"regexp"
	"strconv"
	"sync"
)

// The satellite's shape, shared by Deploy, fly.toml and the Dockerfile (a
// test checks they agree).
const (
	Port = 4222
	// HTTPPort is where the satellite serves its HTTP face (and NATS over
	// WebSocket) in plain HTTP, behind Fly's proxy, which terminates TLS on
	// HTTPSPort with Fly's certificate for APP.fly.dev: the only way onto
	// Fly's shared IPv4, which routes HTTP and TLS by name.
	HTTPPort      = 8080
	HTTPSPort     = 443
	DataPath      = "/data"
	StorePath     = DataPath + "/store"
	VolumeName    = "skypipe_data"
	MachineName   = "skypipe-satellite"
	TokenFilePath = "/etc/skypipe/token"

	// App secrets.
	SecretToken   = "SKYPIPE_TOKEN"        // the token, an environment variable of serve
	SecretTokenB  = "SKYPIPE_TOKEN_B64"    // the token again, base64, as TokenFilePath
	SecretTLSCert = "SKYPIPE_TLS_CERT_B64" // the server certificate, base64 PEM, read by serve from its environment
	SecretTLSKey  = "SKYPIPE_TLS_KEY_B64"  // its key, base64 PEM, likewise (never a file of unknown mode)

	// Machine metadata.
	metaRole    = "skypipe"
	metaRoleSat = "satellite"
	metaCA      = "skypipe_ca"

	// AppPrefix starts the name of every app skypipe creates.
	AppPrefix = "skypipe-"
)

// Defaults of Options.
const (
	DefaultOrg      = "personal"
	DefaultRegion   = "iad"
	DefaultVolumeGB = 1
	DefaultMemoryMB = 256
)

// ReleaseRepository is where a release publishes the satellite's image,
// tagged with the version (see cmd/release-image and .goreleaser.yaml).
const ReleaseRepository = "ghcr.io/skypipe/skypipe"

// ReleasedImage is the image reference of a release's satellite.
func ReleasedImage(version string) string { return ReleaseRepository + ":" + version }

// releaseVersion is a version a release is tagged with: 1.2.3, or a
// pre-release such as 1.2.3-rc.1; not dev builds or snapshots.
var releaseVersion = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-(alpha|beta|rc)(\.?[0-9]+)*)?$`)
}) // compiled on first use, not at every start

// IsRelease tells whether version is a release's, which published its
// satellite's image.
func IsRelease(version string) bool { return releaseVersion().MatchString(version) }

// ServeArgs is the satellite's command after the binary.
func ServeArgs() []string {
	return []string{
		"serve",
		"--listen", "0.0.0.0:" + strconv.Itoa(Port),
		"--store", StorePath,
		"--http", "0.0.0.0:" + strconv.Itoa(HTTPPort), "--http-proxied",
	}
}

// TokenCommand is what Find runs in the satellite's machine (through the
// exec endpoint, without a shell) to read the token back: the satellite's
// own binary printing the token it serves with, read from the 0600 file
// Fly writes from SecretTokenB. It prints the token alone on stdout and
// exits 0.
func TokenCommand() []string {
	return []string{BinaryPath, "serve", "--token-file", TokenFilePath, "--print-token"}
}

// machineConfig is the satellite machine's configuration.
func machineConfig(image, volumeID, caPEM string, memoryMB int) MachineConfig {
	autostart := true
	return MachineConfig{
		Image: image,
		Init:  MachineInit{Cmd: ServeArgs()},
		Guest: &MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: memoryMB},
		Metadata: map[string]string{
			metaRole: metaRoleSat,
			metaCA:   caPEM,
		},
		Mounts: []MachineMount{{Volume: volumeID, Path: DataPath}},
		Services: []MachineService{{
			// Raw NATS over TLS with the pinned CA, passed through: over
			// the dedicated IPv6 (and IPv4 with --ipv4).
			Protocol:     "tcp",
			InternalPort: Port,
			Ports:        []MachinePort{{Port: Port}},
			Autostop:     "off",
			Autostart:    &autostart,
		}, {
			// HTTPS on 443, TLS ended by Fly's proxy: the HTTP face and
			// NATS over WebSocket, over the shared IPv4 too.
			Protocol:     "tcp",
			InternalPort: HTTPPort,
			Ports:        []MachinePort{{Port: HTTPSPort, Handlers: []string{"tls", "http"}}},
			Autostop:     "off",
			Autostart:    &autostart,
		}},
		Files: []MachineFile{
			{GuestPath: TokenFilePath, SecretName: SecretTokenB, Mode: 0o600},
		},
		Restart: &MachineRestart{Policy: "always"},
	}
}

// secretValues are the app secrets of a satellite.
func secretValues(s Secrets) map[string]string {
	b64 := base64.StdEncoding.EncodeToString
	return map[string]string{
		SecretToken:   s.Token,
		SecretTokenB:  b64([]byte(s.Token)),
		SecretTLSCert: b64(s.TLSCertPEM),
		SecretTLSKey:  b64(s.TLSKeyPEM),
	}
}

// servesWeb tells whether a satellite's machine serves the HTTP face (one
// deployed before there was one does not).
func servesWeb(m Machine) bool {
	for _, s := range m.Config.Services {
		if s.InternalPort == HTTPPort {
			return true
		}
	}
	return false
}

// isSatellite tells a machine of ours from any other.
func isSatellite(m Machine) bool {
	return m.Config.Metadata[metaRole] == metaRoleSat
}
